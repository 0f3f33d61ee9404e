"""Connection state recovery, wire-compatible with socket.io-client >= 4.6.

The official client keeps the session id (`pid`) that the server's CONNECT reply carries and
the offset of the last event it received (the event's last argument, when it is a string). On
reconnect it sends `{pid, offset}` with its auth; if the reply carries the same pid it sets
`socket.recovered = true`. The Node server implements this; python-socketio does not, so we do:

- **One packet log, one order.** Every broadcast to rooms is also written to a log with an
  offset `"<epoch>-<seq>"`. With Redis, one Lua script increments the sequence and publishes
  the packet in one step, and every process (the emitter too) delivers and logs what it receives
  from the channel, so every process holds the same log in the same order and can recover a
  client whose process died. Without Redis the sequence is this process's.
- **Twin rooms.** Offsets are an extra event argument, which would break clients that do not
  expect one (a python-socketio handler taking one argument). So a session that has shown it
  understands offsets (its CONNECT carried a `pid`, or `recovery: true`) sits in the twin rooms
  (`rooms.recovery_twin`), which get `(payload, offset)`; other sessions sit in the plain rooms.
- **Session records** (pid -> user, rooms, alert subscription, position) live in Redis with a
  TTL of SESSION_RECOVERY_S, or in this process.
- **The seam.** Right after the CONNECT reply, missed packets are sent and the rooms joined
  without yielding to any other green thread, under the lock that log delivery takes: a packet is
  either in the replay or arrives live, never both and never neither.

A session that has not shown it reads offsets (an official client's first session) is
recovered from the position the server recorded when it disconnected: packets still in flight
at that moment (within about a round trip) can be lost. From its first reconnect on, the client
reports its own offset and delivery is exactly once.
"""
import collections
import json
import logging
import re
import secrets
import threading
import time

from src import redis_client

log = logging.getLogger("citypulse.sockets")

OFFSET_PATTERN = re.compile(r"^([A-Za-z0-9_]{1,32})-(\d{1,18})$")
PID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
LOGGED_PREFIX = "csr|"  # channel messages carrying a logged packet: "csr|<offset>|<json>"

# KEYS: sequence, epoch; ARGV: channel, packet JSON, a new epoch (used when the sequence starts).
PUBLISH_SCRIPT = """
local seq = redis.call('INCR', KEYS[1])
local epoch = redis.call('GET', KEYS[2])
if (not epoch) or seq == 1 then
  epoch = ARGV[3]
  redis.call('SET', KEYS[2], epoch)
end
local offset = epoch .. '-' .. seq
redis.call('PUBLISH', ARGV[1], 'csr|' .. offset .. '|' .. ARGV[2])
return offset
"""


def parse_offset(value):
    """(epoch, seq) from an offset string; None for anything else (never an error)."""
    if not isinstance(value, str):
        return None
    match = OFFSET_PATTERN.match(value)
    return (match.group(1), int(match.group(2))) if match else None


def valid_pid(value):
    return isinstance(value, str) and PID_PATTERN.match(value) is not None


def new_pid():
    return secrets.token_urlsafe(18)


class PacketLog:
    """The logged packets of the last SESSION_RECOVERY_S, at most `max_packets`, in offset order.

    `complete_after` is the sequence after which the log holds every packet of its epoch: it
    moves on when old packets are dropped, and jumps when a gap shows (a process that started
    late, or a channel message lost in a Redis outage). A position before it cannot be recovered.
    """

    def __init__(self, max_packets, max_age_s):
        self.max_packets, self.max_age_s = max_packets, max_age_s
        self.entries = collections.deque()
        self.epoch, self.last_seq, self.complete_after = None, 0, 0
        self.room_last = {}  # room -> (seq, offset) of the last packet sent to it in this epoch

    def append(self, offset, event, payload, rooms, now=None):
        epoch, seq = parse_offset(offset)
        now = time.monotonic() if now is None else now
        if epoch != self.epoch or seq != self.last_seq + 1:
            if epoch != self.epoch:
                self.entries.clear()
                self.room_last.clear()
            self.epoch, self.complete_after = epoch, seq - 1
        self.last_seq = seq
        self.entries.append((seq, offset, event, payload, frozenset(rooms), now))
        for room in rooms:
            self.room_last[room] = (seq, offset)
        while self.entries and (len(self.entries) > self.max_packets or now - self.entries[0][5] > self.max_age_s):
            self.complete_after = self.entries.popleft()[0]

    def position(self):
        """(epoch, seq) of the newest packet: where a session that saw everything stands."""
        return self.epoch, self.last_seq

    def missed(self, position, rooms, now=None):
        """Packets after `position` sent to any of `rooms`, oldest first; None if the log cannot tell."""
        if position and position[0] is None and self.complete_after == 0:
            position = (self.epoch, 0)  # saved before anything was logged; the log is complete from its start
        if not position or position[0] != self.epoch or not self.complete_after <= position[1] <= self.last_seq:
            return None
        now = time.monotonic() if now is None else now
        if self.entries and now - self.entries[0][5] > self.max_age_s:
            self.trim(now)
            if position[1] < self.complete_after:
                return None
        rooms = set(rooms)
        return [(offset, event, payload) for seq, offset, event, payload, targets, _ in self.entries
                if seq > position[1] and not targets.isdisjoint(rooms)]

    def trim(self, now):
        while self.entries and now - self.entries[0][5] > self.max_age_s:
            self.complete_after = self.entries.popleft()[0]


class SessionStore:
    """pid -> session record, for SESSION_RECOVERY_S after the last save: Redis, or this process."""

    def __init__(self, ttl_s, key_prefix):
        self.ttl_s, self.key_prefix = ttl_s, key_prefix
        self.local = {}
        self._next_expiry_sweep = 0.0

    def _key(self, pid):
        return f"{self.key_prefix}:csr:session:{pid}"

    def save(self, pid, record):
        self.save_many({pid: record})

    def save_many(self, records):
        """Save {pid: record} in one Redis round trip (a pipeline), or in this process."""
        now = time.time()
        records = {pid: dict(record, saved_at=now) for pid, record in records.items()}

        def write(client):
            pipe = client.pipeline(transaction=False)
            for pid, record in records.items():
                pipe.set(self._key(pid), json.dumps(record), ex=int(self.ttl_s) + 1)
            return pipe.execute()

        if records and redis_client.attempt(write) is redis_client.UNAVAILABLE:
            self._save_local(records, now)

    def _save_local(self, records, now):
        if now >= self._next_expiry_sweep:  # at most once per window: a sweep per save made n saves O(n²)
            self._next_expiry_sweep = now + self.ttl_s
            for stale in [p for p, r in self.local.items() if now - r["saved_at"] > self.ttl_s]:
                del self.local[stale]
        self.local.update(records)

    def load(self, pid):
        """The record, or None when unknown or older than the window."""
        raw = redis_client.attempt(lambda r: r.get(self._key(pid)))
        if raw not in (None, redis_client.UNAVAILABLE):
            return json.loads(raw)
        record = self.local.get(pid)
        if record is None or time.time() - record["saved_at"] > self.ttl_s:
            return None
        return record

    def delete(self, pid):
        self.local.pop(pid, None)
        redis_client.attempt(lambda r: r.delete(self._key(pid)))


class Recovery:
    """The packet log, the session records and the one lock that orders delivery against recovery."""

    def __init__(self, window_s, max_packets, key_prefix):
        self.window_s = window_s
        self.log = PacketLog(max_packets, window_s)
        self.store = SessionStore(window_s, key_prefix)
        self.lock = threading.RLock()
        self.local_epoch = "L" + secrets.token_hex(4)  # this process's own sequence (no Redis, or Redis down)
        self.local_seq = 0
        self.manager = None  # the client manager, set when the app binds Socket.IO
        self.enabled = window_s > 0

    def next_local_offset(self):
        with self.lock:
            self.local_seq += 1
            return f"{self.local_epoch}-{self.local_seq}"

    def deliver(self, offset, event, payload, rooms, twins):
        """Log a packet and send it to the twin rooms of this process (payload, offset)."""
        with self.lock:
            self.log.append(offset, event, payload, rooms)
            self.manager.deliver_locally(event, (payload, offset), twins)

    def recover(self, sid, position, rooms, enter_room, deliver):
        """Send what `sid` missed in `rooms` since `position`, then enter those rooms: atomically.

        Returns the number of packets sent, or None (nothing sent, no room entered) when the log
        cannot tell what was missed.
        """
        with self.lock:
            missed = self.log.missed(position, rooms)
            if missed is None:
                return None
            for offset, event, payload in missed:
                deliver(event, (payload, offset))
            for room in rooms:
                enter_room(room)
            return len(missed)

    def position(self):
        with self.lock:
            return self.log.position()

    def last_sent(self, rooms):
        """The offset of the last packet logged for any of `rooms` (None if none)."""
        with self.lock:
            sent = [self.log.room_last[room] for room in rooms if room in self.log.room_last]
            return max(sent)[1] if sent else None

