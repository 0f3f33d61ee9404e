"""/api/alerts: the alert list, one alert, acknowledge and resolve."""
from flask_smorest import Blueprint

from src import auth
from src.auth import auth_required, roles_required
from src.errors import ApiError
from src.schemas.alerts import AlertActionSchema, AlertArgs, AlertPageSchema, AlertSchema
from src.services import alert_queries, alert_lifecycle

blp = Blueprint("alerts", __name__, url_prefix="/api/alerts", description="Alerts and their lifecycle")


@blp.route("")
@auth_required
@blp.arguments(AlertArgs, location="query", as_kwargs=True)
@blp.response(200, AlertPageSchema)
def list_alerts(**args):
    """Alerts filtered by module, severity, status (or `open`), sensor, district and time."""
    return alert_queries.page(**args)


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
