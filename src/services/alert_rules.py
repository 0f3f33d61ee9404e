"""Alert rule management (admin)."""
from flask import current_app
from pymongo.errors import DuplicateKeyError

from src.db import get_db
from src.errors import ApiError
from src.models import alert_rules


def _invalidate():
    # Other processes pick the change up within ingest.RULES_REFRESH_S.
    current_app.extensions["rule_cache"].invalidate()


def list_rules(limit=50, offset=0, sort=None, module=None, enabled=None):
    return dict(alert_rules.list_page(get_db(), module=module, enabled=enabled, limit=limit, offset=offset),
                limit=limit, offset=offset)


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
    rule = alert_rules.update(get_db(), rule_id, changes) if changes else get_rule(rule_id)
    if rule is None:
        raise ApiError(f"Rule {rule_id} not found", status=404)
    _invalidate()
    return rule


def delete_rule(rule_id):
    """Delete a custom rule; built-in rules can only be disabled."""
    rule = get_rule(rule_id)
    if rule.get("builtin"):
        raise ApiError("Built-in rules cannot be deleted; disable them instead", status=409, error="builtin_rule")
    alert_rules.delete(get_db(), rule_id)
    _invalidate()
