"""The only module that emits. Services and jobs call these; nothing else calls socketio.emit.

Payloads are converted to JSON-ready dicts once here; the client manager encodes each
packet once per emit, whatever the number of recipients.
"""
from flask_socketio import emit as emit_in_context

from src.realtime import metrics, rooms
from src.realtime.wire import to_wire
from src.extensions import socketio


def _emit(event, payload, to):
    socketio.emit(event, payload, to=to)
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


def alert_payload(alert, **extra):
    """The public shape of an alert event."""
    payload = {
        "id": alert["_id"], "module": alert["module"], "severity": alert["severity"], "type": alert["type"],
        "message": alert["message"], "sensor_id": alert.get("sensor_id"), "value": alert.get("value"),
        "threshold": alert.get("threshold"), "status": alert["status"], "created_at": alert["created_at"],
        "raised_at": alert.get("raised_at", alert["created_at"]), "rule_id": alert.get("rule_id"),
        "count": alert.get("count", 1), "district": alert.get("district"),
    }
    payload.update(extra)
    return to_wire(payload)


def emit_alert(alert, escalated=False):
    """`<module>_alert` to exactly the subscribers whose filter matches module and severity."""
    payload = alert_payload(alert, escalated=escalated)
    _emit(f"{alert['module']}_alert", payload, rooms.alert_room(alert["module"], alert["severity"]))


def emit_replayed_alert(sid, alert):
    """A stored alert replayed to one client after `subscribe_alerts` with `since`."""
    payload = alert_payload(alert, replayed=True)
    _emit(f"{alert['module']}_alert", payload, sid)


def emit_alert_updated(alert, change):
    """`alert_updated` (acknowledged, resolved, escalated...) to the alert's subscribers."""
    payload = alert_payload(alert, change=change, acknowledged_by=alert.get("acknowledged_by"),
                            acknowledged_at=alert.get("acknowledged_at"), resolved_by=alert.get("resolved_by"),
                            resolved_at=alert.get("resolved_at"), note=alert.get("note"))
    # Everyone who saw the alert at some severity hears how it ends, not only today's severity.
    severities = {alert["severity"]} | {step.get("from") for step in alert.get("severity_history") or []}
    _emit("alert_updated", payload, [rooms.alert_room(alert["module"], s) for s in sorted(severities) if s])


def emit_task_status(owner_id, status):
    """`task_status` to the task owner's private room."""
    _emit("task_status", to_wire(status), rooms.user_room(owner_id))


def emit_system(stats):
    """`system_update` to the system room."""
    _emit("system_update", to_wire(stats), rooms.SYSTEM)


def emit_public_alert(alert):
    """`public_alert` to every connected client (emergency broadcasts)."""
    socketio.emit("public_alert", to_wire(alert))
    metrics.record_emit("public_alert")
