"""/api/alerts: the alert list, one alert, acknowledge and resolve."""
from flask.views import MethodView
from src.routes.blueprint import Blueprint

from src import auth
from src.auth import auth_required, roles_required
from src.errors import ApiError
from src.schemas.alerts import (AlertActionSchema, AlertArgs, AlertPageSchema, AlertSchema, RuleArgs,
                                RuleCreateSchema, RulePageSchema, RuleSchema, RuleUpdateSchema)
from src.services import alert_lifecycle, alert_queries, alert_rules

blp = Blueprint("alerts", __name__, url_prefix="/api/alerts", description="Alerts and their lifecycle")


@blp.route("")
@auth_required
@blp.arguments(AlertArgs, location="query", as_kwargs=True)
@blp.response(200, AlertPageSchema)
def list_alerts(**args):
    """Alerts filtered by module, severity, status (or `open`), sensor, district and time."""
    return alert_queries.page(**args)


@blp.route("/rules")
class Rules(MethodView):
    @auth_required
    @blp.arguments(RuleArgs, location="query", as_kwargs=True)
    @blp.response(200, RulePageSchema)
    def get(self, **args):
        """Alert rules, optionally by module or enabled state."""
        return alert_rules.list_rules(**args)

    @roles_required("admin")
    @blp.arguments(RuleCreateSchema)
    @blp.response(201, RuleSchema)
    def post(self, body):
        """Create an alert rule (admin)."""
        return alert_rules.create_rule(body)


@blp.route("/rules/<rule_id>")
class Rule(MethodView):
    @auth_required
    @blp.response(200, RuleSchema)
    def get(self, rule_id):
        """One alert rule."""
        return alert_rules.get_rule(rule_id)

    @roles_required("admin")
    @blp.arguments(RuleUpdateSchema)
    @blp.response(200, RuleSchema)
    def patch(self, body, rule_id):
        """Update a rule's name, message, levels or enabled flag (admin)."""
        return alert_rules.update_rule(rule_id, body)

    @roles_required("admin")
    @blp.response(204)
    def delete(self, rule_id):
        """Delete a custom rule (admin); built-in rules can only be disabled."""
        alert_rules.delete_rule(rule_id)


@blp.route("/<alert_id>")
@auth_required
@blp.response(200, AlertSchema)
def get_alert(alert_id):
    """One alert."""
    alert = alert_queries.get(alert_id)
    if alert is None:
        raise ApiError("Alert not found", status=404)
    return alert


@blp.route("/<alert_id>/acknowledge", methods=["POST"])
@roles_required("operator", "admin")
@blp.arguments(AlertActionSchema)
@blp.response(200, AlertSchema)
def acknowledge(body, alert_id):
    """Acknowledge an active alert, with an optional note; emits alert_updated."""
    return alert_lifecycle.acknowledge(alert_id, auth.current_user(), body["note"])


@blp.route("/<alert_id>/resolve", methods=["POST"])
@roles_required("operator", "admin")
@blp.arguments(AlertActionSchema)
@blp.response(200, AlertSchema)
def resolve(body, alert_id):
    """Resolve an open alert, with an optional note; emits alert_updated."""
    return alert_lifecycle.resolve(alert_id, auth.current_user(), body["note"])
