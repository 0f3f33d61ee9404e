"""The `revoked_tokens` collection: the revocation list when Redis is not configured.

Two kinds of entry: one token by `jti`, or every token of `user_id` issued before `cutoff`.
"""
from datetime import datetime, timezone

from pymongo.errors import DuplicateKeyError


def add(db, jti, expires_at):
    """Record a revoked token id until the token would have expired anyway."""
    try:
        db.revoked_tokens.insert_one({"jti": jti, "expires_at": expires_at})
    except DuplicateKeyError:
        pass  # revoking twice is fine


def revoke_user(db, user_id, cutoff, expires_at):
    """Revoke all of a user's tokens with `iat` before `cutoff` (epoch seconds)."""
    db.revoked_tokens.update_one(
        {"jti": f"user:{user_id}"},
        {"$set": {"user_id": user_id, "cutoff": cutoff, "expires_at": expires_at}},
        upsert=True,
    )


def is_revoked(db, jti, user_id, issued_at):
    """True if this token, or every token of its user issued before a cutoff, was revoked."""
    entries = list(db.revoked_tokens.find({"jti": {"$in": [jti, f"user:{user_id}"]}}, {"cutoff": 1, "jti": 1})
                   .limit(2))
    return any(e["jti"] == jti or issued_at < e.get("cutoff", 0) for e in entries)


def purge_expired(db, now=None):
    """Drop entries past expiry; real MongoDB's TTL index does this, the embedded engine can't."""
    now = now or datetime.now(timezone.utc)
    return db.revoked_tokens.delete_many({"expires_at": {"$lt": now}}).deleted_count
