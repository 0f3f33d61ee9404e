"""Socket sessions of this process: who is connected, their event budget, their faults, and the sweeper.

The sweeper walks what the Socket.IO server says is connected, never a table a client could
clear: every connected sid must have a live session here (valid token, active account, same
role), and every engine.io connection must finish the Socket.IO CONNECT within
SOCKET_CONNECT_TIMEOUT_S. Anything else is disconnected.
"""
import logging
import time
from collections import Counter

from src import auth
from src.db import get_db
from src.errors import UNAVAILABLE_ERRORS
from src.extensions import socketio
from src.models import users

log = logging.getLogger("citypulse.sockets")

# sid -> {"user_id", "role", "email", "claims", "bucket", "subscription", "faults"}
clients = {}
# engine.io sid -> monotonic time it was first seen without a Socket.IO session
_pending = {}
# Totals of this process, for /api/health.
faults_total = Counter()  # client-caused failures by kind
sessions_ended = Counter()  # sockets the sweeper ended, by reason
handshake_timeouts = 0  # connections closed for never authenticating


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


def _connected(server):
    """sid -> engine.io sid of every Socket.IO session on the default namespace."""
    return dict(server.manager.rooms.get("/", {}).get(None, {}) or {})


def sweep_handshakes(server, timeout_s, now=None):
    """Close engine.io connections that have not completed the Socket.IO CONNECT within `timeout_s`."""
    now = time.monotonic() if now is None else now
    with_session = set(_connected(server).values())
    open_eio = set(server.eio.sockets)
    closed = 0
    for eio_sid in list(_pending):
        if eio_sid not in open_eio or eio_sid in with_session:
            _pending.pop(eio_sid, None)
            _anonymous_faults.pop(eio_sid, None)
    for eio_sid in open_eio - with_session:
        first_seen = _pending.setdefault(eio_sid, now)
        if now - first_seen >= timeout_s:
            _pending.pop(eio_sid, None)
            _anonymous_faults.pop(eio_sid, None)
            close_transport(server, eio_sid)
            closed += 1
    if closed:
        global handshake_timeouts
        handshake_timeouts += closed
        log.info("closed %d connection(s) that did not authenticate within %.0f s", closed, timeout_s)
    return closed


def close_transport(server, eio_sid):
    """Close an engine.io connection without waiting for its send queue to drain.

    engine.io's own disconnect waits for the queue; a client that stopped reading never drains
    it, and the sweeper that called it stopped for good (every later sweep with it)."""
    socket = server.eio.sockets.get(eio_sid)
    if socket is not None:
        try:
            socket.close(wait=False, abort=True)
        except Exception:  # already closing: nothing left to do
            pass


def sweep_sessions(server):
    """Disconnect sockets whose token expired or was revoked, whose account was disabled or changed
    role, or that have no session record at all. Returns how many were disconnected."""
    connected = _connected(server)
    for sid in [sid for sid in clients if sid not in connected]:
        clients.pop(sid, None)  # a disconnect we did not hear about
    now = time.time()
    doomed = {sid: "no_session" for sid in connected if sid not in clients}
    for sid, client in list(clients.items()):
        claims = client["claims"]
        if claims["exp"] < now:
            doomed[sid] = "token_expired"
        elif auth.is_revoked(claims):
            doomed[sid] = "token_revoked"
    accounts = _accounts({c["user_id"] for sid, c in clients.items() if sid not in doomed})
    for sid, client in list(clients.items()):
        account = accounts.get(client["user_id"])
        if sid in doomed or account is None:
            continue
        if not account.get("active", True):
            doomed[sid] = "user_inactive"
        elif account["role"] != client["role"]:
            doomed[sid] = "role_changed"  # reconnecting gives the new role's rooms
    for sid, reason in doomed.items():
        clients.pop(sid, None)
        server.disconnect(sid)
        sessions_ended[reason] += 1
    return len(doomed)


def _accounts(user_ids):
    """user_id -> {role, active} for the given users (one query); missing users map to inactive."""
    if not user_ids:
        return {}
    found = {str(doc["_id"]): doc for doc in users.access_of(get_db(), user_ids)}
    return {uid: found.get(uid, {"role": None, "active": False}) for uid in user_ids}


def stats():
    """For /api/health: sockets waiting to authenticate, sessions ended, client faults."""
    return {"pending_handshakes": len(_pending), "sessions_ended": dict(sessions_ended),
            "handshake_timeouts_total": handshake_timeouts, "client_faults": dict(faults_total)}


def start_sweeper(app):
    """Sweep handshakes every second and sessions every SESSION_SWEEP_S, in this process, for ever."""
    server = socketio.server
    handshake_timeout = app.config["SOCKET_CONNECT_TIMEOUT_S"]
    session_every = max(0.2, app.config["SESSION_SWEEP_S"])
    tick = min(1.0, session_every, handshake_timeout / 2)
    state = {"next_session_sweep": 0.0}

    def loop():
        while True:
            socketio.sleep(tick)
            try:
                sweep_handshakes(server, handshake_timeout)
                if time.monotonic() >= state["next_session_sweep"]:
                    state["next_session_sweep"] = time.monotonic() + session_every
                    with app.app_context():
                        sweep_sessions(server)
            except UNAVAILABLE_ERRORS:
                pass  # MongoDB down: the outage is logged where requests see it; sweep again next tick
            except Exception:
                log.exception("session sweep failed")

    return socketio.start_background_task(loop)
