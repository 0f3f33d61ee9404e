"""Alert rule management (admin)."""
from flask import current_app
from pymongo.errors import DuplicateKeyError

from src.db import get_db
from src.errors import ApiError
from src.realtime import broadcast
from src.schemas.alerts import alert_wire
from src.models import alert_rules, alerts


def _invalidate():
    # Other processes pick the change up within ingest.RULES_REFRESH_S.
    current_app.extensions["rule_cache"].invalidate()


def list_rules(limit=50, offset=0, sort=None, module=None, enabled=None):
    return alert_rules.list_page(get_db(), module=module, enabled=enabled, limit=limit, offset=offset)


def get_rule(rule_id):
    rule = alert_rules.get(get_db(), rule_id)
    if rule is None:
        raise ApiError(f"Rule {rule_id} not found", status=404)
    return rule


def create_rule(data):
    """Store a new rule; its id defaults to <module>.<metric>.<n>."""
    db = get_db()
    rule_id = data.pop("id", None)
    if rule_id is None:
        n = 1
        while alert_rules.get(db, f"{data['module']}.{data['metric']}.{n}"):
            n += 1
        rule_id = f"{data['module']}.{data['metric']}.{n}"
    try:
        rule = alert_rules.create(db, dict(data, _id=rule_id))
    except DuplicateKeyError:
        raise ApiError(f"Rule {rule_id} already exists", status=409, errors={"id": ["already exists"]})
    _invalidate()
    return rule


def update_rule(rule_id, changes):
    """Change a rule; disabling it resolves its open alerts (nothing would ever resolve them)."""
    rule = alert_rules.update(get_db(), rule_id, changes) if changes else get_rule(rule_id)
    if rule is None:
        raise ApiError(f"Rule {rule_id} not found", status=404)
    if changes.get("enabled") is False:
        _resolve_open(rule_id, "rule disabled")
    _invalidate()
    return rule


def _resolve_open(rule_id, note):
    for alert in alerts.resolve_open_for_rule(get_db(), rule_id, by="system", note=note):
        current_app.extensions["open_alerts"].discard(alerts.open_key(alert.get("sensor_id"), rule_id))
        broadcast.emit_alert_updated(alert_wire(alert), "resolved")


def delete_rule(rule_id):
    """Delete a custom rule; built-in rules can only be disabled."""
    rule = get_rule(rule_id)
    if rule.get("builtin"):
        raise ApiError("Built-in rules cannot be deleted; disable them instead", status=409, error="builtin_rule")
    alert_rules.delete(get_db(), rule_id)
    _resolve_open(rule_id, "rule deleted")
    _invalidate()
