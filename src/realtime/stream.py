"""Coalesced streams: `<module>_updates` frames with the latest reading of each changed sensor.

A dashboard needs the latest value of each sensor a few times a second, not every reading:
`subscribe_stream {modules, interval_ms, sensors?, districts?}` puts a session in the group of
every session with the same filter (one Socket.IO room). Every `interval_ms` the group gets one
frame per module that changed: the latest reading per changed sensor and how many readings
those superseded. A frame is encoded once for its whole group, so the cost follows the number
of groups and frames, not the reading rate. Nothing is sent when nothing changed.

Each process coalesces the readings it delivers (its own and those reaching it through the
Redis queue), so streams work on any process. Alerts are separate events, never merged.

A stream session that falls behind (its outbound backlog over STREAM_MAX_BACKLOG packets) is
skipped, and the sensors it missed are remembered; once it has caught up it gets one frame with
their latest readings. Its memory is bounded by the number of sensors, never by the reading rate.
"""
import hashlib
import json
import threading
import time

from src.domain import isoformat_z, now_utc
from src.realtime import rooms

LATEST_MAX = 100000  # sensors whose latest reading a process keeps for catch-up frames


class Group:
    """The sessions sharing one filter, and what changed since their last frame."""

    def __init__(self, key, spec, now):
        self.key, self.room = key, rooms.stream_room(key)
        self.modules = frozenset(spec["modules"])
        self.sensors = frozenset(spec["sensors"]) if spec.get("sensors") else None
        self.districts = frozenset(spec["districts"]) if spec.get("districts") else None
        self.interval_s = spec["interval_ms"] / 1000
        self.spec = spec
        self.members = set()
        self.pending = {}  # module -> {sensor_id: payload}
        self.superseded = {}  # module -> readings replaced by a later one of the same sensor
        self.frame_start = now_utc()
        self.due = now + self.interval_s

    def matches(self, module, payload):
        return (module in self.modules
                and (self.sensors is None or payload.get("sensor_id") in self.sensors)
                and (self.districts is None or payload.get("district") in self.districts))

    def offer(self, module, payload):
        readings = self.pending.setdefault(module, {})
        pending = readings.get(payload["sensor_id"])
        if pending is not None:
            self.superseded[module] = self.superseded.get(module, 0) + 1
            if newer(pending, payload):  # requests finish out of order: keep the newest reading, not the last
                return
        readings[payload["sensor_id"]] = payload


def newer(kept, arriving):
    """Whether `kept` was measured after `arriving` (wire timestamps: ISO 8601 UTC, same format)."""
    return str(kept.get("timestamp") or "") > str(arriving.get("timestamp") or "")


def group_key(spec):
    """One key per distinct filter (order of the lists does not matter)."""
    canonical = json.dumps({k: sorted(v) if isinstance(v, list) else v for k, v in spec.items()}, sort_keys=True)
    return hashlib.sha1(canonical.encode()).hexdigest()[:16]


class Streams:
    """Every stream group of this process; `offer` is called for each reading delivered here."""

    def __init__(self, max_backlog=32):
        self.lock = threading.RLock()
        self.groups = {}
        self.of_sid = {}  # sid -> group key
        self.behind = {}  # sid -> {module: set(sensor_id)} missed while its backlog was full
        self.latest = {}  # (module, sensor_id) -> (payload, wall time)
        self.max_backlog = max_backlog
        self.frames_sent = 0
        self.readings_merged = 0

    def subscribe(self, sid, spec, now=None):
        """Put `sid` in the group of `spec` (leaving any other); returns the group."""
        now = time.monotonic() if now is None else now
        with self.lock:
            self.unsubscribe(sid)
            key = group_key(spec)
            group = self.groups.get(key)
            if group is None:
                group = self.groups[key] = Group(key, spec, now)
            group.members.add(sid)
            self.of_sid[sid] = key
            return group

    def unsubscribe(self, sid):
        """Take `sid` out of its group; returns the group's room, or None."""
        with self.lock:
            key = self.of_sid.pop(sid, None)
            self.behind.pop(sid, None)
            group = self.groups.get(key)
            if group is None:
                return None
            group.members.discard(sid)
            if not group.members:
                del self.groups[key]
            return group.room

    def offer(self, module, payload):
        """A reading was delivered in this process: remember it, and pend it for matching groups."""
        if not isinstance(payload, dict) or "sensor_id" not in payload:
            return
        with self.lock:
            key = (module, payload["sensor_id"])
            if key not in self.latest and len(self.latest) >= LATEST_MAX:
                self.latest.pop(next(iter(self.latest)))
            if key not in self.latest or not newer(self.latest[key][0], payload):
                self.latest[key] = (payload, time.time())
            for group in self.groups.values():
                if group.matches(module, payload):
                    group.offer(module, payload)

    def due_frames(self, now=None):
        """[(room, event, frame, member sids)] of every group whose interval elapsed with changes."""
        now = time.monotonic() if now is None else now
        frames = []
        with self.lock:
            for group in self.groups.values():
                if now < group.due:
                    continue
                group.due = max(group.due + group.interval_s, now)  # no burst of catch-up ticks
                if not group.pending:
                    continue
                end = now_utc()
                for module, readings in sorted(group.pending.items()):
                    frame = {"module": module, "interval_ms": group.spec["interval_ms"],
                             "frame_start": isoformat_z(group.frame_start), "frame_end": isoformat_z(end),
                             "readings": list(readings.values()), "superseded": group.superseded.get(module, 0)}
                    frames.append((group.room, f"{module}_updates", frame, set(group.members)))
                    self.readings_merged += frame["superseded"]
                group.pending, group.superseded, group.frame_start = {}, {}, end
        self.frames_sent += len(frames)
        return frames

    def fall_behind(self, sid, frame):
        """`sid` was skipped for `frame`: remember its sensors for a catch-up frame."""
        with self.lock:
            missed = self.behind.setdefault(sid, {})
            missed.setdefault(frame["module"], set()).update(r["sensor_id"] for r in frame["readings"])

    def catch_up(self, sid, since=None):
        """Frames with the latest reading of each sensor `sid` missed (or, with `since`, of each sensor
        of its filter that changed after that wall time); clears what it missed."""
        with self.lock:
            group = self.groups.get(self.of_sid.get(sid))
            if group is None:
                return []
            missed = self.behind.pop(sid, {})
            if since is not None:
                for (module, sensor_id), (payload, at) in self.latest.items():
                    if at > since and group.matches(module, payload):
                        missed.setdefault(module, set()).add(sensor_id)
            frames = []
            for module, sensors in sorted(missed.items()):
                readings = [self.latest[(module, s)][0] for s in sorted(sensors) if (module, s) in self.latest]
                if readings:
                    frames.append((f"{module}_updates", {
                        "module": module, "interval_ms": group.spec["interval_ms"], "catch_up": True,
                        "frame_end": isoformat_z(now_utc()), "readings": readings, "superseded": 0}))
            return frames

    def is_behind(self, sid):
        return sid in self.behind

    def stats(self):
        with self.lock:
            return {"stream_groups": len(self.groups), "stream_subscribers": len(self.of_sid),
                    "stream_frames_total": self.frames_sent, "stream_readings_merged_total": self.readings_merged,
                    "stream_subscribers_behind": len(self.behind)}
