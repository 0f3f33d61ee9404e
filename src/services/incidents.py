"""The incident flow emergency and traffic share: record, look up, list, and move along a status table.

Each function takes the incident's collection module (`models.emergency_incidents` or
`models.traffic_incidents`); what differs (alerts, units, sensors, the transition table and its
wording) stays in `services/emergency.py` and `services/traffic.py`.
"""
from src.db import get_db
from src.domain import SEVERITY_RANK, actor, now_utc
from src.errors import ApiError
from src.services import city


def record(model, data, location, user=None, source="api", **extra):
    """Store a new incident from validated `data` at `location`; `extra` fields are stored after its district."""
    return model.create(get_db(), {
        "type": data["type"], "severity": data["severity"], "severity_rank": SEVERITY_RANK[data["severity"]],
        "description": data.get("description", ""), "location": location,
        "district": data.get("district") or city.nearest_district(tuple(location["coordinates"][:2])),
        **extra, "source": source,
        "reported_at": data.get("reported_at") or now_utc(), "reported_by": actor(user), "status": "reported",
    })


def get_or_404(model, incident_id, not_found):
    """The incident with this id, or a 404 ApiError saying `not_found`."""
    incident = model.get(get_db(), incident_id)
    if incident is None:
        raise ApiError(not_found, status=404)
    return incident


def list_page(model, limit=50, offset=0, sort="-reported_at", start=None, end=None, status=None, type=None,
              severity=None, district=None):
    """One page of incidents; `type` is the query argument the model calls `incident_type`."""
    return model.list_page(get_db(), limit=limit, offset=offset, sort=sort, start=start, end=end,
                           status=status, incident_type=type, severity=severity, district=district)


def move(model, get_incident, incident_id, data, transitions, refuse, stamps):
    """Move an incident to `data["status"]` if `transitions` allows it from its status; the updated doc.

    `stamps(current, target)` gives the fields the move records besides status and note.
    `refuse(current_status, target)` raises the 409, both for a move the table forbids and for one
    lost to another writer.
    """
    current = get_incident(incident_id)
    target = data["status"]
    if target not in transitions.get(current["status"], ()):
        refuse(current["status"], target)
    changes = {"status": target}
    if data.get("note") is not None:
        changes["note"] = data["note"]
    changes.update(stamps(current, target))
    updated = model.update_if_status(get_db(), incident_id, (current["status"],), changes)
    if updated is None:  # moved by someone else between our read and write
        refuse(get_incident(incident_id)["status"], target)
    return updated
