"""The only module that emits. Services and jobs call these; nothing else calls socketio.emit.

Payloads are converted to JSON-ready dicts once here; the client manager encodes each
packet once per emit, whatever the number of recipients.
"""
from engineio import packet as eio_packet
from flask_socketio import emit as emit_in_context
from socketio import packet

from src.realtime import metrics, rooms
from src.realtime.wire import to_wire
from src.extensions import socketio


# A batch's events are queued for every client before any is written; yielding every so often lets
# each connection's writer drain its queue, so a healthy client's backlog stays small and only a
# client that does not read reaches SOCKET_MAX_BACKLOG.
YIELD_EVERY = 25


def let_writers_drain():
    socketio.sleep(0)


def _emit(event, payload, to):
    """To rooms: once for the plain rooms, and once, logged with an offset, for the recovery twins."""
    socketio.emit(event, payload, to=to)
    manager = socketio.server.manager
    if manager.recovery is not None and manager.recovery.enabled:
        targets = [to] if isinstance(to, str) else list(to)
        manager.publish_logged(event, payload, targets, [rooms.recovery_twin(room) for room in targets])
    metrics.record_emit(event)


def _send(event, payload, sid):
    """To one client: not logged and without an offset (replies, notices, replays)."""
    socketio.emit(event, payload, to=sid)
    metrics.record_emit(event)


def deliver_missed(sid, event, data):
    """A logged packet `(payload, offset)` that a recovering session missed, from this process only."""
    socketio.server.manager.deliver_locally(event, data, sid)
    metrics.record_emit(event)


def _reply(event, payload):
    """To the client whose event (or connect) is being handled."""
    emit_in_context(event, payload)
    metrics.record_emit(event)


def emit_connected(payload):
    """`connected`, to a client that just authenticated."""
    _reply("connected", payload)


def emit_error(payload):
    """`error`, to a client whose event failed and that gave no ack callback."""
    _reply("error", payload)


def emit_real_time_data(payload):
    """`real_time_data`, the snapshot for a client that gave no ack callback."""
    _reply("real_time_data", payload)


def reading_payload(module, reading):
    return to_wire(dict(reading, module=module))


def emit_reading(module, reading):
    """`<module>_update` to the module room and the sensor's room (a client in both gets one)."""
    payload = reading_payload(module, reading)
    _emit(f"{module}_update", payload, [rooms.module_room(module), rooms.sensor_room(reading["sensor_id"])])


# Alerts and tasks arrive already dumped by their schema (schemas.alerts.alert_wire, schemas.tasks.task_wire),
# the same shape REST returns; an event adds only its own extras on top.

def emit_alert(alert, escalated=False):
    """`<module>_alert` (adds `escalated`) to exactly the subscribers whose filter matches module and severity."""
    payload = to_wire(dict(alert, escalated=escalated))
    _emit(f"{alert['module']}_alert", payload, rooms.alert_room(alert["module"], alert["severity"]))


def emit_replayed_alert(sid, alert):
    """A stored alert (adds `replayed: true`) replayed to one client after `subscribe_alerts` with `since`."""
    payload = to_wire(dict(alert, replayed=True))
    _send(f"{alert['module']}_alert", payload, sid)


def emit_alert_updated(alert, change):
    """`alert_updated` (adds `change`: acknowledged, resolved, deescalated) to the alert's subscribers."""
    payload = to_wire(dict(alert, change=change))
    # Everyone who saw the alert at some severity hears how it ends, not only today's severity.
    severities = {alert["severity"]} | {step.get("from") for step in alert.get("severity_history") or []}
    _emit("alert_updated", payload, [rooms.alert_room(alert["module"], s) for s in sorted(severities) if s])


def emit_task_status(owner_id, task):
    """`task_status` (the dumped task, no extras) to the task owner's private room."""
    _emit("task_status", to_wire(task), rooms.user_room(owner_id))


def emit_system(stats):
    """`system_update` to the system room."""
    _emit("system_update", to_wire(stats), rooms.SYSTEM)


def emit_public_alert(alert):
    """`public_alert` to every connected client (emergency broadcasts)."""
    _emit("public_alert", to_wire(alert), rooms.EVERYONE)


def emit_token_expiring(sid, payload):
    """`token_expiring` {expires_at, seconds_left}: send `reauthenticate` with a fresh token before then."""
    _send("token_expiring", payload, sid)


def emit_session_ended(sid, payload):
    """`session_ended` {reason, message}, just before the server ends a session for good."""
    _send("session_ended", payload, sid)


# Coalesced streams and backpressure

def backlog(sid):
    """Packets queued for a session and not yet written to its connection."""
    server = socketio.server
    socket = server.eio.sockets.get(server.manager.eio_sid_from_sid(sid, "/"))
    return socket.queue.qsize() if socket is not None else 0


def flush_streams(streams):
    """Send every due `<module>_updates` frame to its group (one encode per frame); skip sessions
    that are behind, and send them one catch-up frame once their backlog has drained."""
    manager = socketio.server.manager
    for room, event, frame, members in streams.due_frames():
        skip = [sid for sid in members if streams.is_behind(sid) or backlog(sid) > streams.max_backlog]
        for sid in skip:
            streams.fall_behind(sid, frame)
        manager.deliver_locally(event, frame, room, skip_sid=skip or None)
        metrics.record_emit(event)
    for sid in list(streams.behind):
        if backlog(sid) <= streams.max_backlog // 2:
            send_stream_catch_up(streams, sid)


def send_stream_catch_up(streams, sid, since=None):
    """The latest reading of each sensor a stream session missed, as `<module>_updates` frames."""
    for event, frame in streams.catch_up(sid, since):
        socketio.server.manager.deliver_locally(event, frame, sid)
        metrics.record_emit(event)


def emit_slow_consumer(eio_sid, payload, deliver):
    """`slow_consumer` {reason, backlog, limit}, past the backlog bound, just before the connection closes.

    Written with `deliver` (the unchecked send): the bound refuses everything else for this client."""
    server = socketio.server
    encoded = server.packet_class(packet.EVENT, namespace="/", data=["slow_consumer", payload]).encode()
    deliver(eio_sid, eio_packet.Packet(eio_packet.MESSAGE, encoded))
    metrics.record_emit("slow_consumer")
