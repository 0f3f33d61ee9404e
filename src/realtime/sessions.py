"""The socket sessions of this process: who is connected, their event budget and their faults.

Handlers open and close sessions; the sweeper (src/events/sweeper.py) keeps the table equal to
what the Socket.IO server says is connected. Recovery of a session after a reconnect will live
here too, so it sits below the handlers, beside the rooms it restores.
"""
import logging
import time
from collections import Counter

log = logging.getLogger("citypulse.sockets")

# sid -> {"user_id", "role", "email", "claims", "bucket", "subscription", "faults"}
clients = {}
faults_total = Counter()  # client-caused failures of this process, by kind (for /api/health)


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


def open_session(sid, user, claims, config, address):
    """Record an authenticated connection."""
    clients[sid] = {
        "user_id": str(user["_id"]), "role": user["role"], "email": user["email"], "claims": claims,
        "bucket": TokenBucket(config["SOCKET_EVENTS_PER_SECOND"], config["SOCKET_EVENTS_BURST"]),
        "subscription": None,
        "faults": FaultLog(f"{sid} ({user['email']} from {address})", config["CLIENT_FAULT_LOG_INTERVAL_S"]),
    }
    return clients[sid]


def close_session(sid):
    clients.pop(sid, None)


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
