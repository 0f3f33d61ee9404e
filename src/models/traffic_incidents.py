"""The `traffic_incidents` collection: accidents, roadworks and other events on the roads."""
from pymongo import ReturnDocument

from src.domain import now_utc
from src.models import query

TYPES = ("accident", "roadwork", "breakdown", "congestion", "event", "hazard", "other")
STATUSES = ("reported", "responding", "cleared")



oid = query.object_id


def create(db, doc):
    now = now_utc()
    doc = dict(doc, updated_at=now)
    doc.setdefault("reported_at", now)
    doc.setdefault("status", "reported")
    db.traffic_incidents.insert_one(doc)
    return doc


def get(db, incident_id):
    return query.by_id(db.traffic_incidents, incident_id)


def _filter(status=None, district=None, severity=None, incident_type=None, start=None, end=None):
    return query.within(query.matching(status=status, type=incident_type, severity=severity, district=district),
                        "reported_at", start, end)


def list_page(db, limit=50, offset=0, sort="-reported_at", **filters):
    return query.page(db.traffic_incidents, _filter(**filters), sort, limit, offset)


def update_if_status(db, incident_id, from_status, changes):
    """Apply `changes` only while the incident is `from_status`; the updated doc, or None."""
    key = oid(incident_id)
    if key is None:
        return None
    return db.traffic_incidents.find_one_and_update(
        {"_id": key, "status": from_status}, {"$set": dict(changes, updated_at=now_utc())},
        return_document=ReturnDocument.AFTER)


def set_fields(db, incident_id, changes):
    db.traffic_incidents.update_one({"_id": oid(incident_id)}, {"$set": changes})


def delete_by_source(db, source):
    return db.traffic_incidents.delete_many({"source": source}).deleted_count
