"""The `grids` collection: power grid segments as entities, with their last reported state."""
from datetime import datetime, timezone

from pymongo.errors import DuplicateKeyError

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
    """Copy the reading's state onto the grid, creating the grid on its first reading."""
    changes = {k: reading[k] for k in LAST_FIELDS if reading.get(k) is not None}
    changes.update(last_reading_at=reading["timestamp"], updated_at=datetime.now(timezone.utc))
    newer_or_unset = [{"last_reading_at": {"$lte": reading["timestamp"]}}, {"last_reading_at": None}]
    result = db.grids.update_one({"grid_id": reading["grid_id"], "$or": newer_or_unset}, {"$set": changes})
    if result.matched_count or db.grids.find_one({"grid_id": reading["grid_id"]}, {"_id": 1}):
        return
    doc = dict(changes, grid_id=reading["grid_id"], name=reading["grid_id"], created_at=changes["updated_at"])
    if reading.get("district"):
        doc["district"] = reading["district"]
    try:
        db.grids.insert_one(doc)
    except DuplicateKeyError:
        pass  # another process registered it first


def list_page(db, district=None, limit=50, offset=0, sort="grid_id"):
    query = {"district": district} if district else {}
    field = sort.lstrip("-+")
    direction = -1 if sort.startswith("-") else 1
    items = list(db.grids.find(query).sort([(field, direction), ("grid_id", 1)]).skip(offset).limit(limit))
    return {"items": items, "total": db.grids.count_documents(query)}


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
