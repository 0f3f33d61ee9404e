"""The sweeper: it keeps this process's socket sessions (src/realtime/sessions.py) honest.

The sweeper walks what the Socket.IO server says is connected, never a table a client could
clear: every connected sid must have a live session here (valid token, active account, same
role), and every engine.io connection must finish the Socket.IO CONNECT within
SOCKET_CONNECT_TIMEOUT_S. Anything else is disconnected.
"""
import logging
import time
from collections import Counter
from datetime import datetime, timezone

from src import auth, http_server
from src.db import get_db
from src.errors import UNAVAILABLE_ERRORS
from src.extensions import socketio
from src.models import users
from src.domain import isoformat_z
from src.realtime import broadcast, sessions
from src.realtime.sessions import clients, faults_total, forget_anonymous

log = logging.getLogger("citypulse.sockets")

# engine.io sid -> monotonic time it was first seen without a Socket.IO session
_pending = {}
# Totals of this process, for /api/health.
sessions_ended = Counter()  # sockets the sweeper ended, by reason
handshake_timeouts = 0  # connections closed for never authenticating


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
            forget_anonymous(eio_sid)
    for eio_sid in open_eio - with_session:
        first_seen = _pending.setdefault(eio_sid, now)
        if now - first_seen >= timeout_s:
            _pending.pop(eio_sid, None)
            forget_anonymous(eio_sid)
            close_transport(server, eio_sid)
            closed += 1
    if closed:
        global handshake_timeouts
        handshake_timeouts += closed
        log.info("closed %d connection(s) that did not authenticate within %.0f s", closed, timeout_s)
    return closed


def close_transport(server, eio_sid, shut_down=False):
    """Close an engine.io connection without waiting for its send queue to drain.

    engine.io's own disconnect waits for the queue; a client that stopped reading never drains
    it, and the sweeper that called it stopped for good (every later sweep with it). With
    `shut_down`, the TCP connection is cut at once too: a writer blocked on a client that does not
    read would otherwise hold the connection (and its `MAX_CONNECTIONS` slot) until the client left."""
    socket = server.eio.sockets.get(eio_sid)
    if socket is not None:
        try:
            socket.close(wait=False, abort=True)
        except Exception:  # already closing: nothing left to do
            pass
        if shut_down:
            http_server.abort_websocket(socket)


# Ends a client comes back from by itself: the transport closes (not the Socket.IO session), the
# official client reconnects with a fresh token from its auth callback and recovers its session
# (in the new role's rooms after a role change). The other ends are final.
RENEWABLE = {"token_expired", "role_changed"}
END_MESSAGES = {
    "token_revoked": "Your token was revoked (signed out or password changed); sign in again",
    "user_inactive": "Your account was disabled or deleted",
    "no_session": "This connection has no session",
}


def sweep_sessions(server, notice_s=60.0):
    """End sockets whose token expired or was revoked, whose account was disabled or changed role, or
    that have no session record; warn those whose token expires within `notice_s`. Returns how many ended."""
    connected = _connected(server)
    for sid in [sid for sid in clients if sid not in connected]:
        clients.pop(sid, None)  # a disconnect we did not hear about
    now = time.time()
    doomed = {sid: "no_session" for sid in connected if sid not in clients}
    # One lookup for every open session's token: one query per session stalled the event loop for
    # over a second every sweep at 10,000 sessions.
    revoked = auth.revoked_among([c["claims"] for c in clients.values() if c["claims"]["exp"] >= now])
    for sid, client in list(clients.items()):
        claims = client["claims"]
        if claims["exp"] < now:
            doomed[sid] = "token_expired"
        elif claims["jti"] in revoked:
            doomed[sid] = "token_revoked"
        elif claims["exp"] - now <= notice_s and not client["expiry_notice_sent"]:
            client["expiry_notice_sent"] = True
            broadcast.emit_token_expiring(sid, {"expires_at": isoformat_z(datetime.fromtimestamp(claims["exp"],
                                                                                                 timezone.utc)),
                                                "seconds_left": max(0, round(claims["exp"] - now))})
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
        sessions_ended[reason] += 1
        if reason in RENEWABLE:
            close_for_renewal(sid)
            continue
        if sid in clients:
            broadcast.emit_session_ended(sid, {"reason": reason, "message": END_MESSAGES[reason]})
        server.disconnect(sid)  # the disconnect handler drops the session and its recovery record
    return len(doomed)


def close_for_renewal(sid):
    """Close a session's transport, not the session: the client reconnects by itself and recovers."""
    server = socketio.server
    client = clients.get(sid)
    if client is not None:
        client["recoverable_close"] = True
    eio_sid = server.manager.eio_sid_from_sid(sid, "/")
    if eio_sid is not None:
        close_transport(server, eio_sid)


def _accounts(user_ids):
    """user_id -> {role, active} for the given users (one query); missing users map to inactive."""
    if not user_ids:
        return {}
    found = {str(doc["_id"]): doc for doc in users.access_of(get_db(), user_ids)}
    return {uid: found.get(uid, {"role": None, "active": False}) for uid in user_ids}


def stats():
    """For /api/health: sockets waiting to authenticate, sessions ended, client faults, streams."""
    streams = socketio.server.manager.streams
    return dict({"pending_handshakes": len(_pending), "sessions_ended": dict(sessions_ended),
                 "handshake_timeouts_total": handshake_timeouts, "client_faults": dict(faults_total),
                 "slow_consumers_total": sessions.slow_consumers_total},
                **(streams.stats() if streams is not None else {}))


def start_sweeper(app):
    """Sweep handshakes every second and sessions every SESSION_SWEEP_S, in this process, for ever."""
    server = socketio.server
    handshake_timeout = app.config["SOCKET_CONNECT_TIMEOUT_S"]
    session_every = max(0.2, app.config["SESSION_SWEEP_S"])
    notice_s = app.config["TOKEN_EXPIRY_NOTICE_S"]
    # Records of connected sessions are re-saved well within their TTL, for a process that dies.
    refresh_every = max(1.0, app.config["SESSION_RECOVERY_S"] / 4)
    tick = min(1.0, session_every, handshake_timeout / 2)
    state = {"next_session_sweep": 0.0, "next_refresh": 0.0}

    def loop():
        while True:
            socketio.sleep(tick)
            try:
                sweep_handshakes(server, handshake_timeout)
                if time.monotonic() >= state["next_session_sweep"]:
                    state["next_session_sweep"] = time.monotonic() + session_every
                    with app.app_context():
                        sweep_sessions(server, notice_s)
                if time.monotonic() >= state["next_refresh"]:
                    state["next_refresh"] = time.monotonic() + refresh_every
                    with app.app_context():
                        sessions.refresh_records()
            except UNAVAILABLE_ERRORS:
                pass  # MongoDB down: the outage is logged where requests see it; sweep again next tick
            except Exception:
                log.exception("session sweep failed")

    return socketio.start_background_task(loop)


def start_stream_flusher(app):
    """Send due coalesced stream frames every STREAM_TICK_S, in this process, for ever."""
    streams, tick = socketio.server.manager.streams, app.config["STREAM_TICK_S"]

    def loop():
        while True:
            socketio.sleep(tick)
            try:
                if streams.groups or streams.behind:
                    broadcast.flush_streams(streams)
            except Exception:
                log.exception("stream flush failed")

    return socketio.start_background_task(loop)
