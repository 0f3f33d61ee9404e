// Runs once in the mongo:7 container (/docker-entrypoint-initdb.d) on an empty volume.
// Collections, JSON-schema validators and indexes come from src/models/collections.json,
// the same file the server applies at start-up, so the two can never drift apart.
const fs = require('fs');
const specPath = process.env.CITYPULSE_COLLECTIONS || '/citypulse/collections.json';
const spec = JSON.parse(fs.readFileSync(specPath, 'utf8'));
const dbName = process.env.MONGO_DB_NAME || process.env.MONGO_INITDB_DATABASE || 'citypulse';
const rawRetentionSeconds = parseInt(process.env.RAW_RETENTION_HOURS || '168', 10) * 3600;
const target = db.getSiblingDB(dbName);

for (const [name, coll] of Object.entries(spec.collections)) {
  if (!target.getCollectionNames().includes(name)) {
    const options = coll.validator ? { validator: coll.validator, validationLevel: 'moderate' } : {};
    target.createCollection(name, options);
  }
  for (const index of coll.indexes || []) {
    const keys = {};
    for (const [field, direction] of index.keys) keys[field] = direction;
    const options = { name: index.name };
    if (index.unique) options.unique = true;
    if (index.sparse) options.sparse = true;
    if (index.ttl !== undefined) {
      options.expireAfterSeconds = index.ttl === 'RAW_RETENTION' ? rawRetentionSeconds : index.ttl;
    }
    target.getCollection(name).createIndex(keys, options);
  }
  print(`citypulse: ${dbName}.${name} ready`);
}
