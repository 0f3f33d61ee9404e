"""Analytics in the city's local time (CITY_TIMEZONE), across a DST change.

New York moved its clocks forward on Sunday 8 March 2026 at 02:00: that local day has 23 hours,
and the UTC offset of a local hour changes from -5 to -4 in the middle of the week.
"""
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from src.db import get_db
from src.models import rollups

NEW_YORK = ZoneInfo("America/New_York")
DST_WEEK = [datetime(2026, 3, 5, tzinfo=NEW_YORK) + timedelta(days=i) for i in range(7)]  # Thu 5 .. Wed 11


def iso(dt):
    return dt.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def z(dt):
    return iso(dt).replace("Z", ".000Z")


@pytest.fixture
def city_app(app_factory):
    # The DST week is in the past: keep raw readings that old.
    return app_factory(RAW_RETENTION_HOURS=24 * 365 * 50)


def post_traffic(app, headers, readings):
    client = app.test_client()
    batch = [{"sensor_id": sensor, "vehicle_count": count, "average_speed": 40.0, "congestion_level": 30.0,
              "timestamp": iso(when)} for sensor, when, count in readings]
    response = client.post("/api/traffic/data", headers=headers, json=batch)
    assert response.status_code == 201, response.get_json()
    with app.app_context():
        rollups.refresh(get_db(app))
    return client


def headers_for(app):
    token = app.test_client().post("/api/auth/login", json={"email": "admin@smartcity.com",
                                                            "password": "admin123"}).get_json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def test_rush_hours_are_local_hours_across_a_dst_week(city_app):
    headers = headers_for(city_app)
    readings = []
    for day in DST_WEEK:
        readings += [("T1", day.replace(hour=8), 100), ("T1", day.replace(hour=17), 100),
                     ("T1", day.replace(hour=3), 5)]
    client = post_traffic(city_app, headers, readings)
    query = f"from={iso(DST_WEEK[0])}&to={iso(DST_WEEK[-1] + timedelta(days=1))}&sensor_id=T1"
    body = client.get(f"/api/analytics/traffic/patterns?{query}", headers=headers).get_json()
    assert body["timezone"] == "America/New_York"
    hours = {h["hour"]: h for h in body["hour_of_day"]}
    # In UTC these would be 13 and 22 before the change and 12 and 21 after it.
    assert (hours[8]["avg"], hours[8]["samples"]) == (100.0, 7)
    assert (hours[17]["avg"], hours[17]["samples"]) == (100.0, 7)
    assert (hours[3]["avg"], hours[3]["samples"]) == (5.0, 7)
    assert {h for h, item in hours.items() if item["samples"]} == {3, 8, 17}
    # Every local day holds its own three readings, whatever the UTC date of its evening.
    assert [(d["day"], d["samples"]) for d in body["day_of_week"]] == [
        (name, 3) for name in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")]


def test_daily_history_uses_local_days_of_23_and_25_hours(city_app):
    headers = headers_for(city_app)
    start = datetime(2026, 3, 7, tzinfo=NEW_YORK)
    end = datetime(2026, 3, 10, tzinfo=NEW_YORK)
    hours = int((end.astimezone(timezone.utc) - start).total_seconds() // 3600)
    assert hours == 71  # one hour is skipped on 8 March
    readings = [("T1", (start.astimezone(timezone.utc) + timedelta(hours=i, minutes=30)), 10) for i in range(hours)]
    client = post_traffic(city_app, headers, readings)
    body = client.get(f"/api/traffic/data?resolution=day&sort=timestamp&sensor_id=T1&from={iso(start)}&to={iso(end)}",
                      headers=headers).get_json()
    assert body["timezone"] == "America/New_York"
    assert [(item["period_start"], item["count"]) for item in body["items"]] == [
        (z(datetime(2026, 3, 7, tzinfo=NEW_YORK)), 24),   # 05:00Z
        (z(datetime(2026, 3, 8, tzinfo=NEW_YORK)), 23),   # 05:00Z, clocks go forward
        (z(datetime(2026, 3, 9, tzinfo=NEW_YORK)), 24),   # 04:00Z
    ]


def test_autumn_day_has_25_hours_in_energy_consumption(city_app):
    headers = headers_for(city_app)
    client = city_app.test_client()
    day = datetime(2026, 11, 1, tzinfo=NEW_YORK)  # clocks go back at 02:00
    next_day = datetime(2026, 11, 2, tzinfo=NEW_YORK)
    hours = int((next_day.astimezone(timezone.utc) - day).total_seconds() // 3600)
    assert hours == 25
    batch = [{"grid_id": "G-1", "load_mw": 10, "capacity_mw": 100,
              "timestamp": iso(day.astimezone(timezone.utc) + timedelta(hours=i, minutes=m))}
             for i in range(hours) for m in (0, 30)]
    assert client.post("/api/energy/data", headers=headers, json=batch).status_code == 201
    query = f"from={iso(day - timedelta(days=1))}&to={iso(next_day + timedelta(days=1))}&resolution=day"
    body = client.get(f"/api/energy/consumption?{query}", headers=headers).get_json()
    assert body["timezone"] == "America/New_York"
    assert [(i["period_start"], i["hours_covered"], i["energy_mwh"]) for i in body["items"]] == [
        (z(day), 25.0, 250.0)]


def test_the_city_timezone_is_configurable(app_factory):
    app = app_factory(CITY_TIMEZONE="Europe/Berlin", RAW_RETENTION_HOURS=24 * 365 * 50)
    headers = headers_for(app)
    berlin = ZoneInfo("Europe/Berlin")
    morning = datetime(2026, 6, 10, 8, 15, tzinfo=berlin)
    client = post_traffic(app, headers, [("T1", morning, 50)])
    query = f"from={iso(morning - timedelta(days=1))}&to={iso(morning + timedelta(days=1))}"
    body = client.get(f"/api/analytics/traffic/patterns?{query}", headers=headers).get_json()
    assert body["timezone"] == "Europe/Berlin"
    assert [h["hour"] for h in body["hour_of_day"] if h["samples"]] == [8]  # 06:15 UTC
    assert [d["day"] for d in body["day_of_week"] if d["samples"]] == ["wednesday"]


def test_an_unknown_timezone_refuses_to_start():
    from src.config import ConfigError, TestingConfig

    config = type("Bad", (TestingConfig,), {"CITY_TIMEZONE": "Mars/Olympus_Mons"})()
    with pytest.raises(ConfigError, match="CITY_TIMEZONE"):
        config.validate()
