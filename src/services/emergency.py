"""Emergency response: units, incidents, dispatch, public broadcasts and coverage.

- Distances are straight-line (haversine) km; ETA = distance / the unit's speed_kmh.
- Response time (`response_time_s`) is measured from `reported_at` to the first unit's arrival on
  scene (`on_scene_at`) when one was recorded, otherwise to the resolution; `response_time_basis`
  says which ("on_scene" or "resolved").
- Resolving or cancelling an incident frees its units at once: status `available`, location back
  at their base (no return trip is simulated, so coverage is restored immediately).
- `advance_units` is the simulator's clock: arrivals at ETA, work on scene, resolution of
  simulated incidents.
- Coverage is measured from each district's centre.
"""
import random
from datetime import timedelta

from src.db import get_db
from src.errors import ApiError
from src.realtime import broadcast
from src.schemas.alerts import alert_wire
from src.models import alerts, emergency_incidents, units
from src.domain import actor, now_utc
from src.schemas.emergency import EmergencyIncidentCreateSchema
from src.services import city, incidents
from src.services.routing import haversine_km

# The unit kind an incident type needs; other types take the nearest unit of any kind.
KIND_FOR_TYPE = {"medical": "ambulance", "fire": "fire", "crime": "police"}
# Moves an operator may make with PATCH; `dispatched` is reached only by dispatching a unit.
TRANSITIONS = {
    "reported": ("resolved", "cancelled"),
    "dispatched": ("on_scene", "resolved", "cancelled"),
    "on_scene": ("resolved",),
}
DISPATCH_RETRIES = 3
# How long (minutes) simulated crews work on scene before a simulated incident is resolved.
WORK_MIN = (4.0, 15.0)


def _point(location):
    """(lng, lat) from a GeoJSON point or a pair."""
    if isinstance(location, dict):
        location = location["coordinates"]
    return (float(location[0]), float(location[1]))


def _eta_min(distance_km, speed_kmh):
    return distance_km / speed_kmh * 60


# Units

def seed_units(db):
    """Insert the city's units (available, at their base) when the collection is empty; returns how many."""
    if units.count(db):
        return 0
    inserted = 0
    for unit in city.emergency_units():
        inserted += units.insert_if_missing(db, {
            "unit_id": unit["unit_id"], "kind": unit["kind"], "district": unit["district"],
            "base": city.geo_point(unit["base"]), "location": city.geo_point(unit["base"]),
            "speed_kmh": unit["speed_kmh"], "status": "available",
        })
    return inserted


def list_units(limit=50, offset=0, sort="unit_id", kind=None, status=None, district=None):
    return units.list_page(get_db(), kind=kind, status=status, district=district, limit=limit, offset=offset,
                           sort=sort)


def get_unit(unit_id):
    unit = units.get(get_db(), unit_id)
    if unit is None:
        raise ApiError(f"Unit {unit_id} not found", status=404)
    return unit


def _nearest(point, candidates):
    """The closest of `candidates` to `point`, with distance_km and eta_min; None if there are none."""
    best = None
    for unit in candidates:
        distance = haversine_km(point, _point(unit["location"]))
        if best is None or (distance, unit["unit_id"]) < (best[0], best[1]["unit_id"]):
            best = (distance, unit)
    if best is None:
        return None
    distance, unit = best
    return dict(unit, distance_km=round(distance, 3), eta_min=round(_eta_min(distance, unit["speed_kmh"]), 2))


def nearest_available_unit(location, kind=None):
    """The available unit (of `kind`, if given) closest to `location` (GeoJSON point or (lng, lat)).

    Returns the unit with `distance_km` and `eta_min` added, or None when none is available.
    """
    return _nearest(_point(location), units.available(get_db(), kind))


# Incidents

def create_incident(data, user=None, source="api"):
    """Record an emergency incident and raise (store and emit) its emergency alert.

    `data` is validated with EmergencyIncidentCreateSchema here too, so simulators may pass raw dicts.
    """
    data = EmergencyIncidentCreateSchema().load(data)
    db = get_db()
    incident = incidents.record(emergency_incidents, data, data["location"], user, source)
    text = f"{incident['severity'].capitalize()} {incident['type']} emergency reported in {incident['district']}"
    alert = _raise_alert(db, incident, "incident",
                         f"{text}: {incident['description']}" if incident["description"] else text)
    incident["alert_ids"] = [alert["_id"]]
    return incident


def _raise_alert(db, incident, alert_type, message, **extra):
    alert = alerts.insert_event_alert(db, dict(
        extra, module="emergency", type=alert_type, severity=incident["severity"],
        sensor_id=f"incident:{incident['_id']}", incident_id=str(incident["_id"]), message=message,
        district=incident["district"], location=incident["location"], value=None, threshold=None,
        source=incident.get("source", "api")))
    emergency_incidents.add_alert(db, incident["_id"], alert["_id"])
    broadcast.emit_alert(alert_wire(alert))
    return alert


def list_incidents(**filters):
    """One page of emergency incidents (the filters of `incidents.list_page`)."""
    return incidents.list_page(emergency_incidents, **filters)


def get_incident(incident_id):
    """The emergency incident with this id; 404 if there is none."""
    return incidents.get_or_404(emergency_incidents, incident_id, "Emergency incident not found")


def update_incident(incident_id, data, user=None):
    """Move an incident to `data["status"]`; 404 if missing, 409 if the move is not allowed.

    on_scene marks its en-route units arrived; resolved/cancelled free its units and resolve its alerts.
    """
    db = get_db()
    now = now_utc()
    updated = incidents.move(emergency_incidents, get_incident, incident_id, data, TRANSITIONS, _refuse,
                             lambda current, target: _stamps(current, target, user, now))
    target = data["status"]
    key = str(updated["_id"])
    if target == "on_scene":
        for unit in units.for_incident(db, key, statuses=("en_route",)):
            units.mark_on_scene(db, unit["unit_id"], updated["location"], now)
    else:
        for unit in units.for_incident(db, key):
            units.release_to_base(db, unit, now)
        for alert_id in updated.get("alert_ids", []):
            resolved = alerts.resolve(db, alert_id, actor(user) or "system")
            if resolved:
                broadcast.emit_alert_updated(alert_wire(resolved), "resolved")
    return updated


def _stamps(current, target, user, now):
    """What a move to `target` records: the arrival, the resolution with its response time, or the cancellation."""
    if target == "on_scene":
        return {"on_scene_at": current.get("on_scene_at") or now}
    if target == "resolved":
        arrival = current.get("on_scene_at")
        return {"resolved_at": now, "resolved_by": actor(user),
                "response_time_s": round(((arrival or now) - current["reported_at"]).total_seconds(), 3),
                "response_time_basis": "on_scene" if arrival else "resolved"}
    # cancelled: the only other move TRANSITIONS allows
    return {"cancelled_at": now, "cancelled_by": actor(user)}


def _refuse(current, target):
    if target == "dispatched":
        message = "An incident becomes dispatched by dispatching a unit to it"
    else:
        allowed = ", ".join(TRANSITIONS.get(current, ())) or "nothing"
        message = f"A {current} incident cannot become {target} (allowed: {allowed})"
    raise ApiError(message, status=409, error="invalid_transition")


def unit_arrived(unit_id, when=None, work_until=None):
    """An en-route unit reached its incident (for simulators): unit on_scene, incident on_scene on first arrival."""
    unit = get_unit(unit_id)
    if unit["status"] != "en_route":
        raise ApiError(f"Unit {unit_id} is {unit['status']}, not en route", status=409, error="unit_not_en_route")
    return _arrive(get_db(), unit, when or now_utc(), work_until)


def _arrive(db, unit, when, work_until=None):
    incident = get_incident(unit["incident_id"])
    arrived = units.mark_on_scene(db, unit["unit_id"], incident["location"], when, work_until)
    if arrived is not None:
        emergency_incidents.set_if_missing(db, incident["_id"], "on_scene_at", when)
        emergency_incidents.update_if_status(db, incident["_id"], ("dispatched",), {"status": "on_scene"})
    return arrived


def advance_units(now=None, rng=None, work_min=WORK_MIN, resolve_sources=("simulator",)):
    """One simulation step: en-route units past their ETA arrive and work for a random while; then
    incidents from `resolve_sources` whose units are done are resolved (which returns their units to base).

    Incidents reported by people are never resolved here: an operator does that. Returns how many
    units changed state.
    """
    db = get_db()
    now = now or now_utc()
    rng = rng or random
    changed = 0
    for unit in units.due_to_arrive(db, now):
        work_until = now + timedelta(minutes=rng.uniform(*work_min))
        try:
            # Arrival is stamped at the ETA, not at this tick, so response times do not depend on tick length.
            if _arrive(db, unit, unit.get("eta_at") or now, work_until) is not None:
                changed += 1
        except ApiError:  # its incident no longer exists
            units.release_to_base(db, unit, now)
    for unit in units.done_working(db, now):
        incident = emergency_incidents.get(db, unit["incident_id"])
        if incident is None:  # purged or deleted: nothing left to work on
            units.release_to_base(db, unit, now)
            changed += 1
            continue
        if (incident.get("source") not in resolve_sources
                or "resolved" not in TRANSITIONS.get(incident["status"], ())):
            continue
        try:
            update_incident(str(incident["_id"]), {"status": "resolved"}, user=None)
        except ApiError:  # resolved by someone else meanwhile
            continue
        changed += 1
    return changed


# Dispatch

def dispatch(unit_id, incident_id, user=None):
    """Send an available unit to an open incident; 404 for unknown ids, 409 if the unit is busy or incident closed."""
    db = get_db()
    incident = get_incident(incident_id)
    if incident["status"] not in emergency_incidents.ACTIVE_STATUSES:
        raise ApiError(f"Incident is {incident['status']}; units cannot be dispatched to it", status=409,
                       error="incident_closed")
    unit = get_unit(unit_id)
    if unit["status"] != "available":
        raise _unit_busy(unit)
    distance = haversine_km(_point(unit["location"]), _point(incident["location"]))
    eta = _eta_min(distance, unit["speed_kmh"])
    now = now_utc()
    assignment = {"unit_id": unit_id, "kind": unit["kind"], "distance_km": round(distance, 3),
                  "eta_min": round(eta, 2), "eta_at": now + timedelta(minutes=eta), "dispatched_at": now}
    key = str(incident["_id"])
    claimed = units.claim(db, unit_id, dict(
        {k: v for k, v in assignment.items() if k not in ("unit_id", "kind")},
        status="en_route", incident_id=key, destination=incident["location"]))
    if claimed is None:  # another dispatcher took it first
        raise _unit_busy(units.get(db, unit_id))
    updated = emergency_incidents.update_if_status(db, key, emergency_incidents.ACTIVE_STATUSES, {},
                                                   push={"assigned_units": assignment})
    if updated is None:  # closed meanwhile: give the unit back
        units.release_to_base(db, claimed, now_utc())  # it never left: available units sit at base
        raise ApiError("Incident was closed meanwhile", status=409, error="incident_closed")
    if updated["status"] == "reported":
        updated = emergency_incidents.update_if_status(
            db, key, ("reported",), {"status": "dispatched", "dispatched_at": now}) or get_incident(key)
    alert = _raise_alert(
        db, updated, "dispatch",
        f"{unit_id} ({unit['kind']}) dispatched to {updated['type']} incident in {updated['district']}: "
        f"{assignment['distance_km']} km, ETA {assignment['eta_min']} min",
        unit_id=unit_id)
    updated.setdefault("alert_ids", []).append(alert["_id"])
    return {"unit": claimed, "incident": updated, "distance_km": assignment["distance_km"],
            "eta_min": assignment["eta_min"], "eta_at": assignment["eta_at"], "alert_id": str(alert["_id"])}


def _unit_busy(unit):
    return ApiError(f"Unit {unit['unit_id']} is {unit['status']}, not available", status=409,
                    error="unit_unavailable")


def dispatch_nearest(incident_id, kind=None, user=None):
    """Dispatch the nearest available unit of `kind` (default: the kind the incident type needs)."""
    incident = get_incident(incident_id)
    kind = kind or KIND_FOR_TYPE.get(incident["type"])
    for _ in range(DISPATCH_RETRIES):
        unit = nearest_available_unit(incident["location"], kind)
        if unit is None:
            raise ApiError(f"No {kind or 'emergency'} unit is available", status=409, error="no_unit_available")
        try:
            return dispatch(unit["unit_id"], incident_id, user)
        except ApiError as exc:
            if exc.error != "unit_unavailable":  # only a lost race is worth another try
                raise
    raise ApiError("Every nearby unit was taken while dispatching; try again", status=409,
                   error="no_unit_available")


# Public broadcasts

def broadcast_public_alert(data, user):
    """Store a public alert and send `public_alert` to every connected client."""
    doc = emergency_incidents.insert_public_alert(get_db(), {
        "title": data["title"], "message": data["message"], "severity": data["severity"],
        "district": data.get("district"), "issued_by": user.get("email") if user else None,
        "issued_by_id": str(user["_id"]) if user else None, "created_at": now_utc(),
    })
    broadcast.emit_public_alert({key: doc.get(key) for key in (
        "_id", "title", "message", "severity", "district", "issued_by", "created_at")})
    return doc


def list_public_alerts(limit=50, offset=0, sort="-created_at", district=None, severity=None):
    return emergency_incidents.public_alerts_page(get_db(), limit=limit, offset=offset, sort=sort,
                                                  district=district, severity=severity)


# Analysis

def coverage_analysis(yield_fn=None):
    """For every district, the nearest available unit of each kind from the district centre."""
    available = units.available(get_db())
    items = []
    for name in city.DISTRICT_NAMES:
        centre = city.district_center(name)
        per_kind = {}
        for kind in units.KINDS:
            best = _nearest(centre, [unit for unit in available if unit["kind"] == kind])
            per_kind[kind] = ({"unit_id": best["unit_id"], "distance_km": best["distance_km"],
                               "eta_min": best["eta_min"]} if best else
                              {"unit_id": None, "distance_km": None, "eta_min": None})
        items.append({"district": name, "location": city.geo_point(centre), "units": per_kind})
        if yield_fn is not None:
            yield_fn()
    counts = {kind: sum(1 for unit in available if unit["kind"] == kind) for kind in units.KINDS}
    return {"items": items, "available_units": counts, "generated_at": now_utc()}


def statistics(start=None, end=None):
    """Incident counts by status and response times of resolved incidents reported in [start, end)."""
    db = get_db()
    by_status = emergency_incidents.count_by_status(db, start, end)
    summary = emergency_incidents.response_time_summary(db, start, end)
    response = {key: (round(value, 1) if isinstance(value, float) else value) for key, value in summary.items()}
    return {"start": start, "end": end, "total": sum(by_status.values()), "by_status": by_status,
            "response_time": response, "units_by_status": units.count_by_status(db)}
