"""Waste: bins, collection routes (nearest neighbour + 2-opt) and collections."""
import math
import random
from datetime import datetime, timedelta, timezone

import pytest

from src.services import city, routing
from tests.conftest import bearer

DEPOT = city.DEPOT["location"]
# city.offset() works in 111.32 km per degree, haversine in 111.195: distances agree to about 0.1 %.
KM = dict(rel=0.005)


def iso(dt):
    return dt.isoformat().replace("+00:00", "Z")


def add_bin(client, headers, bin_id, east_km, north_km, fill=None, district="Downtown", **extra):
    body = dict({"bin_id": bin_id, "capacity_liters": 660, "district": district,
                 "location": city.geo_point(city.offset(DEPOT, east_km, north_km))}, **extra)
    response = client.post("/api/waste/bins", headers=headers, json=body)
    assert response.status_code == 201, response.get_json()
    if fill is not None:
        set_level(client, headers, bin_id, fill)
    return response.get_json()


def set_level(client, headers, bin_id, fill):
    response = client.post("/api/waste/data", headers=headers, json={"bin_id": bin_id, "fill_level_pct": fill})
    assert response.status_code == 201, response.get_json()


@pytest.fixture
def line_bins(client, admin_headers):
    """Four full bins on a north-south line 2 km west of the depot, one nearly empty bin, one elsewhere.

    Offsets in km (east, north): S0 (-2, 0), S1 (-2, -1), S2 (-2, -2), S3 (-2, 1.5).
    Nearest neighbour from the depot (0, 0): S0 (2 km), S1 (1), S2 (1), S3 (3.5), depot (2.5) = 10.0 km.
    2-opt reverses S0..S2: S2 (2*sqrt 2), S1 (1), S0 (1), S3 (1.5), depot (2.5) = 8.828 km, the optimum
    (the tour must cover the 3.5 km segment plus the two ends' distances to the depot).
    """
    add_bin(client, admin_headers, "S0", -2, 0, fill=85)
    add_bin(client, admin_headers, "S1", -2, -1, fill=90)
    add_bin(client, admin_headers, "S2", -2, -2, fill=99)
    add_bin(client, admin_headers, "S3", -2, 1.5, fill=80)
    add_bin(client, admin_headers, "LOW", -1, 0, fill=79.9)
    add_bin(client, admin_headers, "FAR", 3, 3, fill=95, district="Harbor")


# Bins

def test_get_one_bin_and_404(client, admin_headers):
    add_bin(client, admin_headers, "BIN-X", 0.1, 0.1, fill=42.5)
    response = client.get("/api/waste/bins/BIN-X", headers=admin_headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["bin_id"] == "BIN-X" and body["fill_level_pct"] == 42.5 and body["district"] == "Downtown"
    missing = client.get("/api/waste/bins/NOPE", headers=admin_headers)
    assert missing.status_code == 404 and missing.get_json()["error"] == "not_found"


def test_existing_bin_routes_still_work(client, admin_headers):
    add_bin(client, admin_headers, "BIN-Y", 0.2, 0.2)
    level = client.put("/api/waste/bins/BIN-Y/update-level", headers=admin_headers, json={"fill_level_pct": 55})
    assert level.status_code == 200 and level.get_json()["ingested"] == 1
    page = client.get("/api/waste/bins?min_fill=50", headers=admin_headers).get_json()
    assert [b["bin_id"] for b in page["items"]] == ["BIN-Y"]
    history = client.get("/api/waste/data?sensor_id=BIN-Y", headers=admin_headers).get_json()
    assert history["items"][0]["fill_level_pct"] == 55


# Route optimisation

def test_route_hand_checked_two_opt_beats_nearest_neighbour(client, admin_headers, line_bins):
    response = client.post("/api/waste/optimization/routes", headers=admin_headers, json={"district": "Downtown"})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    order = [stop["bin_id"] for stop in body["stops"]]
    assert order in (["S2", "S1", "S0", "S3"], ["S3", "S0", "S1", "S2"])
    assert body["nearest_neighbour_km"] == pytest.approx(10.0, **KM)
    assert body["distance_km"] == pytest.approx(2 * math.sqrt(2) + 3.5 + 2.5, **KM)
    assert body["improvement_pct"] == pytest.approx((10 - 8.828) / 10 * 100, abs=0.2)
    assert body["bins_considered"] == 5  # the Downtown bins, LOW included, FAR (Harbor) not
    assert body["depot"]["location"]["coordinates"] == list(DEPOT)
    stop = body["stops"][order.index("S2")]
    assert stop["fill_level_pct"] == 99 and stop["district"] == "Downtown"
    assert stop["location"]["type"] == "Point"


def test_route_excludes_bins_below_threshold_and_visits_each_once(client, admin_headers, line_bins):
    body = client.post("/api/waste/optimization/routes", headers=admin_headers, json={}).get_json()
    order = [stop["bin_id"] for stop in body["stops"]]
    assert sorted(order) == ["FAR", "S0", "S1", "S2", "S3"]  # LOW (79.9 %) is below the default 80
    assert body["bins_considered"] == 6 and body["fill_threshold"] == 80
    higher = client.post("/api/waste/optimization/routes", headers=admin_headers,
                         json={"fill_threshold": 90, "district": "Downtown"}).get_json()
    assert sorted(s["bin_id"] for s in higher["stops"]) == ["S1", "S2"]


def test_route_over_named_bins(client, admin_headers, line_bins):
    body = client.post("/api/waste/optimization/routes", headers=admin_headers,
                       json={"bin_ids": ["S0", "LOW", "FAR"], "fill_threshold": 80}).get_json()
    assert sorted(s["bin_id"] for s in body["stops"]) == ["FAR", "S0"]
    assert body["bins_considered"] == 3
    unknown = client.post("/api/waste/optimization/routes", headers=admin_headers, json={"bin_ids": ["S0", "GHOST"]})
    assert unknown.status_code == 422 and "GHOST" in unknown.get_json()["errors"]["bin_ids"][0]


def test_two_opt_never_longer_than_nearest_neighbour(client, admin_headers):
    rng = random.Random(7)
    for i in range(14):
        add_bin(client, admin_headers, f"R{i:02d}", rng.uniform(-3, 3), rng.uniform(-3, 3), fill=rng.uniform(70, 100))
    eligible = {b["bin_id"] for b in client.get("/api/waste/bins?min_fill=80&limit=100",
                                                headers=admin_headers).get_json()["items"]}
    body = client.post("/api/waste/optimization/routes", headers=admin_headers, json={}).get_json()
    order = [stop["bin_id"] for stop in body["stops"]]
    assert len(order) == len(set(order)) and set(order) == eligible
    assert body["distance_km"] <= body["nearest_neighbour_km"]
    # The reported length is the tour's real length.
    stops = [{"location": s["location"]["coordinates"]} for s in body["stops"]]
    assert body["distance_km"] == pytest.approx(routing.route_length_km(DEPOT, stops), abs=0.001)


def test_route_needs_operator_and_valid_input(client, admin_headers, make_user):
    _, viewer = make_user("viewer")
    forbidden = client.post("/api/waste/optimization/routes", headers=bearer(viewer["access_token"]), json={})
    assert forbidden.status_code == 403
    bad = client.post("/api/waste/optimization/routes", headers=admin_headers,
                      json={"fill_threshold": 120, "bin_ids": "S0", "depot": "x"})
    assert bad.status_code == 422
    assert {"fill_threshold", "bin_ids", "depot"} <= set(bad.get_json()["errors"])


# Collections

def test_create_collection_of_bins_above_threshold_computes_route(client, admin_headers, line_bins):
    when = datetime.now(timezone.utc) + timedelta(hours=2)
    response = client.post("/api/waste/collections", headers=admin_headers,
                           json={"district": "Downtown", "scheduled_for": iso(when)})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["status"] == "scheduled" and body["district"] == "Downtown" and body["fill_threshold"] == 80
    assert body["bin_ids"] in (["S2", "S1", "S0", "S3"], ["S3", "S0", "S1", "S2"])  # route order
    assert body["route"]["distance_km"] == pytest.approx(8.828, **KM)
    assert body["route"]["nearest_neighbour_km"] == pytest.approx(10.0, **KM)
    assert [s["bin_id"] for s in body["route"]["stops"]] == body["bin_ids"]
    assert body["created_by"]["email"] == "admin@smartcity.com"
    assert body["scheduled_for"].startswith(iso(when)[:19])
    fetched = client.get(f"/api/waste/collections/{body['id']}", headers=admin_headers).get_json()
    assert fetched["route"] == body["route"]


def test_create_collection_of_named_bins_defaults_to_now(client, admin_headers, line_bins):
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    body = client.post("/api/waste/collections", headers=admin_headers, json={"bin_ids": ["LOW", "S0"]}).get_json()
    # Named bins are collected whatever their level.
    assert sorted(body["bin_ids"]) == ["LOW", "S0"]
    scheduled = datetime.fromisoformat(body["scheduled_for"].replace("Z", "+00:00"))
    assert before <= scheduled <= datetime.now(timezone.utc) + timedelta(seconds=1)


def test_create_collection_refuses_nothing_to_collect_and_bad_input(client, admin_headers, line_bins, make_user):
    empty = client.post("/api/waste/collections", headers=admin_headers, json={"district": "Airport"})
    assert empty.status_code == 422 and "bin_ids" in empty.get_json()["errors"]
    bad = client.post("/api/waste/collections", headers=admin_headers,
                      json={"scheduled_for": "tomorrow", "fill_threshold": -1, "bin_ids": []})
    assert bad.status_code == 422
    assert {"scheduled_for", "fill_threshold", "bin_ids"} <= set(bad.get_json()["errors"])
    unknown = client.post("/api/waste/collections", headers=admin_headers, json={"bin_ids": ["NOPE"]})
    assert unknown.status_code == 422 and "bin_ids" in unknown.get_json()["errors"]
    _, viewer = make_user("viewer")
    assert client.post("/api/waste/collections", headers=bearer(viewer["access_token"]), json={}).status_code == 403
    assert client.get("/api/waste/collections", headers=bearer(viewer["access_token"])).status_code == 200


def test_list_collections_filters_and_pages(client, admin_headers, line_bins):
    now = datetime.now(timezone.utc)
    made = []
    for hours, district in ((1, "Downtown"), (5, "Downtown"), (9, "Harbor")):
        response = client.post("/api/waste/collections", headers=admin_headers,
                               json={"district": district, "scheduled_for": iso(now + timedelta(hours=hours))})
        assert response.status_code == 201
        made.append(response.get_json()["id"])
    client.patch(f"/api/waste/collections/{made[0]}", headers=admin_headers, json={"status": "cancelled"})

    def ids(query):
        page = client.get(f"/api/waste/collections?{query}", headers=admin_headers).get_json()
        return [c["id"] for c in page["items"]], page["total"]

    assert ids("") == ([made[2], made[1], made[0]], 3)  # newest scheduled_for first
    assert ids("district=Downtown") == ([made[1], made[0]], 2)
    assert ids("status=cancelled") == ([made[0]], 1)
    window = f"from={iso(now + timedelta(hours=3))}&to={iso(now + timedelta(hours=10))}".replace("+", "%2B")
    assert ids(window) == ([made[2], made[1]], 2)
    assert ids("limit=1&offset=1&sort=scheduled_for") == ([made[1]], 3)
    bad = client.get("/api/waste/collections?status=lost", headers=admin_headers)
    assert bad.status_code == 422 and "status" in bad.get_json()["errors"]


def test_completing_a_collection_empties_bins_through_ingest(client, admin_headers, line_bins):
    # S2 at 99 % has an open bin_full alert.
    alerts = client.get("/api/alerts?sensor_id=S2&status=open", headers=admin_headers).get_json()["items"]
    assert len(alerts) == 1 and alerts[0]["type"] == "bin_full"
    created = client.post("/api/waste/collections", headers=admin_headers,
                          json={"bin_ids": ["S2", "S3"]}).get_json()
    started = client.patch(f"/api/waste/collections/{created['id']}", headers=admin_headers,
                           json={"status": "in_progress"})
    assert started.status_code == 200 and started.get_json()["started_at"]
    done = client.patch(f"/api/waste/collections/{created['id']}", headers=admin_headers,
                        json={"status": "completed", "note": "all good"})
    assert done.status_code == 200, done.get_json()
    body = done.get_json()
    assert body["status"] == "completed" and body["bins_emptied"] == 2 and body["completed_at"]
    assert [h["to"] for h in body["status_history"]] == ["in_progress", "completed"]

    for bin_id in ("S2", "S3"):
        entity = client.get(f"/api/waste/bins/{bin_id}", headers=admin_headers).get_json()
        assert entity["fill_level_pct"] == 0.0 and entity["last_emptied_at"]
        newest = client.get(f"/api/waste/data?sensor_id={bin_id}&limit=1", headers=admin_headers).get_json()
        assert newest["items"][0]["fill_level_pct"] == 0.0 and newest["items"][0]["source"] == "api"
    alert = client.get(f"/api/alerts/{alerts[0]['id']}", headers=admin_headers).get_json()
    assert alert["status"] == "resolved" and alert["resolved_by"] == "system"
    # Bins outside the collection are untouched.
    assert client.get("/api/waste/bins/S1", headers=admin_headers).get_json()["fill_level_pct"] == 90


def test_complete_collection_service_for_background_callers(app, client, admin_headers, line_bins):
    from src.services import waste

    with app.test_request_context():
        created = waste.create_collection({"district": "Harbor"})
        assert created["created_by"] == "system" and created["bin_ids"] == ["FAR"]
        done = waste.complete_collection(str(created["_id"]), source="simulator")
    assert done["status"] == "completed" and done["completed_by"] == "system"
    newest = client.get("/api/waste/data?sensor_id=FAR&limit=1", headers=admin_headers).get_json()["items"][0]
    assert newest["fill_level_pct"] == 0.0 and newest["source"] == "simulator"


def test_invalid_transitions_are_409_and_unknown_ids_404(client, admin_headers, line_bins, make_user):
    first = client.post("/api/waste/collections", headers=admin_headers, json={"bin_ids": ["S0"]}).get_json()
    url = f"/api/waste/collections/{first['id']}"
    assert client.patch(url, headers=admin_headers, json={"status": "completed"}).status_code == 200
    for status in ("in_progress", "scheduled", "cancelled", "completed"):
        again = client.patch(url, headers=admin_headers, json={"status": status})
        assert again.status_code == 409 and again.get_json()["error"] == "invalid_transition"

    second = client.post("/api/waste/collections", headers=admin_headers, json={"bin_ids": ["S1"]}).get_json()
    url = f"/api/waste/collections/{second['id']}"
    assert client.patch(url, headers=admin_headers, json={"status": "cancelled"}).status_code == 200
    refused = client.patch(url, headers=admin_headers, json={"status": "completed"})
    assert refused.status_code == 409
    # A refused completion empties nothing.
    assert client.get("/api/waste/bins/S1", headers=admin_headers).get_json()["fill_level_pct"] == 90

    bad = client.patch(url, headers=admin_headers, json={"status": "done"})
    assert bad.status_code == 422 and "status" in bad.get_json()["errors"]
    _, viewer = make_user("viewer")
    assert client.patch(url, headers=bearer(viewer["access_token"]), json={"status": "cancelled"}).status_code == 403
    for missing in ("/api/waste/collections/0123456789abcdef01234567", "/api/waste/collections/not-an-id"):
        assert client.get(missing, headers=admin_headers).status_code == 404
        assert client.patch(missing, headers=admin_headers, json={"status": "cancelled"}).status_code == 404
