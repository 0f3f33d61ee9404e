"""Dashboard and analytics endpoints against hand-checked expectations."""
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from src.db import get_db
from src.models import rollups

NOW = datetime.now(timezone.utc)
CITY = ZoneInfo("America/New_York")  # the testing config's CITY_TIMEZONE


def iso(dt):
    return dt.isoformat().replace("+00:00", "Z")


def traffic(client, headers, sensor, when, count, congestion=30.0, district="Harbor"):
    body = {"sensor_id": sensor, "vehicle_count": count, "average_speed": 40.0, "congestion_level": congestion,
            "district": district, "timestamp": iso(when)}
    assert client.post("/api/traffic/data", headers=headers, json=body).status_code == 201


def env(client, headers, sensor, pm25, district="Harbor", when=None):
    body = {"sensor_id": sensor, "pm25": pm25, "pm10": 10.0, "co2": 420.0, "noise_db": 50.0, "temperature_c": 15.0,
            "humidity_pct": 50.0, "district": district}
    if when:
        body["timestamp"] = iso(when)
    assert client.post("/api/environment/data", headers=headers, json=body).status_code == 201


def roll(app):
    with app.app_context():
        rollups.refresh(get_db(app))


def test_overview_counts_sensors_alerts_and_kpis(app, client, admin_headers):
    traffic(client, admin_headers, "T1", NOW, 10, congestion=20.0)
    traffic(client, admin_headers, "T2", NOW, 30, congestion=96.0)  # critical congestion alert
    env(client, admin_headers, "E1", 5.0)
    roll(app)
    body = client.get("/api/dashboard/overview", headers=admin_headers).get_json()
    assert body["modules"]["traffic"]["sensors"] == 2 and body["modules"]["environment"]["sensors"] == 1
    assert body["modules"]["traffic"]["kpis"] == {"average_congestion_pct": 58.0, "average_speed_kmh": 40.0,
                                                  "vehicles_per_min": 40}
    assert body["modules"]["traffic"]["readings_last_hour"] == 2
    assert body["alerts_active"] == {"low": 0, "medium": 0, "high": 0, "critical": 1}
    assert body["modules"]["emergency"]["units"] == 0 and body["modules"]["emergency"]["incidents_open"] == 0


def test_real_time_data_is_the_latest_per_sensor(client, admin_headers):
    traffic(client, admin_headers, "T1", NOW - timedelta(minutes=2), 5)
    traffic(client, admin_headers, "T1", NOW - timedelta(minutes=1), 7)
    traffic(client, admin_headers, "T1", NOW - timedelta(minutes=3), 9)  # late, older: not the latest
    data = client.get("/api/dashboard/real-time-data", headers=admin_headers).get_json()["data"]
    assert [(r["sensor_id"], r["vehicle_count"]) for r in data["traffic"]] == [("T1", 7)]


def test_alerts_summary(client, admin_headers):
    env(client, admin_headers, "E1", 300.0)
    env(client, admin_headers, "E2", 40.0)
    traffic(client, admin_headers, "T1", NOW, 5, congestion=90.0)
    body = client.get("/api/dashboard/alerts/summary", headers=admin_headers).get_json()
    assert body["open_by_severity"] == {"low": 1, "medium": 0, "high": 1, "critical": 1}
    assert body["open_by_module"]["environment"] == 2 and body["open_by_module"]["traffic"] == 1
    assert body["last_24h"]["total"] == 3
    assert {s["sensor_id"] for s in body["top_sensors_24h"]} == {"E1", "E2", "T1"}


def test_weekly_statistics_are_per_local_day(app, client, admin_headers):
    traffic(client, admin_headers, "T1", NOW, 10, congestion=40.0)
    # 19:36 local two days ago is the next day in UTC (23:36 or 00:36): it belongs to the local day.
    evening = (NOW.astimezone(CITY) - timedelta(days=2)).replace(hour=19, minute=36)
    traffic(client, admin_headers, "T1", evening, 10, congestion=60.0)
    roll(app)
    body = client.get("/api/dashboard/statistics/weekly", headers=admin_headers).get_json()
    assert body["timezone"] == "America/New_York" and len(body["days"]) == 7
    days = {d["date"]: d for d in body["days"]}
    today = body["days"][-1]
    assert today["date"] == NOW.astimezone(CITY).date().isoformat()
    assert today["traffic"] == {"readings": 1, "average_congestion_level": 40.0}
    assert days[evening.date().isoformat()]["traffic"] == {"readings": 1, "average_congestion_level": 60.0}
    assert days[(evening + timedelta(days=1)).date().isoformat()]["traffic"]["readings"] == 0
    first_day = NOW.astimezone(CITY).date() - timedelta(days=6)
    local_midnight = datetime.combine(first_day, datetime.min.time(), tzinfo=CITY)
    assert body["from"] == iso(local_midnight.astimezone(timezone.utc)).replace("Z", ".000Z")


def test_traffic_patterns_by_local_hour_and_weekday(app, client, admin_headers):
    base = (NOW.astimezone(CITY) - timedelta(days=2)).replace(hour=8, minute=0, second=0, microsecond=0)
    traffic(client, admin_headers, "T1", base + timedelta(minutes=5), 20)
    traffic(client, admin_headers, "T1", base + timedelta(minutes=35), 40)
    traffic(client, admin_headers, "T1", base.replace(hour=3), 4)
    roll(app)
    body = client.get("/api/analytics/traffic/patterns", headers=admin_headers).get_json()
    assert body["timezone"] == "America/New_York"
    hours = {h["hour"]: h for h in body["hour_of_day"]}
    assert hours[8]["avg"] == 30.0 and hours[8]["samples"] == 2
    assert hours[3]["avg"] == 4.0 and hours[12]["avg"] is None
    weekday = base.strftime("%A").lower()
    day = next(d for d in body["day_of_week"] if d["day"] == weekday)
    assert day["samples"] == 3 and day["avg"] == pytest.approx(64 / 3, abs=0.01)


def test_prediction_names_its_method_and_horizon(app, client, admin_headers):
    start = (NOW - timedelta(days=3)).replace(minute=10, second=0, microsecond=0)
    batch = []
    for h in range(72):
        when = start + timedelta(hours=h)
        batch.append({"sensor_id": "T1", "vehicle_count": 10 + (when.hour % 24), "average_speed": 40.0,
                      "congestion_level": 20.0, "timestamp": iso(when)})
    assert client.post("/api/traffic/data", headers=admin_headers, json=batch).status_code == 201
    roll(app)
    body = client.get("/api/analytics/predictive/traffic?sensor_id=T1&horizon=4", headers=admin_headers).get_json()
    assert body["method"] == "holt_winters_additive" and body["points_used"] >= 48
    assert len(body["forecast"]) == 4
    first = body["forecast"][0]
    expected = 10 + datetime.fromisoformat(first["period_start"].replace("Z", "+00:00")).hour
    assert first["value"] == pytest.approx(expected, abs=3)
    few = client.get("/api/analytics/predictive/traffic?sensor_id=NOPE", headers=admin_headers).get_json()
    assert few["method"] == "none" and few["forecast"] == []
    assert client.get("/api/analytics/predictive/traffic?horizon=49", headers=admin_headers).status_code == 422


def test_kpis_and_comprehensive_report(app, client, admin_headers):
    env(client, admin_headers, "E1", 5.0, when=NOW - timedelta(hours=2))   # AQI 28: good
    env(client, admin_headers, "E1", 40.0, when=NOW - timedelta(hours=1))  # AQI 112
    traffic(client, admin_headers, "T1", NOW - timedelta(hours=1), 12, congestion=50.0)
    roll(app)
    kpis = client.get("/api/analytics/kpi/dashboard", headers=admin_headers).get_json()
    assert kpis["environment"]["average_aqi"] == 70.0 and kpis["environment"]["good_air_hours_pct"] == 50.0
    assert kpis["traffic"]["congestion_index"] == 50.0
    report = client.get("/api/analytics/reports/comprehensive?modules=traffic,environment",
                        headers=admin_headers).get_json()
    assert set(report["modules"]) == {"traffic", "environment"}
    assert report["modules"]["environment"]["readings"] == 2 and report["modules"]["traffic"]["sensors"] == 1
    assert report["alerts"]["by_module"]["environment"] == 1
    overview = client.get("/api/analytics/overview", headers=admin_headers).get_json()
    assert overview["modules"]["environment"]["metrics"]["aqi"]["max"] == 112.0
    assert client.get("/api/analytics/reports/comprehensive?modules=weather", headers=admin_headers
                      ).status_code == 422


def test_air_quality_summary_picks_the_worst_sensor(client, admin_headers):
    env(client, admin_headers, "E1", 5.0, district="Harbor")
    env(client, admin_headers, "E2", 60.0, district="Harbor")  # 151 + 49/69.9 * 4.5 = 154.2
    env(client, admin_headers, "E3", 10.0, district="Old Town")
    body = client.get("/api/environment/air-quality/summary", headers=admin_headers).get_json()
    harbor = next(i for i in body["items"] if i["district"] == "Harbor")
    assert harbor["worst_sensor"] == "E2" and harbor["aqi"] == 154 and harbor["aqi_category"] == "unhealthy"
    assert harbor["sensors"] == 2 and harbor["dominant_pollutant"] == "pm25"
    assert {i["district"] for i in body["items"]} == {"Harbor", "Old Town"}


def test_overview_covers_emergency(app, client, admin_headers):
    from src.services import emergency

    with app.app_context():
        emergency.seed_units(get_db())
    created = client.post("/api/emergency/incidents", headers=admin_headers, json={
        "type": "medical", "severity": "high", "location": {"type": "Point", "coordinates": [-73.985, 40.748]}})
    assert created.status_code == 201
    client.post(f"/api/emergency/incidents/{created.get_json()['id']}/dispatch-nearest", headers=admin_headers,
                json={})
    section = client.get("/api/dashboard/overview", headers=admin_headers).get_json()["modules"]["emergency"]
    assert section["units"] == 12 and section["units_available"] == 11
    assert section["incidents_open"] == 1 and section["incidents_24h"] == 1


def test_open_incidents_count_however_old(app, client, admin_headers):
    long_ago = iso(NOW - timedelta(hours=30))
    created = client.post("/api/emergency/incidents", headers=admin_headers, json={
        "type": "hazard", "severity": "medium", "reported_at": long_ago,
        "location": {"type": "Point", "coordinates": [-73.985, 40.748]}})
    assert created.status_code == 201
    section = client.get("/api/dashboard/overview", headers=admin_headers).get_json()["modules"]["emergency"]
    assert section["incidents_open"] == 1 and section["incidents_24h"] == 0


def dispatched_incident(app, client, headers):
    from src.services import emergency

    with app.app_context():
        emergency.seed_units(get_db())
    created = client.post("/api/emergency/incidents", headers=headers, json={
        "type": "medical", "severity": "high", "location": {"type": "Point", "coordinates": [-73.985, 40.748]}})
    assert created.status_code == 201
    dispatched = client.post(f"/api/emergency/incidents/{created.get_json()['id']}/dispatch-nearest",
                             headers=headers, json={})
    assert dispatched.status_code == 200, dispatched.get_json()


def test_kpis_include_emergency(app, client, admin_headers):
    dispatched_incident(app, client, admin_headers)
    emergency = client.get("/api/analytics/kpi/dashboard", headers=admin_headers).get_json()["emergency"]
    assert emergency["incidents"] == 1 and emergency["incidents_by_status"]["dispatched"] == 1
    assert emergency["units"] == 12 and emergency["units_available"] == 11
    assert emergency["resolved_incidents"] == 0 and emergency["mean_response_time_s"] is None


def test_report_covers_emergency_and_filters_alerts_by_module(app, client, admin_headers):
    dispatched_incident(app, client, admin_headers)
    env(client, admin_headers, "E1", 300.0)  # an environment alert, outside the modules asked for
    report = client.get("/api/analytics/reports/comprehensive?modules=emergency", headers=admin_headers).get_json()
    assert list(report["modules"]) == ["emergency"] and report["timezone"] == "America/New_York"
    section = report["modules"]["emergency"]
    assert section["incidents"] == 1 and [p["incidents"] for p in section["series"]] == [1]
    emergency_alerts = client.get("/api/alerts?module=emergency", headers=admin_headers).get_json()["total"]
    assert emergency_alerts >= 1  # the incident raised one
    assert report["alerts"]["by_module"] == {"emergency": emergency_alerts}
    assert report["alerts"]["total"] == sum(report["alerts"]["by_severity"].values()) == emergency_alerts
    everything = client.get("/api/analytics/reports/comprehensive", headers=admin_headers).get_json()
    assert set(everything["modules"]) == {"traffic", "environment", "waste", "energy", "emergency"}
    assert everything["alerts"]["total"] == emergency_alerts + 1
    assert everything["alerts"]["by_severity"]["critical"] == report["alerts"]["by_severity"]["critical"] + 1
