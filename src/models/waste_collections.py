"""The `waste_collections` collection: scheduled bin collections and their planned routes."""
from datetime import datetime, timezone

from pymongo import ReturnDocument

from src.models import query

STATUSES = ("scheduled", "in_progress", "completed", "cancelled")
# completed and cancelled are final: a collection that happened (or never will) is history.
TRANSITIONS = {
    "scheduled": ("in_progress", "completed", "cancelled"),
    "in_progress": ("completed", "cancelled"),
    "completed": (),
    "cancelled": (),
}


oid = query.object_id


def create(db, doc):
    now = datetime.now(timezone.utc)
    doc = dict(doc, created_at=now, updated_at=now)
    doc.setdefault("status", "scheduled")
    db.waste_collections.insert_one(doc)
    return doc


def get(db, collection_id):
    return query.by_id(db.waste_collections, collection_id)


def transition(db, collection_id, from_status, to_status, changes=None):
    """Move a collection from `from_status` to `to_status` atomically; None if it was no longer in `from_status`."""
    now = datetime.now(timezone.utc)
    update = dict(changes or {}, status=to_status, updated_at=now)
    return db.waste_collections.find_one_and_update(
        {"_id": oid(collection_id), "status": from_status},
        {"$set": update, "$push": {"status_history": {"from": from_status, "to": to_status, "at": now}}},
        return_document=ReturnDocument.AFTER)


def list_page(db, status=None, district=None, start=None, end=None, limit=50, offset=0, sort="-scheduled_for"):
    """A page of collections filtered by status, district and scheduled_for in [start, end)."""
    criteria = query.within(query.matching(status=status, district=district), "scheduled_for", start, end)
    return query.page(db.waste_collections, criteria, sort, limit, offset)
