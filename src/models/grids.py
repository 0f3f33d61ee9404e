"""The `grids` collection: power grid segments as entities, with their last reported state."""
from datetime import datetime, timezone

from pymongo.errors import DuplicateKeyError

from src.models.query import page

LAST_FIELDS = ("load_mw", "capacity_mw", "solar_mw", "wind_mw", "hydro_mw", "frequency_hz", "voltage_kv",
               "utilization_pct", "renewable_pct")


def create(db, doc):
    now = datetime.now(timezone.utc)
    doc = dict(doc, created_at=now, updated_at=now)
    db.grids.insert_one(doc)
    return doc


def get(db, grid_id):
    return db.grids.find_one({"grid_id": grid_id})


def record_reading(db, reading):
    """Copy the reading's state onto the grid; a grid first seen in a reading is registered from it.

    Auto-registration: name = grid_id, capacity_mw, district and location from the (validated) reading, and
    auto_registered = True. A grid registered without a district takes the first one a later reading carries;
    once it has one, readings do not change it.
    """
    grid_id = reading["grid_id"]
    changes = {k: reading[k] for k in LAST_FIELDS if reading.get(k) is not None}
    changes.update(last_reading_at=reading["timestamp"], updated_at=datetime.now(timezone.utc))
    newer_or_unset = {"grid_id": grid_id,
                      "$or": [{"last_reading_at": {"$lte": reading["timestamp"]}}, {"last_reading_at": None}]}
    result = db.grids.update_one(newer_or_unset, {"$set": changes})
    if not result.matched_count and not db.grids.find_one({"grid_id": grid_id}, {"_id": 1}):
        doc = dict(changes, grid_id=grid_id, name=grid_id, auto_registered=True, created_at=changes["updated_at"])
        doc.update({k: reading[k] for k in ("district", "location") if reading.get(k) is not None})
        try:
            db.grids.insert_one(doc)
            return
        except DuplicateKeyError:  # another process registered it first: update that one instead
            db.grids.update_one(newer_or_unset, {"$set": changes})
    if reading.get("district"):
        db.grids.update_one({"grid_id": grid_id, "district": None}, {"$set": {"district": reading["district"]}})


def list_page(db, district=None, limit=50, offset=0, sort="grid_id"):
    query = {"district": district} if district else {}
    return page(db.grids, query, sort, limit, offset, tiebreak="grid_id")


def count(db):
    return db.grids.count_documents({})


def insert_if_missing(db, doc):
    """Register a grid unless one with its grid_id exists; True if this call inserted it."""
    now = datetime.now(timezone.utc)
    try:
        result = db.grids.update_one({"grid_id": doc["grid_id"]},
                                     {"$setOnInsert": dict(doc, created_at=now, updated_at=now)}, upsert=True)
    except DuplicateKeyError:
        return False  # another process inserted it between our match and our insert
    return result.upserted_id is not None
