"""/api/emergency: incidents, units, dispatch and public broadcasts."""
from flask.views import MethodView
from src.routes.blueprint import Blueprint

from src import auth
from src.auth import auth_required, roles_required
from src.schemas.emergency import (
    DispatchNearestSchema,
    DispatchResultSchema,
    DispatchSchema,
    EmergencyCoverageSchema,
    EmergencyIncidentArgs,
    EmergencyIncidentCreateSchema,
    EmergencyIncidentPageSchema,
    EmergencyIncidentSchema,
    EmergencyIncidentUpdateSchema,
    EmergencyStatisticsArgs,
    EmergencyStatisticsSchema,
    PublicAlertArgs,
    PublicAlertCreateSchema,
    PublicAlertPageSchema,
    PublicAlertSchema,
    UnitArgs,
    UnitPageSchema,
    UnitSchema,
)
from src.services import emergency

blp = Blueprint("emergency", __name__, url_prefix="/api/emergency", description="Emergency response")


@blp.route("/units")
@auth_required
@blp.arguments(UnitArgs, location="query", as_kwargs=True)
@blp.response(200, UnitPageSchema)
def list_units(**args):
    """Emergency units filtered by kind, status and district."""
    return emergency.list_units(**args)


@blp.route("/units/<unit_id>")
@auth_required
@blp.response(200, UnitSchema)
def get_unit(unit_id):
    """One emergency unit."""
    return emergency.get_unit(unit_id)


@blp.route("/units/<unit_id>/dispatch", methods=["POST"])
@roles_required("operator", "admin")
@blp.arguments(DispatchSchema)
@blp.response(200, DispatchResultSchema)
def dispatch_unit(body, unit_id):
    """Dispatch an available unit to an incident (409 if the unit is busy); emits emergency_alert."""
    return emergency.dispatch(unit_id, body["incident_id"], auth.current_user())


@blp.route("/incidents")
class Incidents(MethodView):
    @auth_required
    @blp.arguments(EmergencyIncidentArgs, location="query", as_kwargs=True)
    @blp.response(200, EmergencyIncidentPageSchema)
    def get(self, **args):
        """Emergency incidents filtered by status, type, severity, district and reported time."""
        return emergency.list_incidents(**args)

    @roles_required("operator", "admin")
    @blp.arguments(EmergencyIncidentCreateSchema)
    @blp.response(201, EmergencyIncidentSchema)
    def post(self, body):
        """Report an emergency incident; raises and emits an emergency alert."""
        return emergency.create_incident(body, auth.current_user(), source="api")


@blp.route("/incidents/<incident_id>")
class Incident(MethodView):
    @auth_required
    @blp.response(200, EmergencyIncidentSchema)
    def get(self, incident_id):
        """One emergency incident."""
        return emergency.get_incident(incident_id)

    @roles_required("operator", "admin")
    @blp.arguments(EmergencyIncidentUpdateSchema)
    @blp.response(200, EmergencyIncidentSchema)
    def patch(self, body, incident_id):
        """Change an incident's status (valid transitions only; 409 otherwise)."""
        return emergency.update_incident(incident_id, body, auth.current_user())


@blp.route("/incidents/<incident_id>/dispatch-nearest", methods=["POST"])
@roles_required("operator", "admin")
@blp.arguments(DispatchNearestSchema)
@blp.response(200, DispatchResultSchema)
def dispatch_nearest(body, incident_id):
    """Dispatch the nearest available unit of the kind the incident needs (or of `kind`)."""
    return emergency.dispatch_nearest(incident_id, body.get("kind"), auth.current_user())


@blp.route("/alerts/broadcast")
class PublicAlerts(MethodView):
    @auth_required
    @blp.arguments(PublicAlertArgs, location="query", as_kwargs=True)
    @blp.response(200, PublicAlertPageSchema)
    def get(self, **args):
        """Public alerts broadcast so far, newest first."""
        return emergency.list_public_alerts(**args)

    @roles_required("operator", "admin")
    @blp.arguments(PublicAlertCreateSchema)
    @blp.response(201, PublicAlertSchema)
    def post(self, body):
        """Broadcast a public alert to every connected client (public_alert event)."""
        return emergency.broadcast_public_alert(body, auth.current_user())


@blp.route("/coverage")
@auth_required
@blp.response(200, EmergencyCoverageSchema)
def coverage():
    """Nearest available unit of each kind to every district centre, with distance and ETA."""
    return emergency.coverage_analysis()


@blp.route("/statistics")
@auth_required
@blp.arguments(EmergencyStatisticsArgs, location="query", as_kwargs=True)
@blp.response(200, EmergencyStatisticsSchema)
def statistics(**args):
    """Incident counts by status and response times of resolved incidents reported in a range."""
    return emergency.statistics(**args)
