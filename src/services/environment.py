"""Air quality summaries and pollution trends, from the latest cache and the rollups."""
from datetime import timedelta

from flask import current_app

from src.db import get_db
from src.models import rollups
from src.domain import now_utc
from src.services import city
from src.services.aqi import category
from src.services.latest import get_cache

TREND_METRICS = ("aqi", "pm25", "pm10", "no2", "o3", "co2", "noise_db", "temperature_c", "humidity_pct")
DEFAULT_SPAN = {"hour": timedelta(hours=24), "day": timedelta(days=7)}


def air_quality_summary(district=None):
    """Per district: current AQI (its worst sensor), category, worst sensor, dominant pollutant."""
    by_district = {}
    for reading in get_cache(current_app).snapshot("environment"):
        name = reading.get("district") or "unassigned"
        if district and name != district:
            continue
        by_district.setdefault(name, []).append(reading)
    items = []
    for name, readings in sorted(by_district.items()):
        worst = max(readings, key=lambda r: (r["aqi"], r["sensor_id"]))
        items.append({
            "district": name, "aqi": worst["aqi"], "aqi_category": category(worst["aqi"]),
            "worst_sensor": worst["sensor_id"], "dominant_pollutant": worst.get("dominant_pollutant"),
            "average_aqi": round(sum(r["aqi"] for r in readings) / len(readings), 1), "sensors": len(readings),
            "as_of": max(r["timestamp"] for r in readings),
        })
    return {"items": items, "generated_at": now_utc()}


def pollution_trends(resolution="hour", start=None, end=None, district=None, sensor_id=None):
    """Average pollutant levels per hour or day across sensors (optionally one district or sensor)."""
    end = end or now_utc()
    start = start or end - DEFAULT_SPAN[resolution]
    db = get_db()
    rollups.refresh_if_stale(db)
    tz = city.timezone()
    series = rollups.series(db, "environment", resolution, sensor_id=sensor_id, district=district, start=start,
                            end=end, per_sensor=False, tz=tz)
    items = []
    for period in series:
        metrics = period["metrics"]
        item = {"period_start": period["period_start"], "readings": period["count"]}
        for metric in TREND_METRICS:
            if metric in metrics:
                item[metric] = {"avg": round(metrics[metric]["avg"], 2), "min": metrics[metric]["min"],
                                "max": metrics[metric]["max"]}
        items.append(item)
    return {"resolution": resolution, "timezone": tz.key, "start": start, "end": end, "district": district,
            "sensor_id": sensor_id, "items": items}
