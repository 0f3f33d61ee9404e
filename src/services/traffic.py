"""Traffic operations: incidents, signal plans from live flows, congestion-aware routes.

Live traffic state always comes from the latest-reading cache (one reading per sensor), never
from reading history.

- Flow: a reading's `vehicle_count` is the count over the last minute, so its hourly flow is
  vehicle_count * 60 veh/h.
- Placement: a sensor of the seeded city (`_city_sensors()`) sits at its registered
  intersection and watches its registered phase. Any other sensor that reports a location is
  attached to the nearest intersection of the road graph; at each intersection such sensors
  take phases alternately in sensor-id order, starting with a phase no registered sensor there
  watches (ns when none or both are watched). Sensors with neither are ignored.
  The seeded sensors sit at distinct intersections, one phase each, so a junction gets both
  phases measured only with the help of such extra sensors.
- Congestion: a sensor's congestion_level applies to every road touching its intersection;
  a road touched by several sensors takes the highest level.
"""
from flask import current_app
from marshmallow import ValidationError

from src.db import get_db
from src.errors import ApiError
from src.realtime import broadcast
from src.schemas.alerts import alert_wire
from src.models import alerts, traffic_incidents
from src.domain import actor, now_utc
from src.schemas.traffic import TrafficIncidentCreateSchema
from src.services import city, incidents, routing, signals
from src.services.latest import get_cache

COUNT_INTERVAL_S = 60
PHASES = ("ns", "ew")
ALERT_SEVERITIES = ("high", "critical")
# Moves an operator may make with PATCH: reported -> responding -> cleared, one step at a time.
TRANSITIONS = {"reported": ("responding",), "responding": ("cleared",)}


def _city_sensors():
    """The seeded city's traffic sensors, as configured (count and seed)."""
    config = current_app.config
    return city.traffic_sensors(config["SIM_TRAFFIC_SENSORS"], config["SIMULATION_SEED"])


def _latest_traffic():
    return get_cache(current_app).snapshot("traffic")


# Incidents

def _sensor_location(sensor_id):
    """A GeoJSON point for a known sensor: the city's registry first, then its latest reading."""
    for sensor in _city_sensors():
        if sensor["sensor_id"] == sensor_id:
            return city.geo_point(sensor["location"])
    for reading in _latest_traffic():
        if reading["sensor_id"] == sensor_id and reading.get("location"):
            return reading["location"]
    return None


def create_incident(data, user=None, source="api"):
    """Record a traffic incident; high/critical ones also raise and emit a traffic alert.

    `data` is validated with TrafficIncidentCreateSchema here too, so simulators may pass raw dicts.
    """
    data = TrafficIncidentCreateSchema().load(data)
    location = data.get("location")
    if location is None:
        location = _sensor_location(data["sensor_id"])
        if location is None:
            raise ValidationError({"location": [f"Sensor {data['sensor_id']!r} has no known location; give one."]})
    db = get_db()
    incident = incidents.record(traffic_incidents, data, location, user, source,
                                sensor_id=data.get("sensor_id"), road_id=data.get("road_id"))
    if incident["severity"] in ALERT_SEVERITIES:
        alert = alerts.insert_event_alert(db, {
            "module": "traffic", "type": "incident", "severity": incident["severity"],
            "sensor_id": incident["sensor_id"] or f"incident:{incident['_id']}",
            "message": _alert_message(incident), "district": incident["district"], "location": location,
            "incident_id": str(incident["_id"]), "value": None, "threshold": None, "source": source,
        })
        traffic_incidents.set_fields(db, incident["_id"], {"alert_id": alert["_id"]})
        incident["alert_id"] = alert["_id"]
        broadcast.emit_alert(alert_wire(alert))
    return incident


def _alert_message(incident):
    where = incident.get("road_id") or incident["district"]
    text = f"{incident['severity'].capitalize()} traffic {incident['type']} reported at {where}"
    return f"{text}: {incident['description']}" if incident.get("description") else text


def list_incidents(**filters):
    """One page of traffic incidents (the filters of `incidents.list_page`)."""
    return incidents.list_page(traffic_incidents, **filters)


def get_incident(incident_id):
    """The traffic incident with this id; 404 if there is none."""
    return incidents.get_or_404(traffic_incidents, incident_id, "Traffic incident not found")


def update_incident(incident_id, data, user=None):
    """Move an incident along reported -> responding -> cleared; 404 if missing, 409 for any other move.

    Clearing an incident resolves the alert it raised.
    """
    db = get_db()
    updated = incidents.move(traffic_incidents, get_incident, incident_id, data, TRANSITIONS, _refuse,
                             lambda current, target: {f"{target}_at": now_utc(), f"{target}_by": actor(user)})
    if data["status"] == "cleared" and updated.get("alert_id"):
        resolved = alerts.resolve(db, updated["alert_id"], actor(user) or "system")
        if resolved:
            broadcast.emit_alert_updated(alert_wire(resolved), "resolved")
    return updated


def _refuse(current, target):
    raise ApiError(f"A {current} incident cannot become {target} (reported -> responding -> cleared)",
                   status=409, error="invalid_transition")


# Where live readings sit on the road graph

def _sensor_nodes(readings):
    """[(node, phase, registered, reading)] for every reading that can be placed at an intersection."""
    registry = {sensor["sensor_id"]: sensor for sensor in _city_sensors()}
    graph = city.road_graph(current_app.config['SIMULATION_SEED'])
    placed, strays = [], {}
    for reading in readings:
        sensor = registry.get(reading["sensor_id"])
        if sensor is not None:
            placed.append((sensor["node"], sensor["phase"], True, reading))
        elif reading.get("location"):
            lng, lat = reading["location"]["coordinates"][:2]
            strays.setdefault(graph.nearest_node(lng, lat), []).append(reading)
    for node, group in strays.items():
        watched = {phase for at, phase, _, _ in placed if at == node}
        first = next((i for i, phase in enumerate(PHASES) if phase not in watched), 0)
        for index, reading in enumerate(sorted(group, key=lambda r: r["sensor_id"])):
            placed.append((node, PHASES[(first + index) % 2], False, reading))
    return placed


def flow_veh_h(reading):
    return signals.flows_from_counts(reading.get("vehicle_count") or 0, COUNT_INTERVAL_S)


def signal_timings(district=None, yield_fn=None):
    """Webster plans for every intersection with live readings (optionally in one district)."""
    graph = city.road_graph(current_app.config['SIMULATION_SEED'])
    by_node = {}
    for node, phase, registered, reading in _sensor_nodes(_latest_traffic()):
        by_node.setdefault(node, []).append({
            "sensor_id": reading["sensor_id"], "phase": phase, "vehicle_count": reading.get("vehicle_count"),
            "flow_veh_h": flow_veh_h(reading), "timestamp": reading.get("timestamp"), "registered": registered,
        })
    items = []
    for node in sorted(by_node):
        point = graph.nodes[node]
        node_district = city.nearest_district(point)
        if district and node_district != district:
            continue
        sensors = sorted(by_node[node], key=lambda s: s["sensor_id"])
        critical = {phase: max((s["flow_veh_h"] for s in sensors if s["phase"] == phase), default=0.0)
                    for phase in PHASES}
        plan = signals.webster_timing([critical[phase] for phase in PHASES])
        items.append({
            "intersection": node, "location": city.geo_point(point), "district": node_district,
            "phases": {phase: {"flow_veh_h": critical[phase], "green_s": green}
                       for phase, green in zip(PHASES, plan["greens_s"])},
            "cycle_s": plan["cycle_s"], "Y": plan["Y"], "lost_time_s": plan["lost_time_s"],
            "oversaturated": plan["oversaturated"], "sensors": sensors,
        })
        if yield_fn is not None:
            yield_fn()
    return {"items": items, "method": "webster", "generated_at": now_utc(),
            "flow_basis": f"vehicle_count per {COUNT_INTERVAL_S} s x {3600 // COUNT_INTERVAL_S} = veh/h"}


# Routes

def congestion_by_road(readings=None):
    """{road_id: congestion 0-100} from the latest readings (highest level of the sensors touching a road)."""
    graph = city.road_graph(current_app.config['SIMULATION_SEED'])
    congestion = {}
    readings = _latest_traffic() if readings is None else readings
    for node, _, _, reading in _sensor_nodes(readings):
        level = float(reading.get("congestion_level") or 0.0)
        for edge in graph.neighbours(node):
            congestion[edge["road_id"]] = max(congestion.get(edge["road_id"], 0.0), level)
    return congestion


def _node_for(graph, point, field):
    if isinstance(point, str):
        if point not in graph.nodes:
            raise ApiError(f"Unknown intersection {point!r}", status=404, errors={field: ["unknown node id"]})
        return point
    return graph.nearest_node(point[0], point[1])


def plan_route(origin, destination):
    """The fastest route by A* on the city graph under current congestion.

    origin/destination: (lng, lat) snapped to the nearest intersection, or an intersection id.
    """
    graph = city.road_graph(current_app.config['SIMULATION_SEED'])
    origin_node = _node_for(graph, origin, "origin")
    destination_node = _node_for(graph, destination, "destination")
    congestion = congestion_by_road()
    try:
        result = routing.shortest_path(graph, origin_node, destination_node, congestion=congestion)
    except routing.NoRoute:
        raise ApiError(f"No route joins {origin_node} to {destination_node}", status=422, error="no_route")
    return dict(result, coordinates=[list(graph.nodes[node]) for node in result["path"]],
                origin_node=origin_node, destination_node=destination_node,
                congested_roads=sum(1 for level in congestion.values() if level > 0), algorithm="a_star")
