"""The `latest` collection: the newest reading per (module, sensor). Never history."""
from pymongo.errors import DuplicateKeyError


def key(module, sensor_id):
    return f"{module}:{sensor_id}"


def upsert(db, module, reading):
    """Store `reading` as the sensor's latest unless a newer one is already there."""
    doc = {k: v for k, v in reading.items() if k != "_id"}
    doc["reading_id"] = reading.get("_id")
    doc_key = key(module, reading["sensor_id"])
    result = db.latest.update_one({"_id": doc_key, "timestamp": {"$lte": reading["timestamp"]}}, {"$set": doc})
    if result.matched_count:
        return True
    try:
        db.latest.insert_one(dict(doc, _id=doc_key))
        return True
    except DuplicateKeyError:
        return False  # a newer reading is already stored


def for_module(db, module, limit=5000):
    """Latest readings of every sensor of `module` (bounded by the number of sensors)."""
    return list(db.latest.find({"module": module}).limit(limit))


def get(db, module, sensor_id):
    return db.latest.find_one({"_id": key(module, sensor_id)})


def delete_by_source(db, source):
    return db.latest.delete_many({"source": source}).deleted_count


def delete(db, module, sensor_id):
    return db.latest.delete_one({"_id": key(module, sensor_id)}).deleted_count
