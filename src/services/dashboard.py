"""Dashboard views: served from the latest cache, counts and rollups, never history scans."""
from datetime import datetime, time, timedelta, timezone

from flask import current_app

from src.db import get_db
from src.models import alerts, bins, emergency_incidents, rollups
from src.domain import MODULES, READING_MODULES, now_utc
from src.services import analytics, city, emergency
from src.services.latest import get_cache, latest_snapshot

def _mean(values):
    values = [v for v in values if v is not None]
    return round(sum(values) / len(values), 2) if values else None


def module_kpis(module, readings):
    """Live KPIs of one module from its latest readings."""
    if module == "traffic":
        return {"average_congestion_pct": _mean(r["congestion_level"] for r in readings),
                "average_speed_kmh": _mean(r["average_speed"] for r in readings),
                "vehicles_per_min": sum(r["vehicle_count"] for r in readings)}
    if module == "environment":
        return {"average_aqi": _mean(r["aqi"] for r in readings),
                "worst_aqi": max((r["aqi"] for r in readings), default=None)}
    if module == "waste":
        return {"average_fill_pct": _mean(r["fill_level_pct"] for r in readings),
                "bins_above_80_pct": sum(1 for r in readings if r["fill_level_pct"] >= 80)}
    load = sum(r["load_mw"] for r in readings)
    capacity = sum(r["capacity_mw"] for r in readings)
    renewable = sum(r.get("renewable_mw") or 0.0 for r in readings)
    return {"total_load_mw": round(load, 2), "utilization_pct": round(load / capacity * 100, 2) if capacity else None,
            "renewable_share_pct": round(renewable / load * 100, 2) if load else None}


def overview(extra=None):
    """Sensors and readings per module, open alerts by severity, and live KPIs."""
    db = get_db()
    rollups.refresh_if_stale(db)
    cache = get_cache(current_app)
    now = now_utc()
    hour_ago = now - timedelta(hours=1)
    modules = {}
    for module in READING_MODULES:
        readings = cache.snapshot(module)
        recent = rollups.hourly(db, module, start=hour_ago - timedelta(hours=1), end=now, limit=20000)
        modules[module] = {"sensors": len(readings),
                           "readings_last_hour": _readings_since(recent, hour_ago),
                           "last_reading_at": max((r["timestamp"] for r in readings), default=None),
                           "kpis": module_kpis(module, readings) if readings else {}}
    modules["waste"]["bins_registered"] = bins.count(db)
    modules["emergency"] = emergency_overview(now)
    if extra:
        modules.update(extra())
    return {"generated_at": now, "modules": modules, "alerts_active": alerts.count_open_by_severity(db)}


def emergency_overview(now):
    """Units by status and incidents of the last 24 h, open and resolved, with response times."""
    stats = emergency.statistics(start=now - timedelta(hours=24), end=now)
    units = stats["units_by_status"]
    return {"units": sum(units.values()), "units_available": units.get("available", 0),
            "units_by_status": units, "incidents_24h": stats["total"],
            "incidents_open": emergency_incidents.count_open(get_db()),
            "kpis": {"mean_response_time_s": stats["response_time"]["avg_s"]}}


def _readings_since(buckets, since):
    # Hour buckets are whole hours; the one containing `since` is counted in full.
    return sum(b["count"] for b in buckets if b["hour"] + timedelta(hours=1) > since)


def real_time_data():
    return latest_snapshot("all")


def alerts_summary():
    """Open alerts by severity and module, the last 24 h, noisiest sensors and response times."""
    db = get_db()
    now = now_utc()
    day_ago = now - timedelta(hours=24)
    by_module = {m: alerts.count_open_by_severity(db, module=m) for m in MODULES}
    return {"generated_at": now, "open_by_severity": alerts.count_open_by_severity(db),
            "open_by_module": {m: sum(v.values()) for m, v in by_module.items()},
            "last_24h": analytics.alert_counts(db, day_ago, now),
            "top_sensors_24h": alerts.top_sensors(db, day_ago, now),
            "response_24h": alerts.response_times(db, day_ago, now)}


def local_days(today, count, tz):
    """The last `count` calendar days in `tz` up to `today` (a local date), as (date, start, end) in UTC.

    A day is 23 or 25 hours long across a DST change, so each bound is built from its own date.
    """
    def midnight(day):
        return datetime.combine(day, time(), tzinfo=tz).astimezone(timezone.utc)
    dates = [today - timedelta(days=count - 1 - i) for i in range(count)]
    return [(day, midnight(day), midnight(day + timedelta(days=1))) for day in dates]


def weekly_statistics():
    """Per local day for the last 7 days: readings per module, alerts, and daily averages."""
    db = get_db()
    rollups.refresh_if_stale(db)
    tz = city.timezone()
    days = local_days(now_utc().astimezone(tz).date(), 7, tz)
    start, end = days[0][1], days[-1][2]
    series = {m: {p["period_start"]: p for p in rollups.series(db, m, "day", start=start, end=end, per_sensor=False,
                                                               tz=tz)} for m in READING_MODULES}
    key_metric = {"traffic": "congestion_level", "environment": "aqi", "waste": "fill_level_pct",
                  "energy": "utilization_pct"}
    items = []
    for day, day_start, day_end in days:
        item = {"date": day.isoformat(), "alerts_created": alerts.count_created(db, day_start, day_end)}
        for module in READING_MODULES:
            period = series[module].get(day_start)
            metric = (period or {}).get("metrics", {}).get(key_metric[module]) or {}
            item[module] = {"readings": period["count"] if period else 0,
                            f"average_{key_metric[module]}": round(metric["avg"], 2) if metric else None}
        items.append(item)
    return {"start": start, "end": end, "timezone": tz.key, "days": items}
