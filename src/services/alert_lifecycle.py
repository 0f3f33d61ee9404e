"""Operator actions on alerts: acknowledge and resolve, recorded and broadcast."""
from src.db import get_db
from src.domain import actor
from src.errors import ApiError
from src.realtime import broadcast
from src.schemas.alerts import alert_wire
from src.models import alerts
from src.services.ingest import open_alert_index


def acknowledge(alert_id, user, note=None):
    """Mark an active alert acknowledged by `user`; 404 if missing, 409 if not active."""
    updated = alerts.acknowledge(get_db(), alert_id, actor(user), note)
    if updated is None:
        _refuse(alert_id, "acknowledged")
    broadcast.emit_alert_updated(alert_wire(updated), "acknowledged")
    return updated


def resolve(alert_id, user, note=None):
    """Resolve an open alert by `user`; 404 if missing, 409 if already resolved."""
    updated = alerts.resolve(get_db(), alert_id, actor(user), note)
    if updated is None:
        _refuse(alert_id, "resolved")
    open_alert_index().discard(alerts.open_key(updated.get("sensor_id"), updated.get("rule_id")))
    broadcast.emit_alert_updated(alert_wire(updated), "resolved")
    return updated


def _refuse(alert_id, action):
    current = alerts.get(get_db(), alert_id)
    if current is None:
        raise ApiError("Alert not found", status=404)
    raise ApiError(f"Alert is {current['status']}; it cannot be {action}", status=409, error="invalid_state")
