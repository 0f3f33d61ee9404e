"""The `readings_hourly` collection: count/sum/min/max/avg per (module, sensor, hour, metric).

The rollup is incremental and idempotent. A watermark on `received_at` (in `rollup_state`)
finds the readings that arrived since the last run; every hour bucket they touch is recomputed
from the raw readings of that sensor and hour and written with $set, never $inc. Re-running, or
overlapping runs, therefore never double-count, and a run after downtime catches up from the
watermark. Each run re-reads the last LAG_S seconds, because a reading stamped `received_at`
just before a run may be committed just after it.
"""
from datetime import datetime, time, timedelta, timezone

import logging

from pymongo import UpdateOne

from src.errors import RangeTooLarge
from src.models import query

log = logging.getLogger(__name__)

STATE_ID = "readings_hourly"
LAG_S = 10
METRICS = {
    "traffic": ("vehicle_count", "average_speed", "congestion_level", "occupancy_pct"),
    "environment": ("pm25", "pm10", "co2", "noise_db", "temperature_c", "humidity_pct", "no2", "o3", "aqi"),
    "waste": ("fill_level_pct", "temperature_c", "battery_pct"),
    "energy": ("load_mw", "capacity_mw", "solar_mw", "wind_mw", "hydro_mw", "consumption_kwh", "frequency_hz",
               "voltage_kv", "utilization_pct", "renewable_pct", "renewable_mw"),
}
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# Readings of one hour read per query at most (a safety net; about 100 sensors every 10 s is 36k).
MAX_SCAN = 500000
# Hourly buckets one request may aggregate; more means the range is too large for a request.
MAX_BUCKETS = 100000


def hour_of(ts):
    return ts.replace(minute=0, second=0, microsecond=0)


def bucket_id(module, sensor_id, hour):
    return f"{module}|{sensor_id}|{hour.strftime('%Y-%m-%dT%H')}"


def aggregate(module, docs):
    """{metric: {count, sum, min, max, avg}} over `docs` (pure)."""
    out = {}
    for metric in METRICS[module]:
        values = [d[metric] for d in docs if isinstance(d.get(metric), (int, float)) and not isinstance(d.get(metric), bool)]
        if values:
            total = float(sum(values))
            out[metric] = {"count": len(values), "sum": total, "min": float(min(values)), "max": float(max(values)),
                           "avg": total / len(values)}
    return out


def recompute_buckets(db, buckets):
    """Rebuild the given (module, sensor, hour) buckets from raw readings, one query per hour.

    Querying per hour (for just the touched sensors) keeps each scan to one hour of readings, so a
    single late reading from long ago cannot make a run read days of history. A bucket whose
    query hit the safety limit is skipped, never written with partial counts.
    """
    by_hour = {}
    for module, sensor_id, hour in buckets:
        by_hour.setdefault(hour, set()).add(sensor_id)
    fields = {"_id": 0, "module": 1, "sensor_id": 1, "timestamp": 1, "district": 1, "source": 1}
    for names in METRICS.values():
        fields.update({m: 1 for m in names})
    now = datetime.now(timezone.utc)
    writes = []
    for hour, sensors in sorted(by_hour.items()):
        criteria = {"timestamp": {"$gte": hour, "$lt": hour + timedelta(hours=1)}, "sensor_id": {"$in": sorted(sensors)}}
        docs = list(db.readings.find(criteria, fields).limit(MAX_SCAN + 1))
        if len(docs) > MAX_SCAN:
            log.error("rollup of %s skipped: more than %d readings in one hour", hour, MAX_SCAN)
            continue
        grouped = {}
        for doc in docs:
            grouped.setdefault((doc["module"], doc["sensor_id"]), []).append(doc)
        for (module, sensor_id), group in grouped.items():
            if (module, sensor_id, hour) not in buckets:
                continue
            district = next((d["district"] for d in group if d.get("district")), None)
            stamps = [d["timestamp"] for d in group]
            doc = {"module": module, "sensor_id": sensor_id, "district": district, "hour": hour, "count": len(group),
                   "first_at": min(stamps), "last_at": max(stamps),
                   "metrics": aggregate(module, group), "sources": sorted({d.get("source") or "api" for d in group}),
                   "updated_at": now}
            writes.append(UpdateOne({"_id": bucket_id(module, sensor_id, hour)}, {"$set": doc}, upsert=True))
    return writes


def refresh(db, now=None, max_readings=50000, oldest_hour=None):
    """Roll up readings received since the watermark; returns {buckets, readings, watermark, complete}.

    Normally each run re-reads LAG_S seconds before the watermark. When a run stops at
    `max_readings` (a backlog), the next one resumes strictly after the last reading it saw
    instead, so a backlog larger than a page is still worked through.
    """
    now = now or datetime.now(timezone.utc)
    state = db.rollup_state.find_one({"_id": STATE_ID}) or {}
    watermark = state.get("watermark", EPOCH)
    if state.get("resume_id") is not None:
        criteria = {"$or": [{"received_at": {"$gt": watermark, "$lte": now}},
                         {"received_at": watermark, "_id": {"$gt": state["resume_id"]}}]}
    else:
        criteria = {"received_at": {"$gt": watermark - timedelta(seconds=LAG_S), "$lte": now}}
    cursor = db.readings.find(criteria, {"module": 1, "sensor_id": 1, "timestamp": 1, "received_at": 1}
                              ).sort([("received_at", 1), ("_id", 1)]).limit(max_readings)
    buckets, seen, last = set(), 0, None
    for doc in cursor:
        seen += 1
        last = doc
        hour = hour_of(doc["timestamp"])
        if oldest_hour is None or hour >= oldest_hour:
            buckets.add((doc["module"], doc["sensor_id"], hour))
    writes = recompute_buckets(db, buckets)
    if writes:
        db.readings_hourly.bulk_write(writes, ordered=False)
    complete = seen < max_readings
    if complete:
        changes = {"watermark": max(watermark, now - timedelta(seconds=LAG_S)), "resume_id": None}
    else:
        changes = {"watermark": last["received_at"], "resume_id": last["_id"]}
    db.rollup_state.update_one({"_id": STATE_ID}, {"$set": dict(changes, updated_at=now)}, upsert=True)
    return {"buckets": len(writes), "readings": seen, "watermark": changes["watermark"], "complete": complete}


def refresh_if_stale(db, max_age_s=15, max_readings=5000):
    """Catch the rollup up on read when no job has refreshed it lately (e.g. no scheduler runs)."""
    state = db.rollup_state.find_one({"_id": STATE_ID}, {"updated_at": 1}) or {}
    updated = state.get("updated_at")
    if updated is None or (datetime.now(timezone.utc) - updated).total_seconds() > max_age_s:
        return refresh(db, max_readings=max_readings)
    return None


def _query(module, sensor_id=None, district=None, start=None, end=None):
    criteria = {"module": module}
    if sensor_id:
        criteria["sensor_id"] = sensor_id
    if district:
        criteria["district"] = district
    if start or end:
        criteria["hour"] = {}
        if start:
            criteria["hour"]["$gte"] = hour_of(start)
        if end:
            criteria["hour"]["$lt"] = end
    return criteria


def hourly(db, module, sensor_id=None, district=None, start=None, end=None, limit=None):
    """Hourly bucket documents in time order; RangeTooLarge rather than a silently cut list."""
    limit = limit or MAX_BUCKETS
    docs = list(db.readings_hourly.find(_query(module, sensor_id, district, start, end))
                .sort([("hour", 1), ("_id", 1)]).limit(limit + 1))
    if len(docs) > limit:
        raise RangeTooLarge(f"more than {limit} hourly buckets; narrow the range or filter by sensor or district")
    return docs


def fold(merged, bucket):
    """Add one bucket's metrics into `merged` (sums and counts add, min/max fold)."""
    for metric, agg in bucket["metrics"].items():
        into = merged.setdefault(metric, {"count": 0, "sum": 0.0, "min": agg["min"], "max": agg["max"]})
        into["count"] += agg["count"]
        into["sum"] += agg["sum"]
        into["min"] = min(into["min"], agg["min"])
        into["max"] = max(into["max"], agg["max"])
    return merged


def finish(merged):
    for agg in merged.values():
        agg["avg"] = agg["sum"] / agg["count"] if agg["count"] else None
    return merged


def merge(module, buckets):
    """Combine buckets' metrics into {metric: {count, sum, min, max, avg}}."""
    merged = {}
    for bucket in buckets:
        fold(merged, bucket)
    return finish(merged)


def iter_hourly(db, module, sensor_id=None, district=None, start=None, end=None, batch=5000):
    """Every hourly bucket of a range, in bounded batches (for aggregates over long ranges)."""
    return query.in_batches(db.readings_hourly, _query(module, sensor_id, district, start, end), "hour", batch)


def period_start(hour, resolution, tz=timezone.utc):
    """The period an hour bucket belongs to: the hour, or the start (in UTC) of its calendar day in `tz`.

    A local day is 23 or 25 hours long across a DST change. Where the zone's offset is not whole hours
    (e.g. Asia/Kolkata), a bucket belongs to the local day in which it starts.
    """
    if resolution == "hour":
        return hour
    local_day = hour.astimezone(tz).date()
    return datetime.combine(local_day, time(), tzinfo=tz).astimezone(timezone.utc)


def series(db, module, resolution, sensor_id=None, district=None, start=None, end=None, per_sensor=True,
           limit=None, tz=timezone.utc):
    """Aggregates per period (and per sensor unless per_sensor=False), oldest first; days are local to `tz`.

    City-wide series stream the buckets (any range); per-sensor ones are capped at MAX_BUCKETS.
    """
    buckets = (hourly(db, module, sensor_id, district, start, end, limit=limit) if per_sensor
               else iter_hourly(db, module, sensor_id, district, start, end))
    groups = {}
    for bucket in buckets:
        key = (period_start(bucket["hour"], resolution, tz), bucket["sensor_id"] if per_sensor else None)
        group = groups.setdefault(key, {"count": 0, "metrics": {}, "district": bucket.get("district")})
        group["count"] += bucket["count"]
        fold(group["metrics"], bucket)
    items = []
    for (period, sensor), group in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        item = {"period_start": period, "resolution": resolution, "count": group["count"],
                "metrics": finish(group["metrics"])}
        if per_sensor:
            item.update(sensor_id=sensor, district=group["district"])
        elif district:
            item["district"] = district
        items.append(item)
    return items


def series_page(db, module, resolution, sensor_id=None, district=None, start=None, end=None, limit=50, offset=0,
                descending=True, tz=timezone.utc):
    """A page of per-sensor aggregates for the history endpoints: {items, total}.

    Hour resolution pages in the database (each bucket is one item); day resolution merges the
    range's buckets, so a range too large for that raises RangeTooLarge.
    """
    if resolution == "hour":
        criteria = _query(module, sensor_id, district, start, end)
        direction = -1 if descending else 1
        # A bucket _id is "module|sensor_id|hour", so _id orders a module's buckets of one hour by sensor.
        buckets = list(db.readings_hourly.find(criteria).sort([("hour", direction), ("_id", direction)])
                       .skip(offset).limit(limit))
        items = [{"period_start": b["hour"], "resolution": "hour", "count": b["count"], "metrics": merge(module, [b]),
                  "sensor_id": b["sensor_id"], "district": b.get("district")} for b in buckets]
        return {"items": items, "total": db.readings_hourly.count_documents(criteria)}
    items = series(db, module, resolution, sensor_id, district, start, end, tz=tz)
    if descending:
        items.reverse()
    return {"items": items[offset:offset + limit], "total": len(items)}


def delete_by_source(db, source):
    """Delete buckets made only of readings from `source`."""
    return db.readings_hourly.delete_many({"sources": [source]}).deleted_count


def delete_older_than(db, cutoff):
    return db.readings_hourly.delete_many({"hour": {"$lt": cutoff}}).deleted_count
