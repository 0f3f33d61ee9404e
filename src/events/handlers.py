"""Socket.IO handlers for the default namespace. Thin: validate, make one call, ack."""
import functools
import logging
import time
from datetime import datetime, timezone

from flask import current_app, request
from flask_socketio import ConnectionRefusedError
from marshmallow import ValidationError

from src import auth
from src.errors import UNAVAILABLE_ERRORS, ApiError, error_body
from src.events import guard, sweeper
from src.realtime import broadcast, metrics, seam, sessions
from src.realtime import rooms as room_names
from src.extensions import socketio
from src.domain import MODULES, SEVERITIES, isoformat_z, now_utc
from src.schemas.events import (EmptySchema, ReauthenticateSchema, RealTimeRequestSchema, RoomSchema,
                                SubscribeAlertsSchema, SubscribeStreamSchema)
from src.services import alert_replay, city, latest

log = logging.getLogger(__name__)


def _fail(event, error, message, errors=None, fault=True):
    """The refusal ack (or `error` event without an ack); counted as a client fault."""
    if fault:
        sessions.record_fault(request.sid, error, config=current_app.config)
    body = dict(error_body(0, message, error, errors), ok=False, event=event)
    if not getattr(guard.event_context, "ack_requested", False):
        broadcast.emit_error(body)
    return body


def _admit(name):
    """The client's session if this event may run now; otherwise the refusal to send back."""
    client = sessions.clients.get(request.sid)
    if client is None:
        return None, _fail(name, "unauthorized", "Not authenticated")
    if client["claims"]["exp"] < time.time() and name != "reauthenticate":
        socketio.start_background_task(sweeper.close_for_renewal, request.sid)  # after this ack is sent
        return None, _fail(name, "token_expired", "Your token expired; send reauthenticate or reconnect with a "
                                                  "fresh one", fault=False)
    if not client["bucket"].take():
        metrics.refused_events.add()
        return None, _fail(name, "rate_limited", "Too many events; this one was dropped")
    return client, None


def client_event(name, schema_class=EmptySchema):
    """Register a client event: throttle, validate with `schema_class`, run, ack {ok: ...}."""

    def decorator(func):
        @functools.wraps(func)
        def handler(payload=None, *extra):
            client, refusal = _admit(name)
            if refusal is not None:
                return refusal
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
                return _fail(name, exc.error, exc.message, exc.errors, fault=exc.status != 503)
            except Exception:
                log.exception("socket event %s failed", name)
                return _fail(name, "internal_error", "The server could not handle this event", fault=False)
            return dict(result or {}, ok=True)

        guard.CLIENT_EVENTS.add(name)
        socketio.on_event(name, handler)
        return handler

    return decorator


@socketio.on(guard.UNKNOWN_EVENT)
def on_unknown_event(event, *payload):
    """Refuse an event that is not ours, reserved names (`connect`, `disconnect`) included."""
    client, refusal = _admit(event)
    if refusal is not None:
        return refusal
    return _fail(event, "unknown_event", f"Unknown event {event!r}")


@socketio.on("connect")
def on_connect(auth_payload=None):
    """Authenticate with auth={token} or ?token=; recover the session `pid` names, or start one; say hello."""
    if not sessions.connect_allowed(_connect_key(auth_payload), current_app.config):
        sessions.record_fault(None, "connect_rate_limited", request.sid, current_app.config)
        raise ConnectionRefusedError("Too many connection attempts; wait a few seconds",
                                     {"error": "rate_limited"})
    try:
        claims = auth.socket_identity(auth_payload, request.args.get("token"))
        user = auth.load_user(claims)
    except auth.AuthError as exc:
        sessions.record_fault(None, "connect_refused", request.sid, current_app.config)
        raise ConnectionRefusedError(exc.message, {"error": exc.error})
    except ApiError as exc:  # e.g. the database is unreachable
        raise ConnectionRefusedError(exc.message, {"error": exc.error})
    except UNAVAILABLE_ERRORS:
        raise ConnectionRefusedError("The database is unreachable; try again shortly",
                                     {"error": "database_unavailable"})
    except Exception:
        log.exception("socket connect failed")
        raise ConnectionRefusedError("The server could not authenticate you", {"error": "internal_error"})
    client = sessions.open_session(request.sid, user, claims, current_app.config, request.remote_addr,
                                   capable=sessions.reads_offsets(auth_payload))
    recovered, missed = sessions.start(request.sid, client, user, auth_payload)
    broadcast.emit_connected({
        "sid": request.sid,
        "user": {"id": str(user["_id"]), "email": user["email"], "role": user["role"]},
        "rooms": room_names.available_rooms(user["role"]),
        "server_time": isoformat_z(now_utc()),
        "token_expires_at": isoformat_z(datetime.fromtimestamp(claims["exp"], timezone.utc)),
        "recovered": recovered, "missed": missed,
        "joined": sorted(client["rooms"]), "subscription": client["subscription"],
    })


def _connect_key(auth_payload):
    """Who a connection attempt counts against: the token's user when it names one, else the address."""
    subject = auth.token_subject(auth_payload.get("token") if isinstance(auth_payload, dict) else None)
    return f"user:{subject}" if subject else f"ip:{request.remote_addr}"


@socketio.on("disconnect")
def on_disconnect(reason=None, *args):
    """Keep the session for recovery after a transport failure, forget it otherwise (only the server
    calls this: clients cannot send `disconnect`)."""
    sessions.end(request.sid, reason)
    seam.guards.close(request.sid)


@client_event("join_room", RoomSchema)
def on_join_room(client, data):
    """Join a module, system, admin or sensor room."""
    refusal = room_names.check_joinable(data["room"], client["role"])
    if refusal == "forbidden":
        raise ApiError(f"You may not join {data['room']}", status=403, error="forbidden")
    if refusal:
        raise ApiError(f"Unknown room {data['room']}", status=404, error="unknown_room")
    sessions.enter(request.sid, data["room"])
    sessions.save(request.sid)
    return {"room": data["room"]}


@client_event("leave_room", RoomSchema)
def on_leave_room(client, data):
    """Leave a room joined with join_room."""
    if room_names.check_joinable(data["room"], client["role"]) is not None:
        raise ApiError(f"Not a room you can leave: {data['room']}", status=404, error="unknown_room")
    was_member = data["room"] in client["rooms"]
    sessions.leave(request.sid, data["room"])
    sessions.save(request.sid)
    return {"room": data["room"], "was_member": was_member}


def _set_alert_rooms(client, wanted):
    current = {room for room in client["rooms"] if room_names.is_alert_room(room)}
    for room in current - set(wanted):
        sessions.leave(request.sid, room)
    for room in set(wanted) - current:
        sessions.enter(request.sid, room)


@client_event("subscribe_alerts", SubscribeAlertsSchema)
def on_subscribe_alerts(client, data):
    """Replace the alert subscription; with `since`, replay missed alerts first."""
    modules, severities = data["modules"], data["severity_levels"]
    wanted = room_names.alert_rooms(modules, severities)
    since = alert_replay.resolve_since(data["since"]) if data["since"] is not None else None  # may refuse: rooms untouched
    if since is not None:
        seam.guards.open(request.sid)  # before joining: live copies from now on are tracked
    _set_alert_rooms(client, wanted)
    client["subscription"] = {"modules": modules or list(MODULES),
                              "severity_levels": severities or list(SEVERITIES)}
    sessions.save(request.sid)
    result = {"subscription": client["subscription"], "rooms": len(wanted)}
    if since is not None:
        result.update(alert_replay.replay_missed(request.sid, modules, severities, since))
    return result


@client_event("unsubscribe_alerts")
def on_unsubscribe_alerts(client, data):
    """Stop receiving alerts."""
    _set_alert_rooms(client, [])
    client["subscription"] = None
    sessions.save(request.sid)
    seam.guards.close(request.sid)
    return {"subscription": None}


@client_event("subscribe_stream", SubscribeStreamSchema)
def on_subscribe_stream(client, data):
    """Coalesced `<module>_updates` frames every interval_ms: the latest reading of each sensor that changed."""
    unknown = sorted(set(data["districts"]) - set(city.DISTRICT_NAMES))
    if unknown:  # real sensors may name their own districts (the scan is over every sensor seen)
        unknown = sorted(set(unknown) - sessions.seen_districts())
    if unknown:
        raise ApiError("Unknown districts", status=422, error="validation_error",
                       errors={"districts": [f"Unknown district {name!r}" for name in unknown]})
    group = sessions.subscribe_stream(request.sid, data)
    sessions.save(request.sid)
    return {"stream": data, "subscribers_with_this_filter": len(group.members)}


@client_event("unsubscribe_stream")
def on_unsubscribe_stream(client, data):
    """Stop the coalesced frames."""
    sessions.unsubscribe_stream(request.sid)
    sessions.save(request.sid)
    return {"stream": None}


@client_event("request_real_time_data", RealTimeRequestSchema)
def on_request_real_time_data(client, data):
    """Latest reading per sensor for a module (or all), from the cache."""
    snapshot = latest.latest_snapshot(data["data_type"])
    if not getattr(guard.event_context, "ack_requested", False):
        broadcast.emit_real_time_data(snapshot)
    return snapshot


@client_event("reauthenticate", ReauthenticateSchema)
def on_reauthenticate(client, data):
    """Extend the session in place with a fresh access token for the same user (before or just after expiry)."""
    return sessions.renew(request.sid, auth.renewal_claims(data["token"], client["user_id"]))
