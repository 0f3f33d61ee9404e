"""The latest reading per sensor: in memory for speed, in MongoDB for other processes.

In embedded mode this process is the only writer, so memory is authoritative. With MongoDB,
other processes ingest too, so a module's snapshot is refreshed from the `latest` collection
(one document per sensor, never history) when it is older than REFRESH_S.
"""
import threading
import time
from datetime import timedelta

from flask import current_app

from src.db import get_db, is_embedded
from src.domain import READING_MODULES, isoformat_z, now_utc
from src.models import latest as latest_model
from src.realtime.wire import to_wire

REFRESH_S = 2.0


class LatestCache:
    def __init__(self):
        self._lock = threading.Lock()
        self._by_module = {}
        self._loaded_at = {}

    def record(self, module, reading):
        """Keep `reading` if it is the newest seen for its sensor."""
        with self._lock:
            sensors = self._by_module.setdefault(module, {})
            current = sensors.get(reading["sensor_id"])
            if current is None or current["timestamp"] <= reading["timestamp"]:
                sensors[reading["sensor_id"]] = reading

    def snapshot(self, module):
        """Latest reading of every sensor of `module`, oldest sensor id first."""
        stale = time.monotonic() - self._loaded_at.get(module, 0) > REFRESH_S
        if module not in self._loaded_at or (stale and not is_embedded()):
            self._load(module)
        with self._lock:
            return [self._by_module.get(module, {})[k] for k in sorted(self._by_module.get(module, {}))]

    def _load(self, module):
        """Replace this module's map with the database's (sensors purged elsewhere disappear)."""
        fresh = {}
        for doc in latest_model.for_module(get_db(), module):
            doc = dict(doc)
            doc["_id"] = doc.pop("reading_id", None)
            fresh[doc["sensor_id"]] = doc
        recent = now_utc() - timedelta(seconds=2 * REFRESH_S)
        with self._lock:
            for sensor_id, reading in self._by_module.get(module, {}).items():
                # A reading this process just stored may be newer than, or missing from, what it
                # read back (its upsert may land a moment later).
                if sensor_id in fresh:
                    if reading["timestamp"] > fresh[sensor_id]["timestamp"]:
                        fresh[sensor_id] = reading
                elif reading.get("received_at", reading["timestamp"]) >= recent:
                    fresh[sensor_id] = reading
            self._by_module[module] = fresh
            self._loaded_at[module] = time.monotonic()

    def forget(self, module, sensor_id):
        with self._lock:
            self._by_module.get(module, {}).pop(sensor_id, None)

    def clear(self, source=None):
        """Forget everything (or only readings from `source`)."""
        with self._lock:
            if source is None:
                self._by_module.clear()
            else:
                for sensors in self._by_module.values():
                    for sensor_id in [k for k, v in sensors.items() if v.get("source") == source]:
                        del sensors[sensor_id]
            self._loaded_at.clear()


def get_cache(app):
    return app.extensions["latest_cache"]


def init_app(app):
    app.extensions["latest_cache"] = LatestCache()


def latest_snapshot(data_type):
    """Latest reading per sensor for one module or all, from the cache (never history)."""
    modules = READING_MODULES if data_type == "all" else (data_type,)
    cache = get_cache(current_app)
    data = {module: to_wire(cache.snapshot(module)) for module in modules}
    return {"data_type": data_type, "data": data, "server_time": isoformat_z(now_utc())}
