"""The `job_stats` collection: per-job run counts, last run and pause flag, shared by processes."""
from pymongo import ReturnDocument


def record_run(db, job_id, started_at, duration_ms, error=None, result=None):
    update = {"$inc": {"runs": 1}, "$set": {"last_run_at": started_at, "last_duration_ms": duration_ms}}
    if error:
        update["$inc"]["failures"] = 1
        update["$set"].update(last_error=error, last_error_at=started_at)
    else:
        update["$set"]["last_result"] = result if isinstance(result, (int, float, str, dict)) or result is None \
            else str(result)
    db.job_stats.update_one({"_id": job_id}, update, upsert=True)


def set_paused(db, job_id, paused):
    return db.job_stats.find_one_and_update({"_id": job_id}, {"$set": {"paused": paused}}, upsert=True,
                                            return_document=ReturnDocument.AFTER)


def is_paused(db, job_id):
    doc = db.job_stats.find_one({"_id": job_id}, {"paused": 1})
    return bool(doc and doc.get("paused"))


def all_stats(db, limit=200):
    return {doc["_id"]: doc for doc in db.job_stats.find({}).limit(limit)}
