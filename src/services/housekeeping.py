"""Retention, stale-sensor detection and the periodic system update."""
import json
import os
from datetime import datetime, timedelta, timezone

from flask import current_app

from src.db import get_db
from src.realtime import broadcast, metrics
from src.schemas.alerts import alert_wire
from src.domain import READING_MODULES
from src.extensions import socketio
from src.models import alerts, job_stats, latest, readings, revoked_tokens, rollups
from src.redis_client import UNAVAILABLE, attempt
from src.services.ingest import open_alert_index
from src.services.latest import get_cache

OFFLINE_RULE = alerts.OFFLINE_RULE_ID
STALE_FACTOR = 3


def apply_retention(now):
    """Delete raw readings past RAW_RETENTION_HOURS and other records past their retention; returns counts per kind."""
    config = current_app.config
    db = get_db()
    return {
        "readings": readings.delete_older_than(db, now - timedelta(hours=config["RAW_RETENTION_HOURS"])),
        "rollups": rollups.delete_older_than(db, now - timedelta(days=config["ROLLUP_RETENTION_DAYS"])),
        "resolved_alerts": alerts.delete_resolved_before(db, now - timedelta(days=config["ALERT_RETENTION_DAYS"])),
        "revoked_tokens": revoked_tokens.purge_expired(db, now),
    }


def expected_interval_s(module, reading):
    """Simulated sensors tick at the simulator's interval; real ones at SENSOR_INTERVAL_<MODULE>_S."""
    config = current_app.config
    if reading.get("source") == "simulator":
        return config["SIMULATION_INTERVALS"][module]
    return config["SENSOR_EXPECTED_INTERVALS"][module]


def flag_stale_sensors(now):
    """Open a medium `sensor_offline` alert for each sensor silent for 3x its expected interval."""
    db = get_db()
    cache = get_cache(current_app)
    forget_after_s = current_app.config["SENSOR_FORGET_AFTER_H"] * 3600
    raised = 0
    for module in READING_MODULES:
        for reading in cache.snapshot(module):
            limit_s = STALE_FACTOR * expected_interval_s(module, reading)
            silent_s = (now - reading.get("received_at", reading["timestamp"])).total_seconds()
            if silent_s > forget_after_s:
                forget_sensor(db, cache, module, reading["sensor_id"])
                continue
            if silent_s <= limit_s:
                continue
            alert, change = alerts.raise_or_bump(
                db, module=module, sensor_id=reading["sensor_id"], rule_id=OFFLINE_RULE, alert_type="sensor_offline",
                severity="medium", message=f"Sensor {reading['sensor_id']} silent for {int(silent_s)} s",
                value=round(silent_s), threshold=limit_s, district=reading.get("district"),
                location=reading.get("location"), now=now)
            open_alert_index().add(alerts.open_key(reading["sensor_id"], OFFLINE_RULE))
            if change == "created":
                raised += 1
                broadcast.emit_alert(alert_wire(alert))
    return {"raised": raised}


def forget_sensor(db, cache, module, sensor_id):
    """A decommissioned sensor: close its offline alert and drop it from the live views."""
    resolved = alerts.resolve_open(db, sensor_id, OFFLINE_RULE, by="system", note="sensor decommissioned")
    open_alert_index().discard(alerts.open_key(sensor_id, OFFLINE_RULE))
    if resolved:
        broadcast.emit_alert_updated(alert_wire(resolved), "resolved")
    latest.delete(db, module, sensor_id)
    cache.forget(module, sensor_id)


def process_id():
    return f"{os.uname().nodename}:{os.getpid()}"


def publish_process_metrics(now):
    """Store this process's realtime snapshot where the leader can add it up (Redis, else memory)."""
    snapshot = metrics.snapshot(socketio)
    # One hash for all processes: reading it is one HGETALL, not a scan of the keyspace. With Redis
    # down the leader's system_update covers only its own process until Redis returns.
    attempt(lambda client: client.hset(metrics_key(), process_id(),
                                       json.dumps(dict(snapshot, published_at=now.timestamp()))))
    current_app.extensions["process_metrics"] = snapshot
    return {"connected_clients": snapshot["connected_clients"]}


def metrics_key():
    return f"{current_app.config['RATELIMIT_KEY_PREFIX']}:process-metrics"


def cluster_metrics(now=None):
    """Realtime metrics summed over every live process (entries older than 3 intervals are dropped)."""
    snapshots = []
    published = attempt(lambda client: client.hgetall(metrics_key()))
    if published is not UNAVAILABLE:
        now_ts = (now or datetime.now(timezone.utc)).timestamp()
        max_age = 3 * current_app.config["SYSTEM_UPDATE_INTERVAL_S"]
        for process, raw in published.items():
            snapshot = json.loads(raw)
            if now_ts - snapshot.get("published_at", 0) > max_age:
                attempt(lambda client: client.hdel(metrics_key(), process))  # that process has stopped
            else:
                snapshots.append(snapshot)
    if not snapshots:
        snapshots = [metrics.snapshot(socketio)]
    summed = {"processes": len(snapshots)}
    for field in ("connected_clients", "events_emitted_per_s", "readings_ingested_per_s", "events_emitted_total",
                  "readings_ingested_total"):
        summed[field] = round(sum(s.get(field, 0) for s in snapshots), 2)
    return summed


def job_states():
    runner = current_app.extensions.get("job_runner")
    stats = job_stats.all_stats(get_db())
    states = {}
    for job_id in (runner.specs if runner else stats):
        doc = stats.get(job_id, {})
        states[job_id] = {"runs": doc.get("runs", 0), "failures": doc.get("failures", 0),
                          "paused": doc.get("paused", False), "last_run_at": doc.get("last_run_at")}
    return states


def emit_system_update(now):
    """Emit server stats to the `system` room."""
    stats = cluster_metrics(now)
    stats.update(server_time=now, alerts_active=alerts.count_open_by_severity(get_db()), jobs=job_states(),
                 readings_per_s=stats["readings_ingested_per_s"])
    broadcast.emit_system(stats)
    return {"connected_clients": stats["connected_clients"]}
