"""Rollups into readings_hourly: idempotent, incremental, catch-up, and agreeing with raw readings."""
from datetime import datetime, timedelta, timezone

import pytest

from src.db import get_db
from src.models import rollups

HOUR = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)


def iso(dt):
    return dt.isoformat().replace("+00:00", "Z")


def post(client, headers, sensor, minute, count, congestion, hour=HOUR):
    body = {"sensor_id": sensor, "vehicle_count": count, "average_speed": 30.0 + count, "congestion_level": congestion,
            "district": "Harbor", "timestamp": iso(hour + timedelta(minutes=minute))}
    assert client.post("/api/traffic/data", headers=headers, json=body).status_code == 201


def hourly_docs(app):
    return sorted(get_db(app).readings_hourly.find({}, {"updated_at": 0}), key=lambda d: d["_id"])


@pytest.fixture
def seeded(app, client, admin_headers):
    for minute, count, congestion in ((5, 10, 20.0), (25, 20, 40.0), (45, 30, 60.0)):
        post(client, admin_headers, "TRF-R1", minute, count, congestion)
    post(client, admin_headers, "TRF-R1", 10, 50, 80.0, hour=HOUR + timedelta(hours=1))
    post(client, admin_headers, "TRF-R2", 15, 7, 10.0)
    with app.app_context():
        return rollups.refresh(get_db(app))


def test_rollup_aggregates_per_sensor_metric_and_hour(app, seeded):
    assert seeded["buckets"] == 3
    bucket = get_db(app).readings_hourly.find_one({"_id": rollups.bucket_id("traffic", "TRF-R1", HOUR)})
    assert bucket["count"] == 3 and bucket["district"] == "Harbor"
    assert bucket["metrics"]["vehicle_count"] == {"count": 3, "sum": 60.0, "min": 10.0, "max": 30.0, "avg": 20.0}
    assert bucket["metrics"]["congestion_level"]["avg"] == 40.0


def test_rerunning_produces_the_same_documents(app, seeded):
    before = hourly_docs(app)
    with app.app_context():
        rollups.refresh(get_db(app))
        rollups.refresh(get_db(app))
    assert hourly_docs(app) == before


def test_new_readings_update_only_their_bucket_without_double_counting(app, client, admin_headers, seeded):
    post(client, admin_headers, "TRF-R1", 55, 40, 70.0)
    with app.app_context():
        rollups.refresh(get_db(app))
        rollups.refresh(get_db(app))
    bucket = get_db(app).readings_hourly.find_one({"_id": rollups.bucket_id("traffic", "TRF-R1", HOUR)})
    assert bucket["count"] == 4 and bucket["metrics"]["vehicle_count"]["sum"] == 100.0


def test_catch_up_after_a_gap(app, client, admin_headers):
    """Readings that arrived while no rollup ran (downtime) are picked up from the watermark."""
    database = get_db(app)
    with app.app_context():
        rollups.refresh(database)
    # Pretend the last run was long ago, and that many readings arrived since.
    database.rollup_state.update_one({"_id": rollups.STATE_ID},
                                     {"$set": {"watermark": datetime.now(timezone.utc) - timedelta(hours=2)}})
    for i in range(30):
        post(client, admin_headers, f"TRF-G{i % 3}", i, i, 10.0)
    with app.app_context():
        first = rollups.refresh(database, max_readings=20)  # a small page: catch up in steps
        assert first["complete"] is False
        while not rollups.refresh(database, max_readings=20)["complete"]:
            pass
    total = sum(d["count"] for d in database.readings_hourly.find({"module": "traffic"}))
    assert total == 30


def test_history_at_hour_resolution_agrees_with_raw_readings(app, client, admin_headers, seeded):
    page = client.get("/api/traffic/data", headers=admin_headers,
                      query_string={"resolution": "hour", "sensor_id": "TRF-R1", "sort": "timestamp"}).get_json()
    assert page["resolution"] == "hour" and page["total"] == 2
    raw = client.get("/api/traffic/data", headers=admin_headers,
                     query_string={"sensor_id": "TRF-R1", "limit": 1000}).get_json()["items"]
    for item in page["items"]:
        start = datetime.fromisoformat(item["period_start"].replace("Z", "+00:00"))
        in_hour = [r for r in raw if start <= datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00"))
                   < start + timedelta(hours=1)]
        assert item["count"] == len(in_hour)
        for metric in ("vehicle_count", "average_speed", "congestion_level"):
            values = [r[metric] for r in in_hour]
            agg = item["metrics"][metric]
            assert agg["avg"] == pytest.approx(sum(values) / len(values))
            assert (agg["min"], agg["max"]) == (min(values), max(values))


def test_day_resolution_merges_hours(app, client, admin_headers, seeded):
    page = client.get("/api/traffic/data", headers=admin_headers,
                      query_string={"resolution": "day", "sensor_id": "TRF-R1"}).get_json()
    counts = sum(item["count"] for item in page["items"])
    assert counts == 4
    if len(page["items"]) == 1:  # both hours fell on the same UTC day
        assert page["items"][0]["metrics"]["vehicle_count"]["avg"] == pytest.approx((10 + 20 + 30 + 50) / 4)


def test_trends_average_across_sensors(app, client, admin_headers):
    for sensor, pm25 in (("ENV-R1", 10.0), ("ENV-R2", 30.0)):
        body = {"sensor_id": sensor, "pm25": pm25, "pm10": 10.0, "co2": 400.0, "noise_db": 40.0,
                "temperature_c": 20.0, "humidity_pct": 50.0, "timestamp": iso(HOUR + timedelta(minutes=5))}
        client.post("/api/environment/data", headers=admin_headers, json=body)
    with app.app_context():
        rollups.refresh(get_db(app))
    trends = client.get("/api/environment/pollution/trends", headers=admin_headers,
                        query_string={"resolution": "hour", "from": iso(HOUR - timedelta(hours=1))}).get_json()
    hour = [i for i in trends["items"] if i["period_start"] == iso(HOUR).replace("+00:00", "Z")
            or i["period_start"].startswith(HOUR.strftime("%Y-%m-%dT%H"))][0]
    assert hour["pm25"]["avg"] == 20.0 and hour["readings"] == 2


def test_a_late_reading_from_long_ago_does_not_truncate_other_buckets(app, client, admin_headers, monkeypatch):
    """Each touched hour is recomputed from its own readings, so one old reading reads one old hour."""
    monkeypatch.setattr(rollups, "MAX_SCAN", 5)
    now_hour = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    for minute in range(4):
        post(client, admin_headers, "TRF-L1", minute, 10, 10.0, hour=now_hour)
    post(client, admin_headers, "TRF-L1", 0, 99, 10.0, hour=now_hour - timedelta(days=20))
    with app.app_context():
        rollups.refresh(get_db(app))
    current = get_db(app).readings_hourly.find_one({"_id": rollups.bucket_id("traffic", "TRF-L1", now_hour)})
    assert current["count"] == 4


def test_hour_history_pages_newest_first_in_the_database(app, client, admin_headers):
    for h in range(30):
        post(client, admin_headers, "TRF-H", 5, h, 10.0, hour=HOUR - timedelta(hours=h))
    with app.app_context():
        rollups.refresh(get_db(app))
    page = client.get("/api/traffic/data", headers=admin_headers,
                      query_string={"resolution": "hour", "sensor_id": "TRF-H", "limit": 5, "offset": 5}).get_json()
    assert page["total"] == 30
    assert [i["metrics"]["vehicle_count"]["avg"] for i in page["items"]] == [5.0, 6.0, 7.0, 8.0, 9.0]


def test_too_large_a_range_is_422_not_a_silently_cut_answer(app, client, admin_headers, monkeypatch):
    monkeypatch.setattr(rollups, "MAX_BUCKETS", 3)
    for h in range(5):
        post(client, admin_headers, "TRF-X", 5, h, 10.0, hour=HOUR - timedelta(hours=h))
    with app.app_context():
        rollups.refresh(get_db(app))
    response = client.get("/api/traffic/data", headers=admin_headers, query_string={"resolution": "day"})
    assert response.status_code == 422 and response.get_json()["error"] == "range_too_large"
