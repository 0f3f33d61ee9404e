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
import json
import logging
import secrets
import threading
import time

from socketio import Manager, RedisManager

from src import outages, redis_client
from src.realtime import recovery as recovery_module

log = logging.getLogger(__name__)
LOGGED_PREFIX = recovery_module.LOGGED_PREFIX.encode()

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
    """Apply SeamGuards to live `*_alert` emits, at local delivery time; deliver logged packets."""

    seam_guards = None
    recovery = None  # src.realtime.recovery.Recovery
    streams = None  # src.realtime.stream.Streams

    def emit(self, event, data, namespace, room=None, skip_sid=None, callback=None, to=None, **kwargs):
        target = to or room
        guards = self.seam_guards
        payload = data[0] if isinstance(data, tuple) and data else data  # (payload, offset) in twin rooms
        if self.streams is not None and isinstance(data, dict) and event.endswith("_update"):
            self.streams.offer(event[:-len("_update")], data)  # each reading delivered here, once
        if (guards is not None and guards._guards and isinstance(event, str) and event.endswith("_alert")
                and isinstance(payload, dict) and not payload.get("replayed") and target is not None):
            namespace_rooms = self.rooms.get(namespace, {})
            members = set()
            for name in ([target] if isinstance(target, str) else target):
                members.update(namespace_rooms.get(name, {}))
            extra = guards.skip_live(payload.get("id"), members)
            if extra:
                skip_sid = (skip_sid if isinstance(skip_sid, list) else [skip_sid]) + extra
        return super().emit(event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, to=to,
                            **kwargs)

    def deliver_locally(self, event, data, rooms, skip_sid=None):
        """Send to the members of `rooms` in this process only (never through the message queue)."""
        SeamGuardMixin.emit(self, event, data, "/", room=rooms, skip_sid=skip_sid)

    def publish_logged(self, event, payload, rooms, twins):
        """Log and deliver a broadcast for recovery-capable sessions (one process: here and now)."""
        recovery = self.recovery
        recovery.deliver(recovery.next_local_offset(), event, payload, rooms, twins)


class GuardedManager(SeamGuardMixin):
    """Single-process client manager."""


class GuardedRedisManager(RedisManager, SeamGuardMixin):
    """Redis client manager; the mixin sits below PubSubManager, so it sees local deliveries.

    With Redis down, python-socketio logged two error lines per emit and one per listen retry.
    Local clients are served either way (the manager delivers locally before publishing); other
    processes miss what is emitted during the outage. Failures go to `outages.redis`, which
    logs the outage once, and publishing is skipped while Redis is known to be down.
    """

    _logged_script = None

    def publish_logged(self, event, payload, rooms, twins):
        """Order and publish a logged packet in one Lua call; every process (this one too) delivers it
        from the channel, so all hold the same log. With Redis down it is delivered here only."""
        if not redis_client.skipping():
            try:
                if not self.connected:
                    self._redis_connect()
                if self._logged_script is None:
                    self._logged_script = self.redis.register_script(recovery_module.PUBLISH_SCRIPT)
                packet = json.dumps({"event": event, "payload": payload, "rooms": list(rooms), "twins": list(twins)})
                prefix = f"{self.channel}:csr"
                self._logged_script(keys=[f"{prefix}:seq", f"{prefix}:epoch"],
                                    args=[self.channel, packet, secrets.token_hex(4)])
                outages.redis.recovered()
                return
            except Exception as exc:
                self.connected = False
                redis_client.report_failure(exc)
        super().publish_logged(event, payload, rooms, twins)

    def _handle_logged(self, data):
        """A logged packet from the channel: log it and deliver it to this process's twin rooms."""
        try:
            _, offset, body = data.decode("utf-8").split("|", 2)
            packet = json.loads(body)
            self.recovery.deliver(offset, packet["event"], packet["payload"], packet["rooms"], packet["twins"])
        except Exception:
            log.exception("could not deliver a logged packet")

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
                for message in self.pubsub.listen():
                    data = message.get("data") if message.get("type") == "message" else None
                    if isinstance(data, bytes) and data.startswith(LOGGED_PREFIX):
                        self._handle_logged(data)
                    else:
                        yield message
            except Exception as exc:
                redis_client.report_failure(exc)
                subscribed = False
                time.sleep(retry_sleep)
                retry_sleep = min(retry_sleep * 2, 8)  # back within seconds of Redis returning


def start_listening(server):
    """Start the client manager now rather than at the first connection: a process must hear (and
    log) every broadcast from its start, to recover a client whose own process died."""
    if not server.manager_initialized:
        server.manager_initialized = True
        server.manager.initialize()


def make_client_manager(redis_url, guards, channel="citypulse-socketio", recovery=None, streams=None):
    """The client manager for this process: Redis-backed when `redis_url` is set."""
    manager = GuardedRedisManager(redis_url, channel=channel) if redis_url else GuardedManager()
    manager.seam_guards = guards
    manager.recovery = recovery
    manager.streams = streams
    if recovery is not None:
        recovery.manager = manager
    return manager


# One set of guards per process, shared by the client manager and the subscribe handler.
guards = SeamGuards()
