"""The `traffic_incidents` collection: accidents, roadworks and other events on the roads."""
from src.models import query
from src.models.incidents import IncidentCollection

TYPES = ("accident", "roadwork", "breakdown", "congestion", "event", "hazard", "other")
STATUSES = ("reported", "responding", "cleared")

_incidents = IncidentCollection("traffic_incidents")
create = _incidents.create
get = _incidents.get
list_page = _incidents.list_page
update_if_status = _incidents.update_if_status
delete_by_source = _incidents.delete_by_source
oid = query.object_id


def set_fields(db, incident_id, changes):
    db.traffic_incidents.update_one({"_id": oid(incident_id)}, {"$set": changes})
