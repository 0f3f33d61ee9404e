"""Energy: grids, consumption from rollups, renewable share and load balancing."""
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from src.db import get_db
from src.services import energy
from tests.conftest import bearer


def iso(dt):
    return dt.isoformat().replace("+00:00", "Z")


def post_readings(client, headers, readings):
    response = client.post("/api/energy/data", headers=headers, json=readings)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["items"]


def grid_body(grid_id="G-1", **overrides):
    return dict({"grid_id": grid_id, "name": f"{grid_id} substation", "district": "Downtown", "capacity_mw": 100},
                **overrides)


# Load balancing (pure)

def test_load_balancing_hand_checked():
    # Target 85 % of 100 MW = 85 MW. A (100 MW) must shed 15; B (20) can take 65; C (60) can take 25.
    # Largest excess (A, 15) to largest headroom (B, 65): one transfer of 15 MW.
    plan = energy.plan_load_balancing([
        {"grid_id": "A", "load_mw": 100, "capacity_mw": 100},
        {"grid_id": "B", "load_mw": 20, "capacity_mw": 100},
        {"grid_id": "C", "load_mw": 60, "capacity_mw": 100},
    ])
    assert plan["transfers"] == [{"from": "A", "to": "B", "mw": 15.0}]
    assert plan["before"] == {"A": 100.0, "B": 20.0, "C": 60.0}
    assert plan["after"] == {"A": 85.0, "B": 35.0, "C": 60.0}
    assert plan["unresolved_mw"] == 0 and plan["target_pct"] == 85 and plan["transferred_mw"] == 15.0


def test_load_balancing_when_receivers_lack_headroom():
    # Targets: A 85 of 100, B 85 of 100, C 42.5 of 50, D 85 of 100.
    # Excess: A 120-85 = 35, C 47.5-42.5 = 5. Headroom: B 85-80 = 5, D 85-83 = 2. Total headroom 7 < excess 40.
    # A (35) -> B (5): 5 MW, A left 30. A (30) -> D (2): 2 MW, A left 28. No headroom left: 28 + 5 = 33 unresolved.
    plan = energy.plan_load_balancing([
        {"grid_id": "A", "load_mw": 120, "capacity_mw": 100},
        {"grid_id": "B", "load_mw": 80, "capacity_mw": 100},
        {"grid_id": "C", "load_mw": 47.5, "capacity_mw": 50},
        {"grid_id": "D", "load_mw": 83, "capacity_mw": 100},
    ])
    assert plan["transfers"] == [{"from": "A", "to": "B", "mw": 5.0}, {"from": "A", "to": "D", "mw": 2.0}]
    assert plan["after"] == {"A": 113.0, "B": 85.0, "C": 95.0, "D": 85.0}
    assert plan["unresolved_mw"] == 33.0
    assert max(plan["after"][g] for g in ("B", "D")) <= 85


def test_load_balancing_splits_a_donor_over_receivers_by_capacity():
    # A: 190 of 200 MW (95 %), target 170, excess 20. B: 10 of 50 (target 42.5, headroom 32.5).
    # C: 70 of 100 (headroom 15). E: 95 of 100 (excess 10). Zero-capacity Z is ignored.
    # A (20) -> B (32.5): 20; B left 12.5. E (10) -> C (15): 10 (C now has the larger headroom).
    plan = energy.plan_load_balancing([
        {"grid_id": "A", "load_mw": 190, "capacity_mw": 200},
        {"grid_id": "B", "load_mw": 10, "capacity_mw": 50},
        {"grid_id": "C", "load_mw": 70, "capacity_mw": 100},
        {"grid_id": "E", "load_mw": 95, "capacity_mw": 100},
        {"grid_id": "Z", "load_mw": 5, "capacity_mw": 0},
    ])
    assert plan["transfers"] == [{"from": "A", "to": "B", "mw": 20.0}, {"from": "E", "to": "C", "mw": 10.0}]
    assert plan["after"] == {"A": 85.0, "B": 60.0, "C": 80.0, "E": 85.0}
    assert plan["unresolved_mw"] == 0 and plan["grids_considered"] == 4
    assert energy.plan_load_balancing([])["transfers"] == []


def test_load_balancing_endpoint_uses_latest_reading_per_grid(client, admin_headers, make_user):
    now = datetime.now(timezone.utc)
    post_readings(client, admin_headers, [
        {"grid_id": "A", "load_mw": 10, "capacity_mw": 100, "timestamp": iso(now - timedelta(minutes=5))},
        {"grid_id": "A", "load_mw": 100, "capacity_mw": 100, "timestamp": iso(now - timedelta(minutes=1))},
        {"grid_id": "B", "load_mw": 20, "capacity_mw": 100},
        {"grid_id": "C", "load_mw": 60, "capacity_mw": 100},
    ])
    _, viewer = make_user("viewer")
    response = client.get("/api/energy/optimization/load-balancing", headers=bearer(viewer["access_token"]))
    assert response.status_code == 200
    body = response.get_json()
    assert body["transfers"] == [{"from": "A", "to": "B", "mw": 15.0}]
    assert body["after"] == {"A": 85.0, "B": 35.0, "C": 60.0} and body["target_pct"] == 85
    lower = client.get("/api/energy/optimization/load-balancing?target_pct=50", headers=admin_headers).get_json()
    # Target 50: A sheds 50, C sheds 10; B takes 30: A -> B 30, then nothing left to receive.
    assert lower["transfers"] == [{"from": "A", "to": "B", "mw": 30.0}] and lower["unresolved_mw"] == 30.0
    bad = client.get("/api/energy/optimization/load-balancing?target_pct=150", headers=admin_headers)
    assert bad.status_code == 422 and "target_pct" in bad.get_json()["errors"]


# Grids

def test_register_get_and_list_grids(client, admin_headers):
    location = {"type": "Point", "coordinates": [-73.98, 40.75]}
    created = client.post("/api/energy/grids", headers=admin_headers,
                          json=grid_body(solar_capacity_mw=12, location=location))
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["grid_id"] == "G-1" and created.get_json()["solar_capacity_mw"] == 12
    client.post("/api/energy/grids", headers=admin_headers, json=grid_body("G-2", district="Harbor"))
    post_readings(client, admin_headers, [{"grid_id": "G-1", "load_mw": 42, "capacity_mw": 100, "solar_mw": 6}])

    one = client.get("/api/energy/grids/G-1", headers=admin_headers).get_json()
    assert one["load_mw"] == 42 and one["utilization_pct"] == 42.0 and one["renewable_pct"] == 14.29
    assert one["name"] == "G-1 substation" and one["last_reading_at"].endswith("Z")
    page = client.get("/api/energy/grids?district=Harbor", headers=admin_headers).get_json()
    assert [g["grid_id"] for g in page["items"]] == ["G-2"] and page["total"] == 1
    assert client.get("/api/energy/grids", headers=admin_headers).get_json()["total"] == 2
    missing = client.get("/api/energy/grids/NOPE", headers=admin_headers)
    assert missing.status_code == 404 and missing.get_json()["error"] == "not_found"


def test_grid_errors(client, admin_headers, make_user):
    assert client.post("/api/energy/grids", headers=admin_headers, json=grid_body()).status_code == 201
    duplicate = client.post("/api/energy/grids", headers=admin_headers, json=grid_body(name="other"))
    assert duplicate.status_code == 409 and "grid_id" in duplicate.get_json()["errors"]
    bad = client.post("/api/energy/grids", headers=admin_headers,
                      json={"grid_id": "bad id!", "capacity_mw": -5, "district": ""})
    assert bad.status_code == 422
    assert {"grid_id", "capacity_mw", "district", "name"} <= set(bad.get_json()["errors"])
    _, viewer = make_user("viewer")
    assert client.post("/api/energy/grids", headers=bearer(viewer["access_token"]),
                       json=grid_body("G-9")).status_code == 403
    assert client.get("/api/energy/grids", headers=bearer(viewer["access_token"])).status_code == 200


def test_seed_grids_only_when_empty(app, client, admin_headers):
    with app.app_context():
        assert energy.seed_grids(get_db()) == 6
        assert energy.seed_grids(get_db()) == 0
    page = client.get("/api/energy/grids", headers=admin_headers).get_json()
    assert page["total"] == 6 and page["items"][0]["grid_id"] == "GRID-01"
    assert page["items"][0]["location"]["type"] == "Point" and page["items"][0]["capacity_mw"] > 0


# Renewable share

def test_renewable_share_from_latest_readings(client, admin_headers):
    now = datetime.now(timezone.utc)
    post_readings(client, admin_headers, [
        # Superseded by G-1's newer reading below.
        {"grid_id": "G-1", "load_mw": 10, "capacity_mw": 150, "solar_mw": 10,
         "timestamp": iso(now - timedelta(minutes=9))},
        {"grid_id": "G-1", "load_mw": 100, "capacity_mw": 150, "solar_mw": 20, "wind_mw": 10,
         "timestamp": iso(now - timedelta(minutes=1))},
        {"grid_id": "G-2", "load_mw": 50, "capacity_mw": 80, "wind_mw": 5, "hydro_mw": 15, "district": "Harbor"},
    ])
    body = client.get("/api/energy/renewable", headers=admin_headers).get_json()
    # Load 150, renewable 20 + 10 + 5 + 15 = 50 -> 33.33 %; of it solar 20/50, wind 15/50, hydro 15/50.
    assert body["totals"] == {"load_mw": 150.0, "solar_mw": 20.0, "wind_mw": 15.0, "hydro_mw": 15.0,
                              "renewable_mw": 50.0, "renewable_pct": 33.33}
    assert body["mix"] == {"solar_pct": 40.0, "wind_pct": 30.0, "hydro_pct": 30.0}
    assert body["grids_reporting"] == 2
    by_grid = {g["grid_id"]: g for g in body["grids"]}
    assert by_grid["G-1"]["renewable_pct"] == 30.0 and by_grid["G-1"]["renewable_mw"] == 30.0
    assert by_grid["G-2"]["renewable_pct"] == 40.0 and by_grid["G-2"]["district"] == "Harbor"


def test_renewable_with_no_readings(client, admin_headers):
    body = client.get("/api/energy/renewable", headers=admin_headers).get_json()
    assert body["grids_reporting"] == 0 and body["totals"]["renewable_pct"] == 0.0 and body["as_of"] is None


# Consumption

@pytest.fixture
def hour():
    """The start of the last full hour, so its readings are all in the past."""
    return datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)


@pytest.fixture
def consumption_readings(client, admin_headers, hour):
    # G-1 reports every 15 min from H-1 to the end of H; each reading's meter figure is the energy of the
    # 15 min before it. H-1: 40 MW throughout = 40 MWh. H: 60, 80, 100, 80 MW = 80 MWh, peak 100.
    # G-2: one lone reading of 30 MW at H+5 min, with no meter: it stands for one expected interval (60 s).
    loads = [40, 40, 40, 40, 60, 80, 100, 80]
    post_readings(client, admin_headers, [
        {"grid_id": "G-1", "load_mw": load, "capacity_mw": 200, "consumption_kwh": load * 1000 / 4,
         "timestamp": iso(hour - timedelta(hours=1) + timedelta(minutes=15 * i))} for i, load in enumerate(loads)
    ] + [{"grid_id": "G-2", "load_mw": 30, "capacity_mw": 50, "timestamp": iso(hour + timedelta(minutes=5))}])


def test_consumption_per_hour(client, admin_headers, hour, consumption_readings):
    query = f"from={iso(hour - timedelta(hours=1))}&to={iso(hour + timedelta(hours=1))}&resolution=hour"
    response = client.get(f"/api/energy/consumption?{query}&grid_id=G-1", headers=admin_headers)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["resolution"] == "hour" and body["total"] == 2
    earlier, later = body["items"]
    assert earlier["period_start"] == iso(hour - timedelta(hours=1)).replace("Z", ".000Z")
    assert (earlier["hours_covered"], earlier["avg_load_mw"], earlier["peak_load_mw"], earlier["energy_mwh"],
            earlier["consumption_kwh"]) == (1.0, 40.0, 40.0, 40.0, 40000.0)
    assert (later["hours_covered"], later["avg_load_mw"], later["peak_load_mw"], later["energy_mwh"],
            later["consumption_kwh"]) == (1.0, 80.0, 100.0, 80.0, 80000.0)
    assert later["readings"] == 4
    # The load-based and the metered figure are the same quantity: energy_mwh == consumption_kwh / 1000.
    assert body["grids"] == [{"grid_id": "G-1", "district": None, "hours_covered": 2.0, "readings": 8,
                              "avg_load_mw": 60.0, "peak_load_mw": 100.0, "energy_mwh": 120.0,
                              "consumption_kwh": 120000.0}]
    assert body["energy_mwh"] == 120.0 and body["consumption_kwh"] == 120000.0 and "clipped" in body["method"]

    every_grid = client.get(f"/api/energy/consumption?{query}", headers=admin_headers).get_json()
    assert [(i["grid_id"], i["energy_mwh"]) for i in every_grid["items"]] == [("G-1", 40.0), ("G-1", 80.0),
                                                                              ("G-2", 0.5)]
    g2 = every_grid["grids"][1]
    assert (g2["grid_id"], g2["hours_covered"], g2["energy_mwh"], g2["consumption_kwh"]) == ("G-2", 0.0167, 0.5, None)
    assert every_grid["energy_mwh"] == 120.5 and every_grid["consumption_kwh"] == 120000.0


def test_consumption_per_day_and_default_range(client, admin_headers, hour, consumption_readings):
    by_day = client.get("/api/energy/consumption?resolution=day&grid_id=G-1", headers=admin_headers).get_json()
    assert by_day["timezone"] == "America/New_York"
    # The two hours fall on one local day unless H is local midnight; energy adds up either way.
    assert sum(i["energy_mwh"] for i in by_day["items"]) == 120.0
    split = hour.astimezone(ZoneInfo("America/New_York")).hour == 0
    assert by_day["total"] == (2 if split else 1)
    if not split:
        day = by_day["items"][0]
        assert (day["hours_covered"], day["avg_load_mw"], day["peak_load_mw"]) == (2.0, 60.0, 100.0)
    # Default range: the last 24 h, which holds both hours.
    default = client.get("/api/energy/consumption", headers=admin_headers).get_json()
    assert default["energy_mwh"] == 120.5 and default["resolution"] == "hour"
    start = datetime.fromisoformat(default["from"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(default["to"].replace("Z", "+00:00"))
    assert end - start == timedelta(hours=24)
    paged = client.get("/api/energy/consumption?limit=1&offset=2", headers=admin_headers).get_json()
    assert paged["total"] == 3 and [i["grid_id"] for i in paged["items"]] == ["G-2"]


def test_a_partial_hour_counts_as_the_part_covered(client, admin_headers):
    # A grid that started reporting 3 minutes ago, every 15 s at 98.1 MW (the simulator's shape): about
    # 4.9 MWh, not 98.1 (one full hour), and the meter says the same.
    now = datetime.now(timezone.utc).replace(microsecond=0)
    kwh = round(98.1 * 1000 * 15 / 3600, 2)
    post_readings(client, admin_headers, [
        {"grid_id": "GRID-01", "load_mw": 98.1, "capacity_mw": 150, "consumption_kwh": kwh,
         "timestamp": iso(now - timedelta(seconds=180 - 15 * i))} for i in range(12)])
    body = client.get("/api/energy/consumption?grid_id=GRID-01", headers=admin_headers).get_json()
    assert body["energy_mwh"] == pytest.approx(98.1 * 3 / 60, abs=0.05)
    assert body["consumption_kwh"] / 1000 == pytest.approx(body["energy_mwh"], rel=0.02)
    assert body["grids"][0]["hours_covered"] == pytest.approx(0.05, abs=0.001)
    assert body["grids"][0]["avg_load_mw"] == 98.1


def test_a_range_that_starts_mid_hour_counts_only_its_part(client, admin_headers, hour, consumption_readings):
    query = f"from={iso(hour + timedelta(minutes=30))}&to={iso(hour + timedelta(hours=1))}&grid_id=G-1"
    body = client.get(f"/api/energy/consumption?{query}", headers=admin_headers).get_json()
    assert [(i["hours_covered"], i["energy_mwh"]) for i in body["items"]] == [(0.5, 40.0)]


def test_consumption_rejects_bad_queries(client, admin_headers):
    bad = client.get("/api/energy/consumption?resolution=minute&from=yesterday", headers=admin_headers)
    assert bad.status_code == 422 and {"resolution", "from"} <= set(bad.get_json()["errors"])
    now = datetime.now(timezone.utc)
    backwards = client.get(f"/api/energy/consumption?from={iso(now)}&to={iso(now - timedelta(hours=1))}".replace(
        "+", "%2B"), headers=admin_headers)
    assert backwards.status_code == 422 and "from" in backwards.get_json()["errors"]
    assert client.get("/api/energy/consumption").status_code == 401


# Readings for grids that are not registered (auto-registration) and implausible loads

def readings_of(app, grid_id):
    return get_db(app).readings.count_documents({"module": "energy", "sensor_id": grid_id})


def test_reading_for_an_unknown_grid_registers_a_well_formed_grid(app, client, admin_headers):
    location = {"type": "Point", "coordinates": [-73.99, 40.70]}
    post_readings(client, admin_headers, [{"grid_id": "G-NEW", "load_mw": 60, "capacity_mw": 150, "district": "Harbor",
                                           "location": location}])
    grid = client.get("/api/energy/grids/G-NEW", headers=admin_headers)
    assert grid.status_code == 200
    body = grid.get_json()
    assert (body["name"], body["district"], body["capacity_mw"], body["utilization_pct"]) == \
        ("G-NEW", "Harbor", 150.0, 40.0)
    assert body["location"] == location and body["auto_registered"] is True
    registered = client.post("/api/energy/grids", headers=admin_headers, json=grid_body("G-REG")).get_json()
    assert registered["auto_registered"] is False


def test_auto_registered_grid_takes_its_district_from_the_first_reading_that_has_one(client, admin_headers):
    post_readings(client, admin_headers, [{"grid_id": "G-ND", "load_mw": 10, "capacity_mw": 100}])
    first = client.get("/api/energy/grids/G-ND", headers=admin_headers).get_json()
    assert first["district"] is None and first["auto_registered"] is True and first["capacity_mw"] == 100.0 and first["utilization_pct"] == 10.0
    post_readings(client, admin_headers, [{"grid_id": "G-ND", "load_mw": 20, "capacity_mw": 100,
                                           "district": "Harbor"}])
    assert client.get("/api/energy/grids/G-ND", headers=admin_headers).get_json()["district"] == "Harbor"
    post_readings(client, admin_headers, [{"grid_id": "G-ND", "load_mw": 30, "capacity_mw": 100,
                                           "district": "Downtown"}])
    # A district once known is the registry's: a reading does not move the grid.
    assert client.get("/api/energy/grids/G-ND", headers=admin_headers).get_json()["district"] == "Harbor"
    page = client.get("/api/energy/grids?district=Harbor", headers=admin_headers).get_json()
    assert [g["grid_id"] for g in page["items"]] == ["G-ND"]


@pytest.mark.parametrize("registered", [False, True])
def test_implausible_load_for_the_capacity_is_refused(app, client, admin_headers, registered):
    # 99 999 MW on a 0.001 MW grid used to be stored as utilization_pct 9 999 900 000.
    if registered:
        assert client.post("/api/energy/grids", headers=admin_headers, json=grid_body("G-X")).status_code == 201
    response = client.post("/api/energy/data", headers=admin_headers,
                           json={"grid_id": "G-X", "load_mw": 99999, "capacity_mw": 0.001, "district": "Harbor"})
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"] == "validation_error" and body["message"]
    assert "load_mw" in body["errors"]
    assert readings_of(app, "G-X") == 0
    grid = client.get("/api/energy/grids/G-X", headers=admin_headers)
    if registered:
        assert grid.get_json()["capacity_mw"] == 100.0 and grid.get_json().get("utilization_pct") is None
    else:
        assert grid.status_code == 404
    # At the limit (2 x capacity, 200 %) a reading is still accepted.
    item = post_readings(client, admin_headers, [{"grid_id": "G-X", "load_mw": 200, "capacity_mw": 100}])[0]
    assert item["utilization_pct"] == 200.0


def test_a_refused_reading_stores_nothing_from_its_batch(app, client, admin_headers):
    batch = [{"grid_id": "G-A", "load_mw": 50, "capacity_mw": 100, "district": "Harbor"},
             {"grid_id": "G-B", "load_mw": 80, "capacity_mw": 100, "district": "Harbor"},
             {"grid_id": "G-C", "load_mw": 5000, "capacity_mw": 1, "district": "Harbor"}]
    response = client.post("/api/energy/data", headers=admin_headers, json=batch)
    assert response.status_code == 422 and response.get_json()["error"] == "validation_error"
    assert list(response.get_json()["errors"]) == ["2"] and "load_mw" in response.get_json()["errors"]["2"]
    db = get_db(app)
    assert db.readings.count_documents({"module": "energy"}) == 0 and db.grids.count_documents({}) == 0
    assert client.get("/api/energy/grids", headers=admin_headers).get_json()["total"] == 0
    assert client.get("/api/energy/renewable", headers=admin_headers).get_json()["grids_reporting"] == 0
    plan = client.get("/api/energy/optimization/load-balancing", headers=admin_headers).get_json()
    assert plan["grids_considered"] == 0 and plan["before"] == {}


def test_utilisation_stays_finite_everywhere(app, client, admin_headers):
    post_readings(client, admin_headers, [
        {"grid_id": "G-1", "load_mw": 200, "capacity_mw": 100, "district": "Harbor"},
        {"grid_id": "G-2", "load_mw": 0, "capacity_mw": 0.001, "district": "Harbor"},
    ])
    plan = client.get("/api/energy/optimization/load-balancing", headers=admin_headers).get_json()
    assert plan["before"] == {"G-1": 200.0, "G-2": 0.0}
    overview = client.get("/api/dashboard/overview", headers=admin_headers)
    assert overview.status_code == 200
    # 200 MW over 100.001 MW of capacity.
    assert overview.get_json()["modules"]["energy"]["kpis"]["utilization_pct"] == 200.0
    grids = client.get("/api/energy/grids?sort=-utilization_pct", headers=admin_headers).get_json()["items"]
    assert [(g["grid_id"], g["utilization_pct"]) for g in grids] == [("G-1", 200.0), ("G-2", 0.0)]
    # States without a usable capacity are left out, not divided by.
    states = [{"grid_id": "N", "load_mw": 5, "capacity_mw": None}, {"grid_id": "Z", "load_mw": 5, "capacity_mw": 0},
              {"grid_id": "M", "load_mw": 5}]
    assert energy.plan_load_balancing(states)["grids_considered"] == 0
