"""The `units` collection: ambulances, fire engines and police cars with their live status."""
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from src.domain import now_utc
from src.models import query

KINDS = ("ambulance", "fire", "police")
STATUSES = ("available", "en_route", "on_scene", "returning", "out_of_service")
# A city has tens of units, not thousands; the bound only guards against a runaway collection.
MAX_UNITS = 5000
# Assignment fields cleared when a unit is freed.
ASSIGNMENT_FIELDS = ("incident_id", "dispatched_at", "eta_min", "eta_at", "distance_km", "destination",
                     "arrived_at", "work_until")



def count(db):
    return db.units.count_documents({})


def insert_if_missing(db, unit):
    """Insert `unit` unless its unit_id exists; True if inserted. Safe when processes race."""
    now = now_utc()
    try:
        result = db.units.update_one({"unit_id": unit["unit_id"]},
                                     {"$setOnInsert": dict(unit, created_at=now, updated_at=now)}, upsert=True)
    except DuplicateKeyError:
        return False  # two upserts can both miss the match; the unique index lets only one insert
    return result.upserted_id is not None


def get(db, unit_id):
    return db.units.find_one({"unit_id": unit_id})


def _filter(kind=None, status=None, district=None):
    query = {}
    for field, value in (("kind", kind), ("status", status), ("district", district)):
        if value:
            query[field] = value
    return query


def count_by_status(db):
    return {status: db.units.count_documents({"status": status}) for status in STATUSES}


def list_page(db, kind=None, status=None, district=None, limit=50, offset=0, sort="unit_id"):
    return query.page(db.units, _filter(kind, status, district), sort, limit, offset, tiebreak="unit_id")


def available(db, kind=None, limit=MAX_UNITS):
    """Units free to be dispatched, optionally of one kind."""
    return list(db.units.find(_filter(kind, "available")).sort("unit_id", 1).limit(limit))


def claim(db, unit_id, changes):
    """Apply `changes` to the unit only if it is available; the updated unit, or None.

    The status condition makes this atomic, so two dispatchers can never claim one unit.
    """
    return db.units.find_one_and_update({"unit_id": unit_id, "status": "available"},
                                        {"$set": dict(changes, updated_at=now_utc())},
                                        return_document=ReturnDocument.AFTER)


def for_incident(db, incident_id, statuses=None, limit=MAX_UNITS):
    query = {"incident_id": incident_id}
    if statuses:
        query["status"] = {"$in": list(statuses)}
    return list(db.units.find(query).sort("unit_id", 1).limit(limit))


def mark_on_scene(db, unit_id, location, when, work_until=None):
    """An en-route unit arrived; None if it was not en route."""
    changes = {"status": "on_scene", "location": location, "arrived_at": when, "updated_at": when}
    if work_until is not None:
        changes["work_until"] = work_until
    return db.units.find_one_and_update({"unit_id": unit_id, "status": "en_route"}, {"$set": changes},
                                        return_document=ReturnDocument.AFTER)


def due_to_arrive(db, now, limit=MAX_UNITS):
    """En-route units whose ETA has passed."""
    return list(db.units.find({"status": "en_route", "eta_at": {"$lte": now}}).sort("unit_id", 1).limit(limit))


def done_working(db, now, limit=MAX_UNITS):
    """On-scene units whose planned work time is over."""
    return list(db.units.find({"status": "on_scene", "work_until": {"$lte": now}}).sort("unit_id", 1).limit(limit))


def release_to_base(db, unit, when):
    """Make a unit available again, back at its base, with its assignment cleared."""
    return db.units.find_one_and_update(
        {"unit_id": unit["unit_id"]},
        {"$set": {"status": "available", "location": unit.get("base") or unit["location"], "updated_at": when},
         "$unset": {field: "" for field in ASSIGNMENT_FIELDS}},
        return_document=ReturnDocument.AFTER)
