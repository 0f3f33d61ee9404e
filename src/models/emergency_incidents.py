"""The `emergency_incidents` collection, and the `public_alerts` broadcasts issued alongside it."""
from src.domain import now_utc
from src.models import query
from src.models.incidents import IncidentCollection

TYPES = ("medical", "fire", "crime", "accident", "hazard", "other")
STATUSES = ("reported", "dispatched", "on_scene", "resolved", "cancelled")
ACTIVE_STATUSES = ("reported", "dispatched", "on_scene")

# Dispatches push onto assigned_units and every alert raised for the incident onto alert_ids.
_incidents = IncidentCollection("emergency_incidents", list_fields=("assigned_units", "alert_ids"))
create = _incidents.create
get = _incidents.get
list_page = _incidents.list_page
update_if_status = _incidents.update_if_status
delete_by_source = _incidents.delete_by_source
_filter = _incidents.filter
oid = query.object_id


def add_alert(db, incident_id, alert_id):
    db.emergency_incidents.update_one({"_id": oid(incident_id)}, {"$push": {"alert_ids": alert_id}})


def set_if_missing(db, incident_id, field, value):
    """Set `field` unless it already has a value (e.g. the first dispatch or arrival time)."""
    db.emergency_incidents.update_one({"_id": oid(incident_id), field: None}, {"$set": {field: value}})


def count_by_status(db, start=None, end=None):
    base = _filter(start=start, end=end)
    return {status: db.emergency_incidents.count_documents(dict(base, status=status)) for status in STATUSES}


def reported_times(db, start, end, limit=100000):
    """`reported_at` of incidents reported in [start, end), oldest first (at most `limit`)."""
    cursor = (db.emergency_incidents.find(_filter(start=start, end=end), {"_id": 0, "reported_at": 1})
              .sort([("reported_at", 1), ("_id", 1)]).limit(limit))
    return [doc["reported_at"] for doc in cursor]


def count_open(db):
    """Incidents not yet resolved or cancelled, however long ago they were reported."""
    return db.emergency_incidents.count_documents({"status": {"$nin": ["resolved", "cancelled"]}})


def response_time_summary(db, start=None, end=None):
    """{count, avg_s, min_s, max_s} of response times of resolved incidents reported in the range."""
    match = dict(_filter(status="resolved", start=start, end=end), response_time_s={"$ne": None})
    rows = list(db.emergency_incidents.aggregate([
        {"$match": match},
        {"$group": {"_id": None, "count": {"$sum": 1}, "avg_s": {"$avg": "$response_time_s"},
                    "min_s": {"$min": "$response_time_s"}, "max_s": {"$max": "$response_time_s"}}},
    ]))
    if not rows:
        return {"count": 0, "avg_s": None, "min_s": None, "max_s": None}
    row = rows[0]
    return {"count": row["count"], "avg_s": row["avg_s"], "min_s": row["min_s"], "max_s": row["max_s"]}


# Public broadcasts live here because they are issued by the same emergency operators.

def insert_public_alert(db, doc):
    doc = dict(doc)
    doc.setdefault("created_at", now_utc())
    db.public_alerts.insert_one(doc)
    return doc


def public_alerts_page(db, limit=50, offset=0, sort="-created_at", district=None, severity=None):
    return query.page(db.public_alerts, query.matching(district=district, severity=severity), sort, limit, offset)

