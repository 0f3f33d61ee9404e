"""The `revoked_tokens` collection: the record of revocation (Redis, when configured, holds a copy).

Three kinds of entry, all keyed by `jti`: one token (its jti), one sign-in session
(`session:<sid>`), or every token of a user issued before `cutoff` (`user:<id>`). An entry
written while Redis was unreachable carries `pending_redis: true` until it is copied there.
"""
from datetime import datetime, timezone

from pymongo import ReturnDocument

from src.models import query

SYNC_BATCH = 1000


def put(db, jti, expires_at, pending_redis=False, **fields):
    """Record a revocation (idempotent; a later cutoff replaces an earlier one)."""
    changes = dict(fields, expires_at=expires_at)
    update = {"$set": changes}
    if pending_redis:
        changes["pending_redis"] = True
    else:
        update["$unset"] = {"pending_redis": ""}
    return db.revoked_tokens.find_one_and_update({"jti": jti}, update, upsert=True,
                                                 return_document=ReturnDocument.AFTER)


def is_revoked(db, jti, user_id, issued_at, session_id=None):
    """True if this token, its session, or every token of its user issued before a cutoff, was revoked."""
    ids = [jti, f"user:{user_id}"] + ([f"session:{session_id}"] if session_id else [])
    entries = list(db.revoked_tokens.find({"jti": {"$in": ids}}, {"cutoff": 1, "jti": 1}).limit(len(ids)))
    return any(not e["jti"].startswith("user:") or issued_at < e.get("cutoff", 0) for e in entries)


def unexpired(db, now=None):
    """Every live entry (to reload an emptied Redis), in batches of SYNC_BATCH."""
    now = now or datetime.now(timezone.utc)
    return _batches(query.in_batches(db.revoked_tokens, {"expires_at": {"$gt": now}}, "expires_at",
                                       SYNC_BATCH))


def pending_redis(db):
    """Entries written while Redis was unreachable, in batches of SYNC_BATCH."""
    return _batches(query.in_batches(db.revoked_tokens, {"pending_redis": True}, "expires_at", SYNC_BATCH))


def _batches(documents):
    batch = []
    for doc in documents:
        batch.append({key: value for key, value in doc.items() if key != "_id"})
        if len(batch) == SYNC_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def mark_synced(db, jtis):
    if jtis:
        db.revoked_tokens.update_many({"jti": {"$in": jtis}}, {"$unset": {"pending_redis": ""}})


def purge_expired(db, now=None):
    """Drop entries past expiry; real MongoDB's TTL index does this, the embedded engine can't."""
    now = now or datetime.now(timezone.utc)
    return db.revoked_tokens.delete_many({"expires_at": {"$lt": now}}).deleted_count
