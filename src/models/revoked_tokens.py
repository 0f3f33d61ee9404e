"""The `revoked_tokens` collection: the revocation list when Redis is not configured."""
from datetime import datetime, timezone

from pymongo.errors import DuplicateKeyError


def add(db, jti, expires_at):
    """Record a revoked token id until the token would have expired anyway."""
    try:
        db.revoked_tokens.insert_one({"jti": jti, "expires_at": expires_at})
    except DuplicateKeyError:
        pass  # revoking twice is fine


def contains(db, jti):
    return db.revoked_tokens.find_one({"jti": jti}, {"_id": 1}) is not None


def purge_expired(db, now=None):
    """Drop entries past expiry; real MongoDB's TTL index does this, the embedded engine can't."""
    now = now or datetime.now(timezone.utc)
    return db.revoked_tokens.delete_many({"expires_at": {"$lt": now}}).deleted_count
