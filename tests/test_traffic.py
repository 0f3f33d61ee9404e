"""Traffic incidents, Webster signal plans from live flows and congestion-aware routes over REST.

The city is the seeded one (seed 42): TRF-007 watches phase ns at intersection N-5-4
(Downtown), TRF-017 watches ns at N-3-6, and row 3 of the grid is a 60 km/h arterial with
0.55 km blocks, so N-3-0 -> N-3-6 is 6 blocks = 3.3 km in 3.3 min.
"""
from datetime import datetime, timedelta, timezone

import pytest

from src import create_app
from src.db import get_db
from src.realtime import broadcast
from src.services import city, routing, signals, traffic
from src.services.latest import get_cache
from tests.conftest import bearer, drop_database, make_config

GRAPH = city.road_graph()


@pytest.fixture(scope="module")
def app():
    """One app for the module (building one per test dominates the run time); data is reset per test."""
    app = create_app(make_config())
    yield app
    drop_database(app)


@pytest.fixture(autouse=True)
def fresh_data(app):
    db = get_db(app)
    for name in ("traffic_incidents", "alerts", "readings", "latest"):
        db[name].delete_many({})
    get_cache(app).clear()
    app.extensions["open_alerts"].load([])


@pytest.fixture
def alerts_emitted(monkeypatch):
    calls = {"alerts": [], "updated": []}
    monkeypatch.setattr(broadcast, "emit_alert", lambda alert, escalated=False: calls["alerts"].append(alert))
    monkeypatch.setattr(broadcast, "emit_alert_updated",
                        lambda alert, change: calls["updated"].append((alert, change)))
    return calls


@pytest.fixture
def viewer_headers(make_user):
    _, tokens = make_user("viewer")
    return bearer(tokens["access_token"])


def node_point(node):
    return city.geo_point(GRAPH.nodes[node])


def post_readings(client, headers, readings):
    items = [dict({"average_speed": 30.0, "congestion_level": 10.0}, **reading) for reading in readings]
    response = client.post("/api/traffic/data", headers=headers, json=items)
    assert response.status_code == 201, response.get_json()


def create(client, headers, **body):
    body = dict({"type": "accident", "severity": "medium", "location": node_point("N-4-4")}, **body)
    return client.post("/api/traffic/incidents", headers=headers, json=body)


# Incidents

def test_create_incident_derives_district_and_only_high_ones_raise_alerts(client, admin_headers, alerts_emitted):
    low = create(client, admin_headers, severity="low", description="Fender bender")
    assert low.status_code == 201
    body = low.get_json()
    assert body["status"] == "reported" and body["district"] == "Downtown" and body["source"] == "api"
    assert body["reported_by"]["email"] == "admin@smartcity.com"
    assert alerts_emitted["alerts"] == [] and body.get("alert_id") is None

    high = create(client, admin_headers, severity="high").get_json()
    [alert] = alerts_emitted["alerts"]
    assert (alert["module"], alert["type"], alert["severity"]) == ("traffic", "incident", "high")
    assert alert["sensor_id"] == f"incident:{high['id']}"
    assert high["alert_id"] == alert["id"]
    stored = client.get(f"/api/alerts/{high['alert_id']}", headers=admin_headers).get_json()
    assert stored["module"] == "traffic" and stored["status"] == "active"


def test_incident_at_a_sensor_takes_its_location_and_names_it_in_the_alert(client, admin_headers, alerts_emitted):
    response = create(client, admin_headers, severity="critical", location=None, sensor_id="TRF-007")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["location"] == node_point("N-5-4") and body["district"] == "Downtown"
    assert alerts_emitted["alerts"][0]["sensor_id"] == "TRF-007"


def test_incident_validation_names_fields(client, admin_headers):
    nowhere = client.post("/api/traffic/incidents", headers=admin_headers, json={"type": "accident", "severity": "low"})
    assert nowhere.status_code == 422 and "location" in nowhere.get_json()["errors"]
    unknown_sensor = create(client, admin_headers, location=None, sensor_id="TRF-999")
    assert unknown_sensor.status_code == 422 and "location" in unknown_sensor.get_json()["errors"]
    bad = create(client, admin_headers, type="meteor", severity="apocalyptic")
    assert bad.status_code == 422 and set(bad.get_json()["errors"]) == {"type", "severity"}


def test_status_moves_reported_responding_cleared_only(client, admin_headers, alerts_emitted):
    incident = create(client, admin_headers, severity="high").get_json()
    url = f"/api/traffic/incidents/{incident['id']}"
    skipped = client.patch(url, headers=admin_headers, json={"status": "cleared"})
    assert skipped.status_code == 409 and skipped.get_json()["error"] == "invalid_transition"
    responding = client.patch(url, headers=admin_headers, json={"status": "responding"}).get_json()
    assert responding["status"] == "responding" and responding["responding_at"]
    assert responding["responding_by"]["email"] == "admin@smartcity.com"
    assert client.patch(url, headers=admin_headers, json={"status": "responding"}).status_code == 409
    cleared = client.patch(url, headers=admin_headers, json={"status": "cleared", "note": "towed"}).get_json()
    assert cleared["status"] == "cleared" and cleared["cleared_at"] and cleared["note"] == "towed"
    assert client.patch(url, headers=admin_headers, json={"status": "reported"}).status_code == 409
    # Clearing resolves the alert the incident raised.
    [(alert, change)] = alerts_emitted["updated"]
    assert change == "resolved" and alert["id"] == incident["alert_id"]
    assert client.get(f"/api/alerts/{incident['alert_id']}", headers=admin_headers).get_json()["status"] == "resolved"
    bad = client.patch(url, headers=admin_headers, json={"status": "gone"})
    assert bad.status_code == 422 and "status" in bad.get_json()["errors"]


def test_unknown_incident_is_404(client, admin_headers):
    for incident_id in ("6b0375a688700a45ce1dd6a8", "not-an-id"):
        assert client.get(f"/api/traffic/incidents/{incident_id}", headers=admin_headers).status_code == 404
        assert client.patch(f"/api/traffic/incidents/{incident_id}", headers=admin_headers,
                            json={"status": "responding"}).status_code == 404


def test_incident_list_filters(client, admin_headers, alerts_emitted):
    create(client, admin_headers, severity="low", reported_at="2026-01-01T08:00:00Z")
    harbor = create(client, admin_headers, severity="high", district="Harbor").get_json()
    create(client, admin_headers, severity="high", type="roadwork")
    client.patch(f"/api/traffic/incidents/{harbor['id']}", headers=admin_headers, json={"status": "responding"})
    get = lambda query: client.get(f"/api/traffic/incidents?{query}", headers=admin_headers).get_json()  # noqa: E731
    assert get("")["total"] == 3
    assert [i["type"] for i in get("severity=high&sort=reported_at")["items"]] == ["accident", "roadwork"]
    assert [i["id"] for i in get("status=responding")["items"]] == [harbor["id"]]
    assert [i["id"] for i in get("district=Harbor")["items"]] == [harbor["id"]]
    assert get("from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z")["total"] == 1
    page = get("limit=2&offset=2")
    assert (page["total"], len(page["items"]), page["limit"], page["offset"]) == (3, 1, 2, 2)
    assert set(get("from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z")["errors"]) == {"from"}


def test_viewers_cannot_write_incidents(client, admin_headers, viewer_headers):
    assert client.get("/api/traffic/incidents", headers=viewer_headers).status_code == 200
    assert create(client, viewer_headers).status_code == 403
    incident = create(client, admin_headers).get_json()
    assert client.patch(f"/api/traffic/incidents/{incident['id']}", headers=viewer_headers,
                        json={"status": "responding"}).status_code == 403
    assert client.get("/api/traffic/incidents").status_code == 401


# Signal timing

def test_webster_plan_from_latest_flows_of_one_intersection(client, admin_headers, viewer_headers):
    # TRF-007 watches ns at N-5-4; a sensor outside the registry placed there takes the free phase, ew.
    post_readings(client, admin_headers, [{"sensor_id": "TRF-007", "vehicle_count": 10},
                                          {"sensor_id": "XTRA-1", "vehicle_count": 8,
                                           "location": node_point("N-5-4")}])
    response = client.get("/api/traffic/optimization/signals?district=Downtown", headers=viewer_headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["method"] == "webster" and body["generated_at"].endswith("Z")
    [plan] = body["items"]
    assert plan["intersection"] == "N-5-4" and plan["district"] == "Downtown"
    assert plan["location"] == node_point("N-5-4")
    # 10 and 8 vehicles a minute = 600 and 480 veh/h; Y = (600 + 480) / 1800 = 0.6, L = 2 x 4 s,
    # C = (1.5 x 8 + 5) / (1 - 0.6) = 42.5 s; greens share 42.5 - 8 = 34.5 s as 0.333 : 0.267.
    assert plan["cycle_s"] == signals.webster_timing([10 * 60, 8 * 60])["cycle_s"] == 42.5
    assert plan["Y"] == 0.6 and plan["oversaturated"] is False
    assert plan["phases"] == {"ns": {"flow_veh_h": 600.0, "green_s": 19.2},
                              "ew": {"flow_veh_h": 480.0, "green_s": 15.3}}
    assert {(s["sensor_id"], s["phase"], s["registered"]) for s in plan["sensors"]} == {
        ("TRF-007", "ns", True), ("XTRA-1", "ew", False)}
    other = client.get("/api/traffic/optimization/signals?district=Harbor", headers=viewer_headers).get_json()
    assert other["items"] == []


def test_critical_flow_is_the_highest_of_a_phase_and_newest_reading_counts(client, admin_headers):
    post_readings(client, admin_headers, [
        {"sensor_id": "TRF-007", "vehicle_count": 30,
         "timestamp": (datetime.now(timezone.utc) - timedelta(hours=2)).isoformat()},  # older: ignored
        {"sensor_id": "TRF-007", "vehicle_count": 10},
        # Extra sensors at N-5-4 alternate from the free phase: XTRA-1 ew, XTRA-2 ns.
        {"sensor_id": "XTRA-1", "vehicle_count": 8, "location": node_point("N-5-4")},
        {"sensor_id": "XTRA-2", "vehicle_count": 12, "location": node_point("N-5-4")},
    ])
    with client.application.test_request_context():
        [plan] = traffic.signal_timings(district="Downtown")["items"]
    # ns = max(600, 720) = 720, ew = 480: Y = 0.4 + 0.2667, C = 17 / (1/3) = 51 s, greens 25.8 / 17.2.
    assert plan["phases"]["ns"] == {"flow_veh_h": 720.0, "green_s": 25.8}
    assert plan["phases"]["ew"] == {"flow_veh_h": 480.0, "green_s": 17.2}
    assert plan["cycle_s"] == signals.webster_timing([720, 480])["cycle_s"] == 51.0


def test_one_phase_intersections_and_unplaceable_sensors(client, admin_headers):
    post_readings(client, admin_headers, [{"sensor_id": "TRF-017", "vehicle_count": 5},
                                          {"sensor_id": "NOWHERE-1", "vehicle_count": 50}])
    body = client.get("/api/traffic/optimization/signals", headers=admin_headers).get_json()
    [plan] = body["items"]  # NOWHERE-1 has no location and is not registered
    assert plan["intersection"] == "N-3-6"
    assert plan["phases"]["ew"]["flow_veh_h"] == 0.0
    assert plan["cycle_s"] == signals.webster_timing([300, 0])["cycle_s"]


# Routes

def assert_connected(route):
    total = 0.0
    for a, b in zip(route["path"], route["path"][1:]):
        lengths = [edge["length_km"] for edge in GRAPH.neighbours(a) if edge["node"] == b]
        assert lengths, f"{a} and {b} are not neighbours"
        total += min(lengths)
    assert route["distance_km"] == pytest.approx(total, abs=0.001)
    assert route["coordinates"] == [list(GRAPH.nodes[node]) for node in route["path"]]


def test_route_follows_the_arterial(client, admin_headers, viewer_headers):
    response = client.post("/api/traffic/optimization/routes", headers=viewer_headers,
                           json={"origin": "N-3-0", "destination": list(GRAPH.nodes["N-3-6"])})
    assert response.status_code == 200, response.get_json()
    route = response.get_json()
    assert route["path"] == [f"N-3-{c}" for c in range(7)]
    assert (route["origin_node"], route["destination_node"], route["algorithm"]) == ("N-3-0", "N-3-6", "a_star")
    assert route["distance_km"] == pytest.approx(3.3, abs=0.001)  # 6 blocks of 0.55 km
    assert route["travel_time_min"] == pytest.approx(3.3, abs=0.001)  # at 60 km/h, a minute per km
    assert_connected(route)
    diagonal = client.post("/api/traffic/optimization/routes", headers=viewer_headers,
                           json={"origin": "N-0-0", "destination": "N-8-8"}).get_json()
    assert diagonal["path"][0] == "N-0-0" and diagonal["path"][-1] == "N-8-8"
    assert_connected(diagonal)


def test_congestion_applies_to_roads_touching_the_sensor(client, admin_headers):
    readings = [{"sensor_id": "TRF-017", "congestion_level": 80.0},
                {"sensor_id": "XTRA-9", "congestion_level": 30.0, "location": node_point("N-3-5")}]
    with client.application.test_request_context():
        congestion = traffic.congestion_by_road(readings)
    # N-3-6 (TRF-017) touches H-3-5, H-3-6, V-2-6, V-3-6; N-3-5 touches H-3-4, H-3-5, V-2-5.
    assert congestion == {"H-3-5": 80.0, "H-3-6": 80.0, "V-2-6": 80.0, "V-3-6": 80.0, "H-3-4": 30.0, "V-2-5": 30.0}


def test_heavy_congestion_on_the_direct_road_changes_route_or_time(client, admin_headers):
    body = {"origin": "N-3-0", "destination": "N-3-6"}
    before = client.post("/api/traffic/optimization/routes", headers=admin_headers, json=body).get_json()
    post_readings(client, admin_headers, [
        {"sensor_id": f"XTRA-{node}", "vehicle_count": 40, "congestion_level": 100.0, "location": node_point(node)}
        for node in ("N-3-2", "N-3-4")])
    after = client.post("/api/traffic/optimization/routes", headers=admin_headers, json=body).get_json()
    assert after["congested_roads"] == 8  # 4 roads touch each of N-3-2 and N-3-4
    # Staying on the arterial would cost 4 of its 6 blocks three times over: 3.3 + 4 x 1.1 = 7.7 min.
    assert after["path"] != before["path"]
    assert before["travel_time_min"] < after["travel_time_min"] < 7.7
    assert "N-3-2" not in after["path"] and "N-3-4" not in after["path"]
    assert_connected(after)


def test_route_errors(client, admin_headers, monkeypatch):
    url = "/api/traffic/optimization/routes"
    unknown = client.post(url, headers=admin_headers, json={"origin": "N-99-99", "destination": "N-0-0"})
    assert unknown.status_code == 404 and "origin" in unknown.get_json()["errors"]
    bad = client.post(url, headers=admin_headers, json={"origin": [1], "destination": [200, 0]})
    assert bad.status_code == 422 and set(bad.get_json()["errors"]) == {"origin", "destination"}
    missing = client.post(url, headers=admin_headers, json={"origin": "N-0-0"})
    assert missing.status_code == 422 and "destination" in missing.get_json()["errors"]

    def unreachable(*args, **kwargs):
        raise routing.NoRoute("cut off")

    monkeypatch.setattr(routing, "shortest_path", unreachable)
    cut = client.post(url, headers=admin_headers, json={"origin": "N-0-0", "destination": "N-8-8"})
    assert cut.status_code == 422 and cut.get_json()["error"] == "no_route"
    assert client.post(url, json={"origin": "N-0-0", "destination": "N-8-8"}).status_code == 401
