"""The ingest pipeline over REST: validation, batches, storage, history."""
from datetime import datetime, timedelta, timezone

import pytest

from src.db import get_db
from tests.conftest import bearer

ENV = {"sensor_id": "ENV-T1", "pm25": 12.0, "pm10": 20.0, "co2": 410.0, "noise_db": 55.0, "temperature_c": 18.0,
       "humidity_pct": 60.0}
TRAFFIC = {"sensor_id": "TRF-T1", "vehicle_count": 12, "average_speed": 42.5, "congestion_level": 35.0}
ENERGY = {"grid_id": "GRID-T1", "load_mw": 60.0, "capacity_mw": 120.0, "solar_mw": 6.0, "wind_mw": 3.0}
BIN = {"bin_id": "BIN-T1", "capacity_liters": 240, "district": "Harbor", "waste_type": "recycling",
       "location": {"type": "Point", "coordinates": [-73.99, 40.70]}}


def iso(dt):
    return dt.isoformat().replace("+00:00", "Z")


@pytest.fixture
def operator(make_user):
    return bearer(make_user("operator")[1]["access_token"])


def count(app, module):
    return get_db(app).readings.count_documents({"module": module})


def test_single_reading_is_stored_with_server_fields(app, client, operator):
    response = client.post("/api/traffic/data", headers=operator, json=TRAFFIC)
    assert response.status_code == 201
    body = response.get_json()
    assert body["ingested"] == 1
    item = body["items"][0]
    assert item["module"] == "traffic" and item["source"] == "api" and item["timestamp"].endswith("Z")
    assert item["vehicle_count"] == 12 and len(item["id"]) == 24
    assert count(app, "traffic") == 1


def test_environment_gets_aqi_from_epa_breakpoints(client, operator):
    item = client.post("/api/environment/data", headers=operator, json=ENV).get_json()["items"][0]
    # PM2.5 12.0 -> 51 + (100-51)/(35.4-9.1) * (12.0-9.1) = 56.4 -> 56; PM10 20 -> 19; the larger wins.
    assert item["aqi"] == 56 and item["aqi_category"] == "moderate" and item["dominant_pollutant"] == "pm25"


def test_energy_gets_utilization_and_renewable_share(client, operator):
    item = client.post("/api/energy/data", headers=operator, json=ENERGY).get_json()["items"][0]
    assert item["utilization_pct"] == 50.0 and item["renewable_pct"] == 15.0 and item["sensor_id"] == "GRID-T1"


def test_waste_level_needs_a_registered_bin(client, operator):
    response = client.post("/api/waste/data", headers=operator, json={"bin_id": "BIN-404", "fill_level_pct": 10})
    assert response.status_code == 422 and "bin_id" in response.get_json()["errors"]
    assert client.post("/api/waste/bins", headers=operator, json=BIN).status_code == 201
    item = client.post("/api/waste/data", headers=operator, json={"bin_id": "BIN-T1", "fill_level_pct": 42.0}
                       ).get_json()["items"][0]
    assert item["district"] == "Harbor" and item["waste_type"] == "recycling"
    level = client.put("/api/waste/bins/BIN-T1/update-level", headers=operator, json={"fill_level_pct": 50.0})
    assert level.status_code == 200
    assert client.put("/api/waste/bins/NOPE/update-level", headers=operator,
                      json={"fill_level_pct": 5.0}).status_code == 404


def test_batch_is_stored_whole(app, client, operator):
    batch = [dict(TRAFFIC, sensor_id=f"TRF-B{i}") for i in range(25)]
    response = client.post("/api/traffic/data", headers=operator, json=batch)
    assert response.status_code == 201 and response.get_json()["ingested"] == 25
    assert count(app, "traffic") == 25


def test_invalid_batch_stores_nothing_and_names_index_and_field(app, client, operator):
    batch = [dict(ENV), dict(ENV, pm25=-1), dict(ENV), dict(ENV, humidity_pct=120, sensor_id="bad id!")]
    response = client.post("/api/environment/data", headers=operator, json=batch)
    assert response.status_code == 422
    errors = response.get_json()["errors"]
    assert set(errors) == {"1", "3"}
    assert "pm25" in errors["1"] and {"humidity_pct", "sensor_id"} <= set(errors["3"])
    assert count(app, "environment") == 0
    assert get_db(app).latest.count_documents({}) == 0


@pytest.mark.parametrize("bad", [
    {"pm25": "NaN"}, {"pm25": float("inf")}, {"pm25": True}, {"co2": None}, {"noise_db": "loud"},
    {"unexpected": 1}, {"timestamp": "not a time"}, {"location": {"type": "Point", "coordinates": [200, 0]}},
])
def test_invalid_values_are_422(app, client, operator, bad):
    response = client.post("/api/environment/data", headers=operator, json=dict(ENV, **bad))
    assert response.status_code == 422
    assert set(bad) & set(response.get_json()["errors"])
    assert count(app, "environment") == 0


def test_nan_literal_in_json_is_refused(client, operator):
    body = '{"sensor_id": "E", "pm25": NaN, "pm10": 1, "co2": 1, "noise_db": 1, "temperature_c": 1, "humidity_pct": 1}'
    response = client.post("/api/environment/data", headers=operator, data=body, content_type="application/json")
    assert response.status_code == 422 and "pm25" in response.get_json()["errors"]


def test_future_timestamp_is_refused(client, operator):
    future = iso(datetime.now(timezone.utc) + timedelta(hours=1))
    response = client.post("/api/traffic/data", headers=operator, json=dict(TRAFFIC, timestamp=future))
    assert response.status_code == 422 and "timestamp" in response.get_json()["errors"]


def test_empty_and_oversized_batches(client, operator):
    assert client.post("/api/traffic/data", headers=operator, json=[]).status_code == 422
    big = [dict(TRAFFIC) for _ in range(1001)]
    response = client.post("/api/traffic/data", headers=operator, json=big)
    assert response.status_code == 422 and "1000" in str(response.get_json()["errors"])
    assert client.post("/api/traffic/data", headers=operator, json="text").status_code == 422


def test_viewers_cannot_ingest(client, make_user):
    viewer = bearer(make_user("viewer")[1]["access_token"])
    assert client.post("/api/traffic/data", headers=viewer, json=TRAFFIC).status_code == 403
    assert client.get("/api/traffic/data", headers=viewer).status_code == 200


def test_history_with_time_range_and_pagination(client, operator):
    base = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=3)
    batch = [dict(TRAFFIC, vehicle_count=i, timestamp=iso(base + timedelta(minutes=10 * i))) for i in range(12)]
    client.post("/api/traffic/data", headers=operator, json=batch)
    client.post("/api/traffic/data", headers=operator, json=dict(TRAFFIC, sensor_id="TRF-OTHER"))
    args = {"sensor_id": "TRF-T1", "from": iso(base + timedelta(minutes=20)), "to": iso(base + timedelta(minutes=90)),
            "limit": 3}
    page = client.get("/api/traffic/data", headers=operator, query_string=args).get_json()
    assert page["total"] == 7 and page["limit"] == 3 and page["offset"] == 0
    assert [r["vehicle_count"] for r in page["items"]] == [8, 7, 6]
    second = client.get("/api/traffic/data", headers=operator, query_string=dict(args, offset=3, sort="timestamp")
                        ).get_json()
    assert [r["vehicle_count"] for r in second["items"]] == [5, 6, 7]


def test_history_query_errors(client, operator):
    assert client.get("/api/traffic/data?limit=0", headers=operator).status_code == 422
    assert client.get("/api/traffic/data?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
                      headers=operator).status_code == 422
    assert client.get("/api/traffic/data?sort=password", headers=operator).status_code == 422


MODULE_CASES = {
    "traffic": (TRAFFIC, "congestion_level", 120.0),
    "environment": (ENV, "pm25", -3.0),
    "energy": (ENERGY, "frequency_hz", 5.0),
    "waste": ({"bin_id": "BIN-T1", "fill_level_pct": 40.0}, "fill_level_pct", 140.0),
}


@pytest.mark.parametrize("module", sorted(MODULE_CASES))
def test_every_module_single_batch_invalid_and_history(app, client, operator, module):
    valid, bad_field, bad_value = MODULE_CASES[module]
    if module == "waste":
        assert client.post("/api/waste/bins", headers=operator, json=BIN).status_code == 201
    id_field = {"waste": "bin_id", "energy": "grid_id"}.get(module, "sensor_id")
    sensor = valid[id_field]
    base = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=2)

    single = client.post(f"/api/{module}/data", headers=operator, json=dict(valid, timestamp=iso(base)))
    assert single.status_code == 201 and single.get_json()["ingested"] == 1
    batch = [dict(valid, timestamp=iso(base + timedelta(minutes=5 * (i + 1)))) for i in range(9)]
    assert client.post(f"/api/{module}/data", headers=operator, json=batch).get_json()["ingested"] == 9
    assert count(app, module) == 10

    bad = [dict(valid), dict(valid, **{bad_field: bad_value}), dict(valid)]
    refused = client.post(f"/api/{module}/data", headers=operator, json=bad)
    assert refused.status_code == 422 and list(refused.get_json()["errors"]) == ["1"]
    assert bad_field in refused.get_json()["errors"]["1"]
    assert count(app, module) == 10  # nothing from the bad batch

    window = {"sensor_id": sensor, "from": iso(base + timedelta(minutes=10)), "to": iso(base + timedelta(minutes=40)),
              "limit": 4, "sort": "timestamp"}
    page = client.get(f"/api/{module}/data", headers=operator, query_string=window).get_json()
    assert page["total"] == 6 and len(page["items"]) == 4
    stamps = [item["timestamp"] for item in page["items"]]
    assert stamps == sorted(stamps) and stamps[0] == iso(base + timedelta(minutes=10)).replace("Z", ".000Z")
    rest = client.get(f"/api/{module}/data", headers=operator, query_string=dict(window, offset=4)).get_json()
    assert len(rest["items"]) == 2


def test_readings_older_than_retention_are_refused(app_factory):
    from tests.conftest import login

    client = app_factory(RAW_RETENTION_HOURS=2).test_client()
    headers = bearer(login(client)["access_token"])
    old = iso(datetime.now(timezone.utc) - timedelta(hours=3))
    response = client.post("/api/traffic/data", headers=headers, json=[TRAFFIC, dict(TRAFFIC, timestamp=old)])
    assert response.status_code == 422 and "retention" in str(response.get_json()["errors"]["1"]["timestamp"])
