"""The `bins` collection: waste bins as entities, with their last reported level."""
from datetime import datetime, timezone

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from src.models.query import page

WASTE_TYPES = ("general", "recycling", "organic", "glass", "paper", "plastic", "hazardous")


def create(db, doc):
    now = datetime.now(timezone.utc)
    doc = dict(doc, created_at=now, updated_at=now)
    doc.setdefault("fill_level_pct", 0.0)
    doc.setdefault("status", "ok")
    db.bins.insert_one(doc)
    return doc


def insert_if_missing(db, doc):
    """Register a bin unless its bin_id exists; True if this call inserted it. Safe when processes race."""
    now = datetime.now(timezone.utc)
    doc = {"fill_level_pct": 0.0, "status": "ok", **doc, "created_at": now, "updated_at": now}
    try:
        result = db.bins.update_one({"bin_id": doc["bin_id"]}, {"$setOnInsert": doc}, upsert=True)
    except DuplicateKeyError:
        return False  # another process inserted it between our match and our insert
    return result.upserted_id is not None


def get(db, bin_id):
    return db.bins.find_one({"bin_id": bin_id})


def existing_ids(db, bin_ids):
    found = db.bins.find({"bin_id": {"$in": list(set(bin_ids))}}, {"bin_id": 1}).limit(len(bin_ids) + 1)
    return {doc["bin_id"] for doc in found}


def find_many(db, bin_ids):
    return {d["bin_id"]: d for d in db.bins.find({"bin_id": {"$in": list(set(bin_ids))}}).limit(len(bin_ids) + 1)}


def record_level(db, bin_id, reading):
    """Copy a level reading onto the bin; a big drop in level marks it emptied."""
    previous = db.bins.find_one({"bin_id": bin_id}, {"fill_level_pct": 1, "last_reading_at": 1})
    changes = {"fill_level_pct": reading["fill_level_pct"], "last_reading_at": reading["timestamp"],
               "updated_at": datetime.now(timezone.utc)}
    for field in ("temperature_c", "battery_pct"):
        if reading.get(field) is not None:
            changes[field] = reading[field]
    if previous and previous.get("fill_level_pct", 0) - reading["fill_level_pct"] >= 30:
        changes["last_emptied_at"] = reading["timestamp"]
    # Conditional on time, so an older reading (late, or racing a newer one) never overwrites the state.
    not_newer = [{"last_reading_at": {"$lte": reading["timestamp"]}}, {"last_reading_at": None}]
    return db.bins.find_one_and_update({"bin_id": bin_id, "$or": not_newer}, {"$set": changes},
                                       return_document=ReturnDocument.AFTER)


def list_page(db, district=None, waste_type=None, min_fill=None, limit=50, offset=0, sort="bin_id"):
    query = {}
    if district:
        query["district"] = district
    if waste_type:
        query["waste_type"] = waste_type
    if min_fill is not None:
        query["fill_level_pct"] = {"$gte": min_fill}
    return page(db.bins, query, sort, limit, offset, tiebreak="bin_id")


def above_threshold(db, threshold, district=None, limit=1000):
    query = {"fill_level_pct": {"$gte": threshold}}
    if district:
        query["district"] = district
    return list(db.bins.find(query).sort("bin_id", 1).limit(limit))


def mark_emptied(db, bin_ids, when):
    return db.bins.update_many({"bin_id": {"$in": list(bin_ids)}},
                               {"$set": {"fill_level_pct": 0.0, "last_emptied_at": when, "updated_at": when}}
                               ).modified_count


def count(db):
    return db.bins.count_documents({})
