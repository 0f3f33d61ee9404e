"""The `tasks` collection: a durable priority queue with leases.

A worker claims the best queued task (highest priority, then oldest) with one atomic
find_one_and_update, which sets a lease. While it works it renews the lease; if it dies, the
lease expires and `requeue_expired` puts the task back. MongoDB is the source of truth.
"""
from datetime import timedelta

from pymongo import ReturnDocument

from src.domain import now_utc
from src.models import query

STATUSES = ("queued", "running", "completed", "failed", "cancelled")



oid = query.object_id


def insert(db, task_type, data, priority, owner_id, max_attempts, now=None):
    now = now or now_utc()
    doc = {"task_type": task_type, "data": data, "priority": priority, "owner_id": str(owner_id),
           "status": "queued", "progress": 0, "attempts": 0, "max_attempts": max_attempts,
           "created_at": now, "updated_at": now, "run_after": now, "cancel_requested": False}
    doc["_id"] = db.tasks.insert_one(doc).inserted_id
    return doc


def claim(db, worker_id, lease_s, now=None):
    """Atomically take the best runnable queued task, or None."""
    now = now or now_utc()
    return db.tasks.find_one_and_update(
        {"status": "queued", "run_after": {"$lte": now}},
        {"$set": {"status": "running", "worker_id": worker_id, "lease_expires_at": now + timedelta(seconds=lease_s),
                  "started_at": now, "updated_at": now, "message": None},
         "$inc": {"attempts": 1}},
        sort=[("priority", -1), ("created_at", 1), ("_id", 1)],
        return_document=ReturnDocument.AFTER)


def renew_lease(db, task_id, worker_id, lease_s, progress=None, message=None, now=None):
    """Extend our lease (and record progress); returns the task, or None if we lost it."""
    now = now or now_utc()
    changes = {"lease_expires_at": now + timedelta(seconds=lease_s), "updated_at": now}
    if progress is not None:
        changes["progress"] = progress
    if message is not None:
        changes["message"] = message
    return db.tasks.find_one_and_update({"_id": task_id, "status": "running", "worker_id": worker_id},
                                        {"$set": changes}, return_document=ReturnDocument.AFTER)


def finish(db, task_id, worker_id, status, result=None, error=None, now=None):
    """Move our running task to a final state; None if it is no longer ours."""
    now = now or now_utc()
    changes = {"status": status, "finished_at": now, "updated_at": now, "lease_expires_at": None}
    if status == "completed":
        changes.update(progress=100, result=result)
    if error is not None:
        changes["error"] = error
    return db.tasks.find_one_and_update({"_id": task_id, "status": "running", "worker_id": worker_id},
                                        {"$set": changes}, return_document=ReturnDocument.AFTER)


def retry_later(db, task_id, worker_id, error, delay_s, now=None):
    """Put our failed task back in the queue after `delay_s`."""
    now = now or now_utc()
    return db.tasks.find_one_and_update(
        {"_id": task_id, "status": "running", "worker_id": worker_id},
        {"$set": {"status": "queued", "run_after": now + timedelta(seconds=delay_s), "updated_at": now,
                  "last_error": error, "worker_id": None, "lease_expires_at": None}},
        return_document=ReturnDocument.AFTER)


def requeue_expired(db, now=None, limit=100):
    """Return tasks whose worker stopped renewing its lease to the queue, or fail them if out of tries.

    Each decision is one conditional update on the lease we saw expire, so a task is never
    briefly queued with no attempts left (where another worker could run it once too often).
    """
    now = now or now_utc()
    changed = []
    expired = list(db.tasks.find({"status": "running", "lease_expires_at": {"$lt": now}},
                                 {"attempts": 1, "max_attempts": 1, "lease_expires_at": 1}).limit(limit))
    for task in expired:
        seen = {"_id": task["_id"], "status": "running", "lease_expires_at": task["lease_expires_at"]}
        if task["attempts"] >= task["max_attempts"]:
            changes = {"status": "failed", "finished_at": now,
                       "error": "worker lost (lease expired) and no attempts left"}
        else:
            changes = {"status": "queued", "run_after": min(now, now_utc()), "last_error": "worker lost (lease expired)"}
        changes.update(updated_at=now, worker_id=None, lease_expires_at=None)
        updated = db.tasks.find_one_and_update(seen, {"$set": changes}, return_document=ReturnDocument.AFTER)
        if updated:
            changed.append(updated)
    return changed


def cancel(db, task_id, now=None):
    """Cancel a queued task at once, or ask a running one to stop; returns (task, how) or (None, None)."""
    now = now or now_utc()
    task = db.tasks.find_one_and_update(
        {"_id": task_id, "status": "queued"},
        {"$set": {"status": "cancelled", "finished_at": now, "updated_at": now}},
        return_document=ReturnDocument.AFTER)
    if task:
        return task, "cancelled"
    task = db.tasks.find_one_and_update(
        {"_id": task_id, "status": "running"}, {"$set": {"cancel_requested": True, "updated_at": now}},
        return_document=ReturnDocument.AFTER)
    return (task, "cancel_requested") if task else (None, None)


def get(db, task_id):
    return query.by_id(db.tasks, task_id)


def list_page(db, owner_id=None, status=None, task_type=None, limit=50, offset=0, sort="-created_at"):
    criteria = query.matching(owner_id=owner_id, status=status, task_type=task_type)
    return query.page(db.tasks, criteria, sort, limit, offset, projection={"result": 0})
