"""Emergency units, incidents, dispatch, broadcasts, coverage and statistics over REST.

Unit bases come from city.emergency_units() (seed 42). Hand-checked geometry used below,
in km east/north of AMB-01's base (-73.98702, 40.744939), 1 deg lat = 111.32 km,
1 deg lng = 111.32 * cos(40.74 deg) = 84.33 km:
  AMB-10 (-74.004171, 40.7388)   -> (-1.446, -0.683)
  AMB-07 (-73.992993, 40.728175) -> (-0.504, -1.864)
  AMB-04 (-73.966778, 40.731544) -> (+1.707, -1.490)
An incident 0.5 km north of AMB-01's base is 0.5 km from AMB-01 (haversine: 0.4995, since
haversine uses 111.195 km per degree of latitude) and then AMB-10 is next: sqrt(1.446^2 + 1.183^2)
= 1.87 km, against 2.42 (AMB-07) and 2.62 (AMB-04).
"""
from datetime import timedelta

import pytest

from src.db import get_db
from src.realtime import broadcast
from src.domain import now_utc
from src.services import city, emergency
from src.services.routing import haversine_km
from src import create_app
from tests.conftest import bearer, drop_database, make_config

AMB_01_BASE = (-73.98702, 40.744939)
NEAR_AMB_01 = city.offset(AMB_01_BASE, 0, 0.5)


@pytest.fixture(scope="module")
def app():
    """One app for the module (building one per test dominates the run time); `seeded` resets its data."""
    app = create_app(make_config())
    yield app
    drop_database(app)


@pytest.fixture
def seeded(app):
    db = get_db(app)
    for name in ("units", "emergency_incidents", "alerts", "public_alerts"):
        db[name].delete_many({})
    with app.app_context():
        assert emergency.seed_units(db) == 12
    return app


@pytest.fixture
def emitted(monkeypatch):
    """Every alert and public alert emitted, instead of sending them."""
    calls = {"alerts": [], "updated": [], "public": []}
    monkeypatch.setattr(broadcast, "emit_alert", lambda alert, escalated=False: calls["alerts"].append(alert))
    monkeypatch.setattr(broadcast, "emit_alert_updated",
                        lambda alert, change: calls["updated"].append((alert, change)))
    monkeypatch.setattr(broadcast, "emit_public_alert",
                        lambda payload: calls["public"].append(broadcast.to_wire(payload)))
    return calls


@pytest.fixture
def viewer_headers(make_user):
    _, tokens = make_user("viewer")
    return bearer(tokens["access_token"])


def report(client, headers, point=NEAR_AMB_01, type="medical", severity="high", **extra):
    response = client.post("/api/emergency/incidents", headers=headers,
                           json=dict(extra, type=type, severity=severity, location=city.geo_point(point)))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_seed_units_is_idempotent_and_units_are_listed(seeded, client, admin_headers):
    with seeded.app_context():
        assert emergency.seed_units(get_db()) == 0
    body = client.get("/api/emergency/units?limit=100", headers=admin_headers).get_json()
    assert body["total"] == 12
    amb = body["items"][0]
    assert amb["unit_id"] == "AMB-01" and amb["status"] == "available" and amb["speed_kmh"] == 50.0
    assert amb["location"] == amb["base"] == {"type": "Point", "coordinates": list(AMB_01_BASE)}
    ambulances = client.get("/api/emergency/units?kind=ambulance", headers=admin_headers).get_json()
    assert [u["unit_id"] for u in ambulances["items"]] == ["AMB-01", "AMB-04", "AMB-07", "AMB-10"]
    downtown = client.get("/api/emergency/units?district=Downtown", headers=admin_headers).get_json()
    assert [u["unit_id"] for u in downtown["items"]] == ["AMB-01", "POL-09"]
    page = client.get("/api/emergency/units?limit=5&offset=10", headers=admin_headers).get_json()
    assert (page["total"], len(page["items"]), page["offset"]) == (12, 2, 10)
    assert client.get("/api/emergency/units?kind=tank", headers=admin_headers).get_json()["errors"].keys() == {"kind"}
    assert client.get("/api/emergency/units/NOPE-1", headers=admin_headers).status_code == 404


def test_create_incident_derives_district_and_raises_an_emergency_alert(seeded, client, admin_headers, emitted):
    incident = report(client, admin_headers, description="Cardiac arrest")
    assert incident["status"] == "reported" and incident["district"] == "Downtown"
    assert incident["reported_by"]["email"] == "admin@smartcity.com" and incident["source"] == "api"
    [alert] = emitted["alerts"]
    assert (alert["module"], alert["type"], alert["severity"]) == ("emergency", "incident", "high")
    assert alert["sensor_id"] == f"incident:{incident['id']}"
    stored = client.get("/api/alerts?module=emergency", headers=admin_headers).get_json()
    assert [a["id"] for a in stored["items"]] == [alert["id"]]
    explicit = report(client, admin_headers, district="Harbor")
    assert explicit["district"] == "Harbor"


def test_dispatch_nearest_picks_the_closest_unit_and_computes_eta(seeded, client, admin_headers, emitted):
    incident = report(client, admin_headers, severity="critical")
    response = client.post(f"/api/emergency/incidents/{incident['id']}/dispatch-nearest", headers=admin_headers,
                           json={})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["unit"]["unit_id"] == "AMB-01"
    assert body["distance_km"] == pytest.approx(0.4995, abs=0.001)
    assert body["eta_min"] == pytest.approx(0.4995 / 50 * 60, abs=0.01)  # 0.60 min at 50 km/h
    assert body["unit"]["status"] == "en_route" and body["unit"]["incident_id"] == incident["id"]
    assert body["unit"]["dispatched_at"] == body["incident"]["dispatched_at"]
    assert body["incident"]["status"] == "dispatched"
    assert [u["unit_id"] for u in body["incident"]["assigned_units"]] == ["AMB-01"]
    dispatch_alert = emitted["alerts"][-1]
    assert (dispatch_alert["module"], dispatch_alert["type"], dispatch_alert["severity"]) == \
        ("emergency", "dispatch", "critical")
    assert dispatch_alert["id"] == body["alert_id"]

    # AMB-01 is busy now: the next closest ambulance is AMB-10 (1.87 km, see the module docstring).
    second = report(client, admin_headers)
    body = client.post(f"/api/emergency/incidents/{second['id']}/dispatch-nearest", headers=admin_headers,
                       json={}).get_json()
    assert body["unit"]["unit_id"] == "AMB-10"
    assert body["distance_km"] == pytest.approx(1.87, abs=0.01)


def test_nearest_available_unit_service(seeded):
    with seeded.test_request_context():
        assert emergency.nearest_available_unit(NEAR_AMB_01, "ambulance")["unit_id"] == "AMB-01"
        # POL-09 sits 0.08 km from the Downtown centre, closer than any other unit.
        assert emergency.nearest_available_unit(city.geo_point(city.district_center("Downtown")))["unit_id"] \
            == "POL-09"


def test_dispatch_kind_follows_incident_type_or_request(seeded, client, admin_headers, emitted):
    fire = report(client, admin_headers, type="fire")
    body = client.post(f"/api/emergency/incidents/{fire['id']}/dispatch-nearest", headers=admin_headers,
                       json={}).get_json()
    assert body["unit"]["kind"] == "fire"
    hazard = report(client, admin_headers, type="hazard", point=city.district_center("Downtown"))
    body = client.post(f"/api/emergency/incidents/{hazard['id']}/dispatch-nearest", headers=admin_headers,
                       json={}).get_json()
    assert body["unit"]["unit_id"] == "POL-09"  # any kind: the closest of all
    crime = report(client, admin_headers, type="crime")
    body = client.post(f"/api/emergency/incidents/{crime['id']}/dispatch-nearest", headers=admin_headers,
                       json={"kind": "ambulance"}).get_json()
    assert body["unit"]["unit_id"] == "AMB-01"


def test_dispatch_named_unit_eta_is_distance_over_speed(seeded, client, admin_headers, emitted):
    incident = report(client, admin_headers, type="fire")
    response = client.post("/api/emergency/units/FIR-02/dispatch", headers=admin_headers,
                           json={"incident_id": incident["id"]})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    distance = haversine_km((-74.006272, 40.734492), NEAR_AMB_01)  # FIR-02's base
    assert body["distance_km"] == pytest.approx(distance, abs=0.001)
    assert body["eta_min"] == pytest.approx(distance / 45 * 60, abs=0.01)
    assert body["unit"]["eta_min"] == body["eta_min"]


def test_dispatching_a_busy_unit_is_a_conflict(seeded, client, admin_headers, emitted):
    first, second = report(client, admin_headers), report(client, admin_headers)
    ok = client.post("/api/emergency/units/AMB-01/dispatch", headers=admin_headers, json={"incident_id": first["id"]})
    assert ok.status_code == 200
    busy = client.post("/api/emergency/units/AMB-01/dispatch", headers=admin_headers,
                       json={"incident_id": second["id"]})
    assert busy.status_code == 409 and busy.get_json()["error"] == "unit_unavailable"


def test_dispatch_unknown_ids_and_bad_body(seeded, client, admin_headers, emitted):
    incident = report(client, admin_headers)
    unknown_unit = client.post("/api/emergency/units/AMB-99/dispatch", headers=admin_headers,
                               json={"incident_id": incident["id"]})
    assert unknown_unit.status_code == 404
    for incident_id in ("6b0375a688700a45ce1dd6a8", "not-an-id"):
        response = client.post("/api/emergency/units/AMB-01/dispatch", headers=admin_headers,
                               json={"incident_id": incident_id})
        assert response.status_code == 404
    missing = client.post("/api/emergency/units/AMB-01/dispatch", headers=admin_headers, json={})
    assert missing.status_code == 422 and "incident_id" in missing.get_json()["errors"]
    assert client.post("/api/emergency/incidents/6b0375a688700a45ce1dd6a8/dispatch-nearest", headers=admin_headers,
                       json={}).status_code == 404


def test_no_available_unit_of_the_kind_is_a_conflict(seeded, client, admin_headers, emitted):
    for unit_id in ("FIR-02", "FIR-05", "FIR-08", "FIR-11"):
        incident = report(client, admin_headers, type="fire")
        assert client.post(f"/api/emergency/units/{unit_id}/dispatch", headers=admin_headers,
                           json={"incident_id": incident["id"]}).status_code == 200
    another = report(client, admin_headers, type="fire")
    response = client.post(f"/api/emergency/incidents/{another['id']}/dispatch-nearest", headers=admin_headers,
                           json={})
    assert response.status_code == 409 and response.get_json()["error"] == "no_unit_available"


def test_invalid_status_transitions_are_conflicts(seeded, client, admin_headers, emitted):
    incident = report(client, admin_headers)
    url = f"/api/emergency/incidents/{incident['id']}"
    for status in ("on_scene", "dispatched", "reported"):
        response = client.patch(url, headers=admin_headers, json={"status": status})
        assert response.status_code == 409, status
        assert response.get_json()["error"] == "invalid_transition"
    assert client.patch(url, headers=admin_headers, json={"status": "cancelled"}).status_code == 200
    again = client.patch(url, headers=admin_headers, json={"status": "resolved"})
    assert again.status_code == 409
    closed = client.post(f"{url}/dispatch-nearest", headers=admin_headers, json={})
    assert closed.status_code == 409 and closed.get_json()["error"] == "incident_closed"
    bad = client.patch(url, headers=admin_headers, json={"status": "finished"})
    assert bad.status_code == 422 and "status" in bad.get_json()["errors"]
    assert client.patch("/api/emergency/incidents/6b0375a688700a45ce1dd6a8", headers=admin_headers,
                        json={"status": "resolved"}).status_code == 404


def test_resolve_records_response_time_from_first_arrival_and_frees_units(seeded, client, admin_headers, emitted):
    reported_at = now_utc() - timedelta(seconds=300)
    incident = report(client, admin_headers, reported_at=reported_at.isoformat())
    url = f"/api/emergency/incidents/{incident['id']}"
    client.post(f"{url}/dispatch-nearest", headers=admin_headers, json={})
    on_scene = client.patch(url, headers=admin_headers, json={"status": "on_scene"})
    assert on_scene.status_code == 200 and on_scene.get_json()["on_scene_at"]
    unit = client.get("/api/emergency/units/AMB-01", headers=admin_headers).get_json()
    assert unit["status"] == "on_scene" and unit["location"] == incident["location"]

    resolved = client.patch(url, headers=admin_headers, json={"status": "resolved", "note": "patient transported"})
    body = resolved.get_json()
    assert resolved.status_code == 200 and body["status"] == "resolved" and body["resolved_at"]
    assert body["response_time_basis"] == "on_scene"
    assert body["response_time_s"] == pytest.approx(300, abs=5)  # on_scene came right after the report
    assert body["resolved_by"]["email"] == "admin@smartcity.com"
    unit = client.get("/api/emergency/units/AMB-01", headers=admin_headers).get_json()
    assert unit["status"] == "available" and unit["location"] == unit["base"]
    assert unit.get("incident_id") is None
    # The incident's alerts (report and dispatch) are resolved with it.
    assert {change for _, change in emitted["updated"]} == {"resolved"} and len(emitted["updated"]) == 2


def test_resolving_without_arrival_measures_to_resolution(seeded, client, admin_headers, emitted):
    incident = report(client, admin_headers, reported_at=(now_utc() - timedelta(seconds=600)).isoformat())
    body = client.patch(f"/api/emergency/incidents/{incident['id']}", headers=admin_headers,
                        json={"status": "resolved"}).get_json()
    assert body["response_time_basis"] == "resolved"
    assert body["response_time_s"] == pytest.approx(600, abs=5)


def test_unit_arrived_moves_incident_on_scene(seeded, client, admin_headers, emitted):
    incident = report(client, admin_headers)
    client.post("/api/emergency/units/AMB-01/dispatch", headers=admin_headers, json={"incident_id": incident["id"]})
    with seeded.test_request_context():
        unit = emergency.unit_arrived("AMB-01")
        assert unit["status"] == "on_scene"
        current = emergency.get_incident(incident["id"])
        assert current["status"] == "on_scene" and current["on_scene_at"] == unit["arrived_at"]


def test_incident_list_filters_and_pagination(seeded, client, admin_headers, emitted):
    report(client, admin_headers, type="fire", severity="low", reported_at=(now_utc() - timedelta(hours=2)).isoformat())
    report(client, admin_headers, type="medical", severity="high", district="Harbor")
    report(client, admin_headers, type="crime", severity="high")
    get = lambda query: client.get(f"/api/emergency/incidents?{query}", headers=admin_headers).get_json()  # noqa: E731
    assert get("")["total"] == 3
    assert [i["type"] for i in get("severity=high&sort=reported_at")["items"]] == ["medical", "crime"]
    assert [i["type"] for i in get("district=Harbor")["items"]] == ["medical"]
    since = (now_utc() - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert get(f"from={since}")["total"] == 2
    page = get("limit=1&offset=1")
    assert (page["total"], len(page["items"]), page["limit"]) == (3, 1, 1)
    assert "status" in get("status=gone")["errors"]


def test_incident_validation_names_fields(seeded, client, admin_headers):
    response = client.post("/api/emergency/incidents", headers=admin_headers,
                           json={"type": "alien", "severity": "high"})
    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == {"type", "location"}
    bad_point = client.post("/api/emergency/incidents", headers=admin_headers, json={
        "type": "fire", "severity": "low", "location": {"type": "Point", "coordinates": [200, 10]}})
    assert bad_point.status_code == 422 and "location" in bad_point.get_json()["errors"]


def test_viewers_read_but_cannot_write(seeded, client, admin_headers, viewer_headers, emitted):
    incident = report(client, admin_headers)
    assert client.get("/api/emergency/incidents", headers=viewer_headers).status_code == 200
    assert client.get("/api/emergency/units", headers=viewer_headers).status_code == 200
    assert client.get("/api/emergency/coverage", headers=viewer_headers).status_code == 200
    writes = [
        ("post", "/api/emergency/incidents",
         {"type": "fire", "severity": "low", "location": city.geo_point(NEAR_AMB_01)}),
        ("patch", f"/api/emergency/incidents/{incident['id']}", {"status": "cancelled"}),
        ("post", "/api/emergency/units/AMB-01/dispatch", {"incident_id": incident["id"]}),
        ("post", f"/api/emergency/incidents/{incident['id']}/dispatch-nearest", {}),
        ("post", "/api/emergency/alerts/broadcast", {"title": "t", "message": "m", "severity": "low"}),
    ]
    for method, url, body in writes:
        response = getattr(client, method)(url, headers=viewer_headers, json=body)
        assert response.status_code == 403, url
    assert client.get("/api/emergency/units").status_code == 401


def test_public_broadcast_is_stored_and_emitted_to_everyone(seeded, client, admin_headers, emitted):
    response = client.post("/api/emergency/alerts/broadcast", headers=admin_headers, json={
        "title": "Flood warning", "message": "Avoid the riverside until 18:00", "severity": "high",
        "district": "Harbor"})
    assert response.status_code == 201
    body = response.get_json()
    [payload] = emitted["public"]
    assert set(payload) == {"id", "title", "message", "severity", "district", "issued_by", "created_at"}
    assert payload == body
    assert payload["issued_by"] == "admin@smartcity.com" and payload["created_at"].endswith("Z")
    listed = client.get("/api/emergency/alerts/broadcast", headers=admin_headers).get_json()
    assert [a["id"] for a in listed["items"]] == [body["id"]]
    bad = client.post("/api/emergency/alerts/broadcast", headers=admin_headers, json={"title": "", "severity": "x"})
    assert bad.status_code == 422 and set(bad.get_json()["errors"]) == {"title", "message", "severity"}


def test_coverage_is_nearest_available_unit_per_district_and_kind(seeded, client, admin_headers, emitted):
    body = client.get("/api/emergency/coverage", headers=admin_headers).get_json()
    assert [item["district"] for item in body["items"]] == city.DISTRICT_NAMES
    assert body["available_units"] == {"ambulance": 4, "fire": 4, "police": 4}
    downtown = body["items"][0]
    centre = city.district_center("Downtown")
    expected = haversine_km(centre, AMB_01_BASE)
    assert downtown["units"]["ambulance"] == {"unit_id": "AMB-01", "distance_km": round(expected, 3),
                                              "eta_min": round(expected / 50 * 60, 2)}
    assert downtown["units"]["police"]["unit_id"] == "POL-09"

    for unit_id in ("AMB-01", "AMB-04", "AMB-07", "AMB-10"):
        incident = report(client, admin_headers)
        client.post(f"/api/emergency/units/{unit_id}/dispatch", headers=admin_headers,
                    json={"incident_id": incident["id"]})
    with seeded.test_request_context():
        calls = []
        result = emergency.coverage_analysis(yield_fn=lambda: calls.append(1))
    assert len(calls) == len(city.DISTRICT_NAMES)
    assert result["items"][0]["units"]["ambulance"] == {"unit_id": None, "distance_km": None, "eta_min": None}


def test_statistics_count_by_status_and_average_response_time(seeded, client, admin_headers, emitted):
    for seconds in (120, 240):
        incident = report(client, admin_headers, reported_at=(now_utc() - timedelta(seconds=seconds)).isoformat())
        client.patch(f"/api/emergency/incidents/{incident['id']}", headers=admin_headers, json={"status": "resolved"})
    report(client, admin_headers)
    body = client.get("/api/emergency/statistics", headers=admin_headers).get_json()
    assert body["total"] == 3
    assert body["by_status"]["resolved"] == 2 and body["by_status"]["reported"] == 1
    assert body["response_time"]["count"] == 2
    assert body["response_time"]["avg_s"] == pytest.approx(180, abs=5)
    assert body["units_by_status"]["available"] == 12
    later = (now_utc() + timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    assert client.get(f"/api/emergency/statistics?from={later}", headers=admin_headers).get_json()["total"] == 0


class FixedRng:
    def uniform(self, low, high):
        return 5.0


def test_advance_units_moves_simulated_incidents_to_resolution(seeded, client, admin_headers, emitted):
    manual = report(client, admin_headers, type="fire")
    client.post(f"/api/emergency/incidents/{manual['id']}/dispatch-nearest", headers=admin_headers, json={})
    with seeded.test_request_context():
        simulated = emergency.create_incident({"type": "medical", "severity": "high",
                                               "location": city.geo_point(NEAR_AMB_01)}, source="simulator")
        result = emergency.dispatch_nearest(str(simulated["_id"]))
        eta_at = result["eta_at"]
        assert emergency.advance_units(eta_at - timedelta(seconds=1), rng=FixedRng()) == 0  # still driving

        later = eta_at + timedelta(minutes=60)  # every unit has arrived
        assert emergency.advance_units(later, rng=FixedRng()) == 2
        incident = emergency.get_incident(str(simulated["_id"]))
        assert incident["status"] == "on_scene"
        assert abs((incident["on_scene_at"] - eta_at).total_seconds()) < 0.001  # arrival stamped at the ETA
        # Five minutes of work later the simulated incident is resolved and AMB-01 is back at base;
        # the operator's fire incident stays on scene until someone resolves it.
        assert emergency.advance_units(later + timedelta(minutes=6), rng=FixedRng()) == 1
        incident = emergency.get_incident(str(simulated["_id"]))
        assert incident["status"] == "resolved" and incident["response_time_basis"] == "on_scene"
        expected = (incident["on_scene_at"] - incident["reported_at"]).total_seconds()
        assert incident["response_time_s"] == pytest.approx(expected, abs=0.01)
        assert emergency.get_unit("AMB-01")["status"] == "available"
        assert emergency.get_incident(manual["id"])["status"] == "on_scene"
