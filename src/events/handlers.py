"""Socket.IO handlers for the default namespace. Thin: validate, make one call, ack."""
import functools
import logging
import threading
import time

from flask import current_app, request
from flask_socketio import ConnectionRefusedError, join_room, leave_room, rooms
from marshmallow import ValidationError

from src import auth
from src.errors import ApiError, error_body
from src.realtime import broadcast, metrics, seam
from src.realtime import rooms as room_names
from src.extensions import socketio
from src.schemas.common import isoformat_z, now_utc
from src.schemas.events import EmptySchema, RealTimeRequestSchema, RoomSchema, SubscribeAlertsSchema
from src.services import realtime

log = logging.getLogger(__name__)

# Per-connection state of this process: who is connected, and their event budget.
clients = {}
# Set around each event by `install_ack_probe`: did the client ask for an ack?
_event_context = threading.local()


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


def install_ack_probe(server):
    """Record, per event, whether the client passed an ack callback (python-socketio hides it)."""
    original = server._handle_event_internal
    if getattr(original, "_citypulse_probe", False):
        return

    def probed(srv, sid, eio_sid, data, namespace, id):
        _event_context.ack_requested = id is not None
        try:
            return original(srv, sid, eio_sid, data, namespace, id)
        finally:
            _event_context.ack_requested = False

    probed._citypulse_probe = True
    server._handle_event_internal = probed


def _fail(event, error, message, errors=None):
    body = dict(error_body(0, message, error, errors), ok=False, event=event)
    if not getattr(_event_context, "ack_requested", False):
        broadcast.emit_error(body)
    return body


def client_event(name, schema_class=EmptySchema):
    """Register a client event: throttle, validate with `schema_class`, run, ack {ok: ...}."""

    def decorator(func):
        @functools.wraps(func)
        def handler(payload=None, *extra):
            client = clients.get(request.sid)
            if client is None:
                return _fail(name, "unauthorized", "Not authenticated")
            if client["claims"]["exp"] < time.time():
                socketio.start_background_task(_disconnect_soon, request.sid)  # after this ack is sent
                return _fail(name, "token_expired", "Your token expired; reconnect with a fresh one")
            if not client["bucket"].take():
                metrics.refused_events.add()
                return _fail(name, "rate_limited", "Too many events; this one was dropped")
            try:
                data = schema_class().load(payload if payload is not None else {})
            except ValidationError as exc:
                messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
                return _fail(name, "validation_error", "Invalid payload", messages)
            except Exception:  # a payload that is not an object at all
                return _fail(name, "validation_error", "Payload must be a JSON object")
            try:
                result = func(client, data)
            except ApiError as exc:
                return _fail(name, exc.error, exc.message, exc.errors)
            except Exception:
                log.exception("socket event %s failed", name)
                return _fail(name, "internal_error", "The server could not handle this event")
            return dict(result or {}, ok=True)

        socketio.on_event(name, handler)
        return handler

    return decorator


@socketio.on("connect")
def on_connect(auth_payload=None):
    """Authenticate with auth={token} or ?token=, join the private user room, say hello."""
    try:
        claims = auth.socket_identity(auth_payload, request.args.get("token"))
        user = auth.load_user(claims)
    except auth.AuthError as exc:
        raise ConnectionRefusedError(exc.message, {"error": exc.error})
    except Exception:
        log.exception("socket connect failed")
        raise ConnectionRefusedError("The server could not authenticate you", {"error": "internal_error"})
    config = current_app.config
    clients[request.sid] = {
        "user_id": str(user["_id"]), "role": user["role"], "email": user["email"], "claims": claims,
        "bucket": TokenBucket(config["SOCKET_EVENTS_PER_SECOND"], config["SOCKET_EVENTS_BURST"]),
        "subscription": None,
    }
    join_room(room_names.user_room(user["_id"]))
    broadcast.emit_connected({
        "sid": request.sid,
        "user": {"id": str(user["_id"]), "email": user["email"], "role": user["role"]},
        "rooms": room_names.available_rooms(user["role"]),
        "server_time": isoformat_z(now_utc()),
    })


@socketio.on("disconnect")
def on_disconnect(*args):
    """Forget the connection's state."""
    clients.pop(request.sid, None)
    seam.guards.close(request.sid)


@client_event("join_room", RoomSchema)
def on_join_room(client, data):
    """Join a module, system, admin or sensor room."""
    refusal = room_names.check_joinable(data["room"], client["role"])
    if refusal == "forbidden":
        raise ApiError(f"You may not join {data['room']}", status=403, error="forbidden")
    if refusal:
        raise ApiError(f"Unknown room {data['room']}", status=404, error="unknown_room")
    join_room(data["room"])
    return {"room": data["room"]}


@client_event("leave_room", RoomSchema)
def on_leave_room(client, data):
    """Leave a room joined with join_room."""
    if room_names.check_joinable(data["room"], client["role"]) is not None:
        raise ApiError(f"Not a room you can leave: {data['room']}", status=404, error="unknown_room")
    was_member = data["room"] in rooms()
    leave_room(data["room"])
    return {"room": data["room"], "was_member": was_member}


def _set_alert_rooms(wanted):
    current = {room for room in rooms() if room_names.is_alert_room(room)}
    for room in current - set(wanted):
        leave_room(room)
    for room in set(wanted) - current:
        join_room(room)


@client_event("subscribe_alerts", SubscribeAlertsSchema)
def on_subscribe_alerts(client, data):
    """Replace the alert subscription; with `since`, replay missed alerts first."""
    modules, severities = data["modules"], data["severity_levels"]
    wanted = room_names.alert_rooms(modules, severities)
    since = realtime.resolve_since(data["since"]) if data["since"] is not None else None  # may refuse: rooms untouched
    if since is not None:
        seam.guards.open(request.sid)  # before joining: live copies from now on are tracked
    _set_alert_rooms(wanted)
    client["subscription"] = {"modules": modules or list(room_names.MODULES),
                              "severity_levels": severities or list(room_names.SEVERITIES)}
    result = {"subscription": client["subscription"], "rooms": len(wanted)}
    if since is not None:
        result.update(realtime.replay_missed(request.sid, modules, severities, since))
    return result


@client_event("unsubscribe_alerts")
def on_unsubscribe_alerts(client, data):
    """Stop receiving alerts."""
    _set_alert_rooms([])
    client["subscription"] = None
    seam.guards.close(request.sid)
    return {"subscription": None}


@client_event("request_real_time_data", RealTimeRequestSchema)
def on_request_real_time_data(client, data):
    """Latest reading per sensor for a module (or all), from the cache."""
    snapshot = realtime.latest_snapshot(data["data_type"])
    if not getattr(_event_context, "ack_requested", False):
        broadcast.emit_real_time_data(snapshot)
    return snapshot


def _disconnect_soon(sid):
    socketio.sleep(0.2)
    clients.pop(sid, None)
    socketio.server.disconnect(sid)


def disconnect_stale_sessions(check_revocation=True):
    """Disconnect clients whose token expired or was revoked (logout, password change) since they joined."""
    now = time.time()
    dropped = 0
    for sid, client in list(clients.items()):
        claims = client["claims"]
        if claims["exp"] < now or (check_revocation and auth.is_revoked(claims)):
            socketio.server.disconnect(sid)
            clients.pop(sid, None)
            dropped += 1
    return dropped
