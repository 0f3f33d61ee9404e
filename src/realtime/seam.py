"""Exactly-once delivery at the seam between alert replay and live alerts.

A client that subscribes with `since` joins its alert rooms first (so nothing raised from then
on is missed), then receives the stored alerts it missed. An alert raised just before the join
can reach it both ways: live (its emit was still in flight through Redis) and in the replay.
This module removes those duplicates where delivery happens, in the client manager:

- while a client's seam is open, live alerts delivered to it are remembered;
- the replay skips alerts already delivered live;
- live alerts already replayed are skipped for that client.

Only clients with an open seam (a few seconds after subscribing) are looked at, so ordinary
fan-out stays the library's own loop.
"""
import threading
import time

from socketio import Manager, RedisManager

from src import outages, redis_client

SEAM_SECONDS = 30.0


class SeamGuards:
    """Per-client sets of alert ids replayed and delivered live during the seam."""

    def __init__(self):
        self._lock = threading.Lock()
        self._guards = {}

    def open(self, sid):
        with self._lock:
            self._expire()
            self._guards[sid] = {"until": time.monotonic() + SEAM_SECONDS, "replayed": set(), "live": set()}

    def close(self, sid):
        with self._lock:
            self._guards.pop(sid, None)

    def claim_for_replay(self, sid, alert_ids):
        """Return the ids still to replay, and mark them so later live copies are skipped."""
        with self._lock:
            guard = self._guards.get(sid)
            if guard is None:
                return list(alert_ids)
            fresh = [a for a in alert_ids if a not in guard["live"]]
            guard["replayed"].update(fresh)
            return fresh

    def skip_live(self, alert_id, members):
        """Sids among `members` that must not get this live alert (they had it replayed)."""
        if not self._guards:
            return []
        skip = []
        with self._lock:
            self._expire()
            for sid, guard in self._guards.items():
                if sid not in members:
                    continue
                if alert_id in guard["replayed"]:
                    skip.append(sid)
                else:
                    guard["live"].add(alert_id)
        return skip

    def _expire(self):
        now = time.monotonic()
        for sid in [s for s, g in self._guards.items() if g["until"] < now]:
            del self._guards[sid]


class SeamGuardMixin(Manager):
    """Apply SeamGuards to live `*_alert` emits, at local delivery time."""

    seam_guards = None

    def emit(self, event, data, namespace, room=None, skip_sid=None, callback=None, to=None, **kwargs):
        target = to or room
        guards = self.seam_guards
        if (guards is not None and guards._guards and isinstance(event, str) and event.endswith("_alert")
                and isinstance(data, dict) and not data.get("replayed") and isinstance(target, str)):
            members = self.rooms.get(namespace, {}).get(target, {})
            extra = guards.skip_live(data.get("id"), members)
            if extra:
                skip_sid = (skip_sid if isinstance(skip_sid, list) else [skip_sid]) + extra
        return super().emit(event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, to=to,
                            **kwargs)


class GuardedManager(SeamGuardMixin):
    """Single-process client manager."""


class GuardedRedisManager(RedisManager, SeamGuardMixin):
    """Redis client manager; the mixin sits below PubSubManager, so it sees local deliveries.

    With Redis down, python-socketio logged two error lines per emit and one per listen retry.
    Local clients are served either way (the manager delivers locally before publishing); other
    processes miss what is emitted during the outage. Failures go to `outages.redis`, which
    logs the outage once, and publishing is skipped while Redis is known to be down.
    """

    def _publish(self, data):
        if redis_client.skipping():
            return None
        try:
            if not self.connected:
                self._redis_connect()
            result = self.redis.publish(self.channel, self.json.dumps(data))
        except Exception as exc:  # any redis-py failure: the outage, not this emit, is worth a line
            self.connected = False
            redis_client.report_failure(exc)
            return None
        outages.redis.recovered()
        return result

    def _redis_listen_with_retries(self):
        retry_sleep = 1
        subscribed = False
        while True:
            try:
                if not subscribed:
                    self._redis_connect()
                    self.pubsub.subscribe(self.channel)
                    subscribed = True
                    retry_sleep = 1
                yield from self.pubsub.listen()
            except Exception as exc:
                redis_client.report_failure(exc)
                subscribed = False
                time.sleep(retry_sleep)
                retry_sleep = min(retry_sleep * 2, 8)  # back within seconds of Redis returning


def make_client_manager(redis_url, guards, channel="citypulse-socketio"):
    """The client manager for this process: Redis-backed when `redis_url` is set."""
    manager = GuardedRedisManager(redis_url, channel=channel) if redis_url else GuardedManager()
    manager.seam_guards = guards
    return manager


# One set of guards per process, shared by the client manager and the subscribe handler.
guards = SeamGuards()
