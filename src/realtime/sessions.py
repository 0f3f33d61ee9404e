"""The socket sessions of this process: who is connected, their event budget and their faults.

Handlers open and close sessions; the sweeper (src/events/sweeper.py) keeps the table equal to
what the Socket.IO server says is connected. Recovery of a session after a reconnect will live
here too, so it sits below the handlers, beside the rooms it restores.
"""
import logging
import time
from collections import Counter
from datetime import datetime, timezone

from src.domain import isoformat_z
from src.extensions import socketio
from src.realtime import broadcast, rooms
from src.realtime.recovery import new_pid, parse_offset, valid_pid

log = logging.getLogger("citypulse.sockets")
# Disconnects after which a session may be recovered (engine.io's reasons); a client that said
# goodbye, or a server that ended the session, leaves nothing to recover.
RECOVERABLE_REASONS = {"transport close", "transport error", "ping timeout"}
pending_pids = {}  # sid -> pid for the CONNECT reply (src/events/guard.py adds it)
pending_recoveries = {}  # sid -> what to send and join once the CONNECT reply is out

# sid -> {"user_id", "role", "email", "claims", "bucket", "subscription", "faults"}
clients = {}
faults_total = Counter()  # client-caused failures of this process, by kind (for /api/health)
slow_consumers_total = 0  # connections closed for not reading (their backlog hit SOCKET_MAX_BACKLOG)


class TokenBucket:
    """`rate` events per second with bursts up to `burst`."""

    def __init__(self, rate, burst):
        self.rate, self.burst = rate, burst
        self.tokens, self.updated = float(burst), time.monotonic()

    def take(self):
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class FaultLog:
    """Client-caused failures of one connection: all counted, logged at most once per interval.

    A hostile client can cause failures as fast as it can send; one log line per failure let
    2,000 bad events write 4.7 MB of tracebacks and slow everyone else.
    """

    def __init__(self, who, interval_s):
        self.who, self.interval_s = who, interval_s
        self._unlogged = Counter()
        self._last_logged = None

    def record(self, kind):
        self._unlogged[kind] += 1
        faults_total[kind] += 1
        now = time.monotonic()
        if self._last_logged is None or now - self._last_logged >= self.interval_s:
            self._last_logged = now
            summary = ", ".join(f"{k} x{n}" for k, n in sorted(self._unlogged.items()))
            log.warning("socket client %s: %s (logged at most every %.0f s)", self.who, summary, self.interval_s)
            self._unlogged.clear()


def open_session(sid, user, claims, config, address, capable=False):
    """Record an authenticated connection; `capable` sessions read offsets and sit in twin rooms."""
    clients[sid] = {
        "user_id": str(user["_id"]), "role": user["role"], "email": user["email"], "claims": claims,
        "bucket": TokenBucket(config["SOCKET_EVENTS_PER_SECOND"], config["SOCKET_EVENTS_BURST"]),
        "subscription": None, "rooms": set(), "pid": None, "capable": capable, "recoverable_close": False,
        "stream": None,
        "expiry_notice_sent": False,
        "faults": FaultLog(f"{sid} ({user['email']} from {address})", config["CLIENT_FAULT_LOG_INTERVAL_S"]),
    }
    return clients[sid]


def close_session(sid):
    clients.pop(sid, None)


# Recovery: rooms are entered through here, so a session's rooms are known (to save and restore)
# and a capable session sits in the twin rooms that carry offsets.

def _recovery():
    return socketio.server.manager.recovery


def enter(sid, room):
    """Put a session in a room (its twin when the session reads offsets)."""
    client = clients[sid]
    client["rooms"].add(room)
    socketio.server.enter_room(sid, rooms.recovery_twin(room) if client["capable"] else room, namespace="/")


def leave(sid, room):
    client = clients[sid]
    client["rooms"].discard(room)
    socketio.server.leave_room(sid, rooms.recovery_twin(room) if client["capable"] else room, namespace="/")


def start(sid, client, user, auth_payload):
    """Restore the session `auth_payload` names (pid and offset), or start a fresh one.

    Returns (recovered, missed). A recovered session gets the rooms of its record that its
    current role allows, its alert subscription, and every packet it missed, in order, before
    any live one. Anything unusable (an unknown, foreign or expired pid, a malformed offset, a
    position the log no longer covers) gives a fresh session instead, never an error.
    """
    recovery = _recovery()
    auth_payload = auth_payload if isinstance(auth_payload, dict) else {}
    pid = auth_payload.get("pid")
    if recovery is not None and recovery.enabled and valid_pid(pid):
        record = recovery.store.load(pid)
        if record is not None and record.get("user_id") == client["user_id"]:
            position = _resume_position(record, auth_payload.get("offset"))
            wanted = _allowed_rooms(record, client, user)
            with recovery.lock:
                missed = recovery.log.missed(position, wanted)
            if missed is not None:
                # The missed packets go out right after the CONNECT reply (finish_recovery, called by
                # the guard that sends it): socket.io-client keeps events received before CONNECT in a
                # buffer that a transport close does not clear, so a replay sent first could be seen
                # twice after a quick second reconnect.
                client.update(pid=pid, subscription=record.get("subscription"), rooms=set(wanted))
                pending_pids[sid] = pid
                pending_recoveries[sid] = (position, wanted, record.get("stream"), record.get("saved_at", 0))
                save(sid)
                return True, len(missed)
    client["pid"] = new_pid()
    pending_pids[sid] = client["pid"]
    if recovery is not None and recovery.enabled:
        with recovery.lock:  # the position and the joins, atomically
            client["position"] = recovery.log.position()
            _enter_own_rooms(sid, client)
        save(sid)
    else:
        _enter_own_rooms(sid, client)
    return False, 0


def _enter_own_rooms(sid, client):
    enter(sid, rooms.user_room(client["user_id"]))
    enter(sid, rooms.EVERYONE)


def finish_recovery(sid):
    """Just after the CONNECT reply of a recovered session: its missed packets, then its rooms, atomically."""
    pending = pending_recoveries.pop(sid, None)
    client, recovery = clients.get(sid), _recovery()
    if pending is None or client is None or recovery is None:
        return
    position, wanted, stream, saved_at = pending
    client["rooms"] = set()
    with recovery.lock:
        sent = recovery.recover(sid, position, wanted, lambda room: enter(sid, room),
                                lambda event, data: broadcast.deliver_missed(sid, event, data))
        if sent is None:  # the log moved past the position since the check (microseconds): rejoin, no replay
            for room in wanted:
                enter(sid, room)
        client["position"] = recovery.log.position()
    if isinstance(stream, dict):  # the latest state of what changed, not every frame
        subscribe_stream(sid, stream)
        broadcast.send_stream_catch_up(socketio.server.manager.streams, sid, since=saved_at)


def _resume_position(record, offset):
    """Where a reconnecting session stands.

    A client that reads offsets reports its last one. When that is the last packet the server had
    sent to its rooms when the record was saved, the client had everything up to the saved position,
    which is newer: a client in a quiet room stays recoverable after its last packet left the log.
    A client that reported nothing stands where its record says.
    """
    reported = parse_offset(offset)
    saved = _position(record.get("position"))
    if reported is None:
        return saved if record.get("last_sent") is None or not record.get("capable") else \
            _position(record.get("start"))
    if offset == record.get("last_sent") and saved is not None:
        return saved
    return reported


def _position(value):
    if isinstance(value, (list, tuple)) and len(value) == 2 and isinstance(value[1], int):
        return value[0], value[1]
    return None


def _allowed_rooms(record, client, user):
    """The record's rooms that the user's current role allows, its alert rooms and the user's room."""
    wanted = {rooms.user_room(client["user_id"]), rooms.EVERYONE}
    for room in record.get("rooms") or []:
        if isinstance(room, str) and rooms.check_joinable(room, user["role"]) is None:
            wanted.add(room)
    subscription = record.get("subscription")
    if isinstance(subscription, dict):
        wanted.update(rooms.alert_rooms(subscription.get("modules"), subscription.get("severity_levels")))
    return sorted(wanted)


def save(sid, position=None):
    """Write the session's record (rooms, subscription, where it stands) for SESSION_RECOVERY_S."""
    recovery, client = _recovery(), clients.get(sid)
    if client is not None and client["pid"] is not None and recovery is not None and recovery.enabled:
        recovery.store.save(client["pid"], _record(client, position))


def _record(client, position=None):
    """What recovering a session needs: its user, rooms, subscriptions and where it stands."""
    recovery = _recovery()
    own_rooms = {rooms.user_room(client["user_id"]), rooms.EVERYONE}
    return {
        "user_id": client["user_id"], "rooms": sorted(r for r in client["rooms"]
                                                      if r not in own_rooms and not rooms.is_alert_room(r)),
        "subscription": client["subscription"], "capable": client["capable"], "stream": client.get("stream"),
        # A capable session reports its offset; `position` (the log now) and `last_sent` (the last
        # packet sent to its rooms) let a quiet session resume, `start` covers "no packet seen yet".
        # A session without offsets is known to have seen everything logged only when it closes:
        # until then (its process may die) there is no position, and no recovery.
        "position": list(position or (recovery.position() if client["capable"] else None) or ()) or None,
        "start": list(client.get("position") or ()) or None,
        "last_sent": recovery.last_sent(client["rooms"]) if client["capable"] else None}


def end(sid, reason):
    """The connection closed: keep its record for recovery after a transport failure, drop it otherwise."""
    client = clients.pop(sid, None)
    pending_pids.pop(sid, None)
    pending_recoveries.pop(sid, None)
    if socketio.server.manager.streams is not None:
        socketio.server.manager.streams.unsubscribe(sid)
    recovery = _recovery()
    if client is None or client["pid"] is None or recovery is None or not recovery.enabled:
        return
    if client["recoverable_close"] or reason in RECOVERABLE_REASONS:
        # A capable client reports its own offset; for the others, where the server stands now.
        recovery.store.save(client["pid"], _record(client, None if client["capable"] else recovery.position()))
    else:
        recovery.store.delete(client["pid"])


# Coalesced streams (src/realtime/stream.py): the group's room is entered directly, not as a twin:
# frames are not logged; a recovered session gets the latest state of what changed instead.

def subscribe_stream(sid, spec):
    """Put the session in the stream group of `spec` (leaving its previous one); returns the group."""
    streams, server = socketio.server.manager.streams, socketio.server
    previous = streams.unsubscribe(sid)
    if previous:
        server.leave_room(sid, previous, namespace="/")
    group = streams.subscribe(sid, spec)
    server.enter_room(sid, group.room, namespace="/")
    clients[sid]["stream"] = spec
    return group


def seen_districts():
    """Districts of the readings this process has delivered (real sensors may name their own)."""
    streams = socketio.server.manager.streams
    with streams.lock:
        return {payload.get("district") for payload, _ in streams.latest.values()} - {None}


def unsubscribe_stream(sid):
    room = socketio.server.manager.streams.unsubscribe(sid)
    if room:
        socketio.server.leave_room(sid, room, namespace="/")
    if sid in clients:
        clients[sid]["stream"] = None


def reads_offsets(auth_payload):
    """Whether a connecting client understands offsets: it sent a pid (socket.io-client >= 4.6
    reconnecting) or said so (`recovery: true`). Others would get an argument they don't expect."""
    if not isinstance(auth_payload, dict):
        return False
    return valid_pid(auth_payload.get("pid")) or auth_payload.get("recovery") is True


def renew(sid, claims):
    """Replace a session's token with a fresh one (same user): the session lives on, nothing is missed."""
    client = clients[sid]
    client.update(claims=claims, expiry_notice_sent=False)
    return {"token_expires_at": isoformat_z(datetime.fromtimestamp(claims["exp"], timezone.utc))}


_connect_buckets = {}


def connect_allowed(key, config):
    """At most SOCKET_CONNECTS_PER_MINUTE connection attempts per user (or address), in bursts of
    SOCKET_CONNECTS_BURST: a client reconnecting in a tight loop is throttled like any other."""
    bucket = _connect_buckets.get(key)
    if bucket is None:
        if len(_connect_buckets) > 10000:
            _connect_buckets.clear()
        bucket = _connect_buckets[key] = TokenBucket(config["SOCKET_CONNECTS_PER_MINUTE"] / 60,
                                                     config["SOCKET_CONNECTS_BURST"])
    return bucket.take()


def refresh_records():
    """Re-save the records of connected sessions (one pipeline), so one whose process dies can be recovered."""
    recovery = _recovery()
    if recovery is None or not recovery.enabled:
        return
    recovery.store.save_many({client["pid"]: _record(client) for client in list(clients.values())
                              if client["pid"] is not None})


_anonymous_faults = {}


def record_fault(sid, kind, eio_sid=None, config=None):
    """Count a client-caused failure against its connection (authenticated or not)."""
    client = clients.get(sid) if sid else None
    if client is not None:
        client["faults"].record(kind)
        return
    key = eio_sid or sid or "?"
    faults = _anonymous_faults.get(key)
    if faults is None:
        interval = (config or {}).get("CLIENT_FAULT_LOG_INTERVAL_S", 60.0)
        if len(_anonymous_faults) > 10000:  # bounded: entries are dropped by the sweeper too
            _anonymous_faults.clear()
        faults = _anonymous_faults[key] = FaultLog(f"{key} (not authenticated)", interval)
    faults.record(kind)


def forget_anonymous(eio_sid):
    """Drop the fault log of a connection that never authenticated (it closed or authenticated)."""
    _anonymous_faults.pop(eio_sid, None)
