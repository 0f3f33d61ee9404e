"""The one ingest path: validate -> store -> latest cache -> alert rules -> broadcast.

REST POSTs, batch uploads and the simulators all call `ingest`. Validation covers the whole
batch before anything is written, so a bad item stores nothing.
"""
import logging
import threading
import time
from datetime import timedelta

from flask import current_app
from marshmallow import ValidationError

from src.db import get_db, is_embedded
from src.realtime import broadcast, metrics
from src.schemas.alerts import alert_wire
from src.models import alert_rules, alerts, bins, grids, latest, readings
from src.domain import now_utc
from src.schemas.readings import ID_FIELDS, READING_SCHEMAS
from src.services import alerting, energy
from src.services.aqi import compute_aqi
from src.services.latest import get_cache

log = logging.getLogger(__name__)

MAX_BATCH = 1000
RULES_REFRESH_S = 5.0
OPEN_INDEX_REFRESH_S = 5.0


def ingest(module, payload, source="api"):
    """Ingest one reading (a dict) or a batch (a list); return the stored readings."""
    items = payload if isinstance(payload, list) else [payload]
    batch = isinstance(payload, list)
    if not items:
        raise ValidationError({"_schema": ["Send one reading or a non-empty list of readings."]})
    if len(items) > MAX_BATCH:
        raise ValidationError({"_schema": [f"At most {MAX_BATCH} readings per request."]})
    db = get_db()
    stored = validate_batch(db, module, items, batch)
    received = now_utc()
    for reading in stored:
        reading.update(module=module, source=source, received_at=received)
        reading["sensor_id"] = reading[ID_FIELDS[module]]
        derive(module, reading)
    if module == "waste":
        attach_bin_context(db, stored)

    readings.insert_many(db, stored)
    # The readings are stored: from here on a failure is logged, never turned into an error
    # response that would make a client retry (and store them twice).
    try:
        update_entities(db, module, stored)
        cache = get_cache(current_app)
        for reading in newest_per_sensor(stored):
            cache.record(module, reading)
            latest.upsert(db, module, reading)
    except Exception:
        log.exception("updating entities/latest after storing %d %s readings failed", len(stored), module)
    metrics.readings_ingested.add(len(stored))

    rules = rule_cache().for_module(db, module)
    # In time order, so an older reading later in a batch cannot resolve a newer one's alert.
    for index, reading in enumerate(sorted(stored, key=lambda r: r["timestamp"]), start=1):
        try:
            broadcast.emit_reading(module, reading)
            apply_rules(db, module, reading, rules)
        except Exception:
            log.exception("alerting/broadcast failed for %s reading of %s", module, reading.get("sensor_id"))
        if index % broadcast.YIELD_EVERY == 0:
            broadcast.let_writers_drain()
    return stored


def validate_batch(db, module, items, batch):
    """Load every item with the module schema; errors name the item index (batches) and field."""
    schema = READING_SCHEMAS[module]()
    retention_h = current_app.config["RAW_RETENTION_HOURS"]
    # Older readings would be expired at once (and make the rollup re-read old hours).
    oldest = now_utc() - timedelta(hours=retention_h)
    loaded, errors = [], {}
    for index, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise ValidationError({"_schema": ["Each reading must be a JSON object."]})
            reading = schema.load(item)
            if reading["timestamp"] < oldest:
                raise ValidationError({"timestamp": [f"Older than the raw retention window ({retention_h} h)."]})
            loaded.append(reading)
        except ValidationError as exc:
            errors[str(index)] = exc.messages
    if module == "waste" and not errors:
        known = bins.existing_ids(db, [r["bin_id"] for r in loaded])
        for index, reading in enumerate(loaded):
            if reading["bin_id"] not in known:
                errors[str(index)] = {"bin_id": [f"Unknown bin {reading['bin_id']!r}; register it first."]}
    if module == "energy" and not errors:
        errors.update(energy.reading_errors(loaded))
    if errors:
        raise ValidationError(errors if batch else errors["0"])
    return loaded


def derive(module, reading):
    """Server-computed fields."""
    if module == "environment":
        reading.update(compute_aqi(reading["pm25"], reading["pm10"]))
    elif module == "energy":
        load, capacity = reading["load_mw"], reading["capacity_mw"]
        renewable = sum(reading.get(k) or 0.0 for k in ("solar_mw", "wind_mw", "hydro_mw"))
        reading["utilization_pct"] = round(load / capacity * 100, 2)
        reading["renewable_mw"] = round(renewable, 3)
        reading["renewable_pct"] = round(min(100.0, renewable / load * 100), 2) if load > 0 else 0.0


def attach_bin_context(db, stored):
    """Level readings inherit the bin's district and location when they carry none."""
    known = bins.find_many(db, [r["bin_id"] for r in stored])
    for reading in stored:
        entity = known[reading["bin_id"]]
        for field in ("district", "location", "waste_type"):
            if reading.get(field) is None and entity.get(field) is not None:
                reading[field] = entity[field]


def update_entities(db, module, stored):
    if module == "waste":
        for reading in stored:
            bins.record_level(db, reading["bin_id"], reading)
    elif module == "energy":
        for reading in newest_per_sensor(stored):
            grids.record_reading(db, reading)


def newest_per_sensor(stored):
    newest = {}
    for reading in stored:
        current = newest.get(reading["sensor_id"])
        if current is None or current["timestamp"] <= reading["timestamp"]:
            newest[reading["sensor_id"]] = reading
    return list(newest.values())


def apply_rules(db, module, reading, rules):
    """Raise, bump, escalate or auto-resolve alerts for one reading, and broadcast the changes."""
    open_index = open_alert_index()
    resolve_if_open(db, open_index, reading["sensor_id"], alerts.OFFLINE_RULE_ID)  # it reports again
    for rule, level, value in alerting.evaluate(reading, rules):
        if level is None:
            resolve_if_open(db, open_index, reading["sensor_id"], rule["_id"])
            continue
        alert, change = alerts.raise_or_bump(
            db, module=module, sensor_id=reading["sensor_id"], rule_id=rule["_id"], alert_type=rule["type"],
            severity=level["severity"], message=alerting.render_message(rule, level, reading, value),
            value=value, threshold=level["value"], district=reading.get("district"),
            location=reading.get("location"), now=reading["received_at"], extra={"source": reading["source"]})
        open_index.add(alerts.open_key(reading["sensor_id"], rule["_id"]))
        if change in ("created", "escalated"):
            broadcast.emit_alert(alert_wire(alert), escalated=change == "escalated")
        elif change == "deescalated":
            broadcast.emit_alert_updated(alert_wire(alert), "deescalated")


def resolve_if_open(db, open_index, sensor_id, rule_id):
    """Auto-resolve the open alert for (sensor, rule), if there is one, and broadcast it."""
    key = alerts.open_key(sensor_id, rule_id)
    if not open_index.might_be_open(db, key):
        return  # nothing open: the common case costs no query
    resolved = alerts.resolve_open(db, sensor_id, rule_id, by="system")
    open_index.discard(key)
    if resolved:
        broadcast.emit_alert_updated(alert_wire(resolved), "resolved")


class RuleCache:
    """Enabled rules per module, re-read every few seconds so edits in any process apply."""

    def __init__(self):
        self._rules, self._loaded = {}, {}

    def for_module(self, db, module):
        if time.monotonic() - self._loaded.get(module, 0) > RULES_REFRESH_S:
            self._rules[module] = alert_rules.for_module(db, module)
            self._loaded[module] = time.monotonic()
        return self._rules[module]

    def invalidate(self):
        self._loaded.clear()


class OpenAlertIndex:
    """Keys of open alerts, so a normal reading costs no query when nothing is open.

    On the embedded engine this process is the only writer, so the set is exact. With MongoDB,
    other processes open alerts too: the set is re-read every OPEN_INDEX_REFRESH_S, so such an
    alert is auto-resolved by the first normal reading after that (a few seconds late at most)
    instead of every reading paying a write for every rule.
    """

    def __init__(self, authoritative):
        self.authoritative = authoritative
        self._keys = set()
        self._lock = threading.Lock()
        self._loaded = 0.0

    def __contains__(self, key):
        return key in self._keys

    def might_be_open(self, db, key):
        if not self.authoritative and time.monotonic() - self._loaded > OPEN_INDEX_REFRESH_S:
            self.load(alerts.open_keys(db))
        return key in self._keys

    def add(self, key):
        with self._lock:
            self._keys.add(key)

    def discard(self, key):
        with self._lock:
            self._keys.discard(key)

    def load(self, keys):
        with self._lock:
            self._keys = set(keys)
            self._loaded = time.monotonic()


def rule_cache():
    return current_app.extensions["rule_cache"]


def open_alert_index():
    return current_app.extensions["open_alerts"]


def init_app(app):
    """Per-app caches, warmed from the database."""
    app.extensions["rule_cache"] = RuleCache()
    index = OpenAlertIndex(authoritative=is_embedded(app))
    app.extensions["open_alerts"] = index


def warm(app):
    """Seed default rules and load open alert keys (called once MongoDB is reachable)."""
    db = get_db(app)
    alert_rules.seed_defaults(db, app.config["GRID_NOMINAL_FREQUENCY_HZ"])
    app.extensions["open_alerts"].load(alerts.open_keys(db))
