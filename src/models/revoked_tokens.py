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


def revoked_among(db, tokens):
    """The jtis of those `(jti, user_id, issued_at, session_id)` tokens that are revoked, in one
    query per SYNC_BATCH ids (the sweeper checks every open socket's token every few seconds)."""
    ids = sorted({i for token in tokens for i in _entry_ids(*token)})
    entries = {}
    for start in range(0, len(ids), SYNC_BATCH):
        chunk = ids[start:start + SYNC_BATCH]
        for entry in db.revoked_tokens.find({"jti": {"$in": chunk}}, {"cutoff": 1, "jti": 1}).limit(len(chunk)):
            entries[entry["jti"]] = entry
    return {token[0] for token in tokens if _revoked_by(entries, *token)}


def _entry_ids(jti, user_id, issued_at=None, session_id=None):
    """The entries that can revoke a token: its own, its user's cutoff, its session's."""
    return [jti, f"user:{user_id}"] + ([f"session:{session_id}"] if session_id else [])


def _revoked_by(entries, jti, user_id, issued_at, session_id=None):
    """Whether `entries` (jti -> entry with an optional cutoff) revoke this token."""
    user = entries.get(f"user:{user_id}")
    return (jti in entries or (session_id is not None and f"session:{session_id}" in entries)
            or (user is not None and issued_at < user.get("cutoff", 0)))


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
