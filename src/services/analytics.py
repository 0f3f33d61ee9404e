"""Analytics over the rollups: module overviews, traffic patterns, forecasts, KPIs, reports.

Everything reads `readings_hourly` (and small counts of alerts and incidents), never raw
readings, so it stays fast as history grows. Hours of the day, weekdays and days are the city's
local ones (CITY_TIMEZONE), and responses that group by them name the timezone.
"""
from datetime import timedelta

from src.db import get_db
from src.domain import MODULES, SEVERITIES, now_utc
from src.models import alerts, emergency_incidents, rollups
from src.services import city, emergency, forecasting

KEY_METRICS = {"traffic": ("vehicle_count", "average_speed", "congestion_level"),
               "environment": ("aqi", "pm25", "pm10", "no2", "noise_db"),
               "waste": ("fill_level_pct", "temperature_c"),
               "energy": ("load_mw", "utilization_pct", "renewable_pct", "frequency_hz")}
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def default_range(start=None, end=None, span=timedelta(hours=24)):
    end = end or now_utc()
    return start or end - span, end


def _summarise(metrics, names):
    return {m: {"avg": round(metrics[m]["avg"], 2), "min": metrics[m]["min"], "max": metrics[m]["max"]}
            for m in names if m in metrics and metrics[m]["count"]}


def module_summary(db, module, start, end, district=None):
    """Readings, sensors and key-metric stats of one module over [start, end)."""
    merged, readings_count, sensors = {}, 0, set()
    for bucket in rollups.iter_hourly(db, module, district=district, start=start, end=end):
        rollups.fold(merged, bucket)
        readings_count += bucket["count"]
        sensors.add(bucket["sensor_id"])
    return {"readings": readings_count, "sensors": len(sensors),
            "metrics": _summarise(rollups.finish(merged), KEY_METRICS[module])}


def alert_counts(db, start, end, modules=MODULES):
    """Alerts of `modules` created in [start, end), by module and by severity."""
    modules = list(modules)
    by_module = {m: alerts.count_created(db, start, end, module=m) for m in modules}
    scope = None if set(modules) >= set(MODULES) else modules
    by_severity = {s: alerts.count_created(db, start, end, module=scope, severity=s) for s in SEVERITIES}
    return {"total": sum(by_module.values()), "by_module": by_module, "by_severity": by_severity}


def emergency_summary(start, end):
    """Incidents reported in [start, end): counts by status, response times, and units by status now."""
    stats = emergency.statistics(start=start, end=end)
    units = stats["units_by_status"]
    return {"incidents": stats["total"], "incidents_by_status": stats["by_status"],
            "resolved_incidents": stats["response_time"]["count"],
            "mean_response_time_s": stats["response_time"]["avg_s"],
            "max_response_time_s": stats["response_time"]["max_s"],
            "units": sum(units.values()), "units_available": units.get("available", 0)}


def emergency_section(db, start, end, resolution, tz):
    """The report's emergency section: the summary and incidents reported per period."""
    per_period = {}
    for reported in emergency_incidents.reported_times(db, start, end):
        period = rollups.period_start(rollups.hour_of(reported), resolution, tz)
        per_period[period] = per_period.get(period, 0) + 1
    section = emergency_summary(start, end)
    section["series"] = [{"period_start": period, "incidents": count} for period, count in sorted(per_period.items())]
    return section


def overview(start=None, end=None):
    """Per module activity and key metrics, and alert counts, over a range (default 24 h)."""
    start, end = default_range(start, end)
    db = get_db()
    rollups.refresh_if_stale(db)
    return {"start": start, "end": end,
            "modules": {m: module_summary(db, m, start, end) for m in KEY_METRICS},
            "alerts": alert_counts(db, start, end)}


def traffic_patterns(start=None, end=None, district=None, sensor_id=None, metric="vehicle_count"):
    """Hour-of-day and day-of-week profiles (count-weighted means of hourly averages)."""
    start, end = default_range(start, end, timedelta(days=28))
    db = get_db()
    rollups.refresh_if_stale(db)
    tz = city.timezone()
    hours, days = {}, {}
    for bucket in rollups.iter_hourly(db, "traffic", sensor_id=sensor_id, district=district, start=start, end=end):
        agg = bucket["metrics"].get(metric)
        if not agg:
            continue
        local = bucket["hour"].astimezone(tz)
        for key, table in ((local.hour, hours), (local.weekday(), days)):
            total = table.setdefault(key, [0.0, 0])
            total[0] += agg["sum"]
            total[1] += agg["count"]

    def profile(table, keys, label):
        return [{label: name, "avg": round(table[k][0] / table[k][1], 2) if k in table else None,
                 "samples": table.get(k, [0, 0])[1]} for k, name in keys]

    return {"metric": metric, "start": start, "end": end, "timezone": tz.key, "district": district,
            "sensor_id": sensor_id, "hour_of_day": profile(hours, [(h, h) for h in range(24)], "hour"),
            "day_of_week": profile(days, list(enumerate(WEEKDAYS)), "day")}


def hourly_series(db, module, metric, start, end, sensor_id=None, district=None):
    """One value per hour in [start, end) (None where nothing was recorded), oldest first."""
    series = rollups.series(db, module, "hour", sensor_id=sensor_id, district=district, start=start, end=end,
                            per_sensor=False)
    by_hour = {p["period_start"]: p["metrics"].get(metric, {}).get("avg") for p in series}
    first = rollups.hour_of(start)
    hours = int((end - first).total_seconds() // 3600)
    return [(first + timedelta(hours=i), by_hour.get(first + timedelta(hours=i))) for i in range(hours)]


def predict_traffic(sensor_id=None, district=None, horizon=6, metric="vehicle_count", history_days=7):
    """Forecast the next `horizon` hours of a traffic metric from hourly history."""
    end = rollups.hour_of(now_utc())
    start = end - timedelta(days=history_days)
    db = get_db()
    rollups.refresh_if_stale(db)
    history = hourly_series(db, "traffic", metric, start, end, sensor_id=sensor_id, district=district)
    values = [v for _, v in history]
    # Leading hours with no data are not history yet: drop them so seasons stay aligned.
    while values and values[0] is None:
        values.pop(0)
    result = forecasting.forecast(values, season_length=24, horizon=horizon)
    return {"metric": metric, "sensor_id": sensor_id, "district": district, "method": result["method"],
            "points_used": result["points_used"], "season_length_h": 24,
            "forecast": [{"period_start": end + timedelta(hours=i), "value": round(v, 2)}
                         for i, v in enumerate(result["values"])]}


def kpis(start=None, end=None):
    """Headline KPIs over a range (default 24 h)."""
    start, end = default_range(start, end)
    db = get_db()
    rollups.refresh_if_stale(db)
    summaries = {m: module_summary(db, m, start, end) for m in KEY_METRICS}

    def stat(module, metric, key="avg"):
        return summaries[module]["metrics"].get(metric, {}).get(key)

    good_hours, measured_hours = 0, 0
    for period in rollups.series(db, "environment", "hour", start=start, end=end, per_sensor=False):
        aqi = period["metrics"].get("aqi")
        if aqi:
            measured_hours += 1
            good_hours += aqi["avg"] <= 50
    return {
        "start": start, "end": end,
        "traffic": {"average_speed_kmh": stat("traffic", "average_speed"),
                    "congestion_index": stat("traffic", "congestion_level"),
                    "peak_congestion": stat("traffic", "congestion_level", "max")},
        "environment": {"average_aqi": stat("environment", "aqi"), "peak_aqi": stat("environment", "aqi", "max"),
                        "good_air_hours_pct": round(good_hours / measured_hours * 100, 1) if measured_hours else None},
        "waste": {"average_fill_pct": stat("waste", "fill_level_pct"),
                  "peak_fill_pct": stat("waste", "fill_level_pct", "max")},
        "energy": {"average_utilization_pct": stat("energy", "utilization_pct"),
                   "peak_utilization_pct": stat("energy", "utilization_pct", "max"),
                   "renewable_share_pct": stat("energy", "renewable_pct")},
        "emergency": emergency_summary(start, end),
        "alerts": alert_counts(db, start, end),
    }


def comprehensive_report(start=None, end=None, modules=None, progress=None):
    """The chosen modules (default all) over a range: activity, metric stats, series and alerts.

    Series are hourly up to 2 days, else per local day. `progress(pct, message)` is called after
    each section (background tasks report it).
    """
    start, end = default_range(start, end, timedelta(days=7))
    modules = modules or list(MODULES)
    db = get_db()
    rollups.refresh_if_stale(db)
    tz = city.timezone()
    resolution = "hour" if end - start <= timedelta(days=2) else "day"
    report = {"start": start, "end": end, "generated_at": now_utc(), "resolution": resolution, "timezone": tz.key,
              "modules": {}}
    steps = len(modules) + 1
    for index, module in enumerate(modules, start=1):
        if module in KEY_METRICS:
            section = module_summary(db, module, start, end)
            section["series"] = [{"period_start": p["period_start"], "readings": p["count"],
                                  "metrics": _summarise(p["metrics"], KEY_METRICS[module])}
                                 for p in rollups.series(db, module, resolution, start=start, end=end,
                                                         per_sensor=False, tz=tz)]
        else:
            section = emergency_section(db, start, end, resolution, tz)
        section["alerts"] = {s: alerts.count_created(db, start, end, module=module, severity=s)
                             for s in SEVERITIES}
        report["modules"][module] = section
        if progress:
            progress(int(index / steps * 100), f"{module} done")
    report["alerts"] = alert_counts(db, start, end, modules)
    if progress:
        progress(100, "report complete")
    return report
