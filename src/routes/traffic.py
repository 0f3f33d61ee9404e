"""/api/traffic: readings, incidents, signal timing and routes."""
from flask.views import MethodView
from src.routes.blueprint import Blueprint

from src import auth
from src.auth import auth_required, roles_required
from src.routes.reading_views import add_reading_routes
from src.schemas.traffic import (
    SignalArgs,
    SignalPlansSchema,
    TrafficIncidentArgs,
    TrafficIncidentCreateSchema,
    TrafficIncidentPageSchema,
    TrafficIncidentSchema,
    TrafficIncidentUpdateSchema,
    TrafficRouteRequestSchema,
    TrafficRouteSchema,
)
from src.services import traffic

blp = Blueprint("traffic", __name__, url_prefix="/api/traffic", description="Traffic sensors and operations")
add_reading_routes(blp, "traffic")


@blp.route("/incidents")
class Incidents(MethodView):
    @auth_required
    @blp.arguments(TrafficIncidentArgs, location="query", as_kwargs=True)
    @blp.response(200, TrafficIncidentPageSchema)
    def get(self, **args):
        """Traffic incidents filtered by status, district, severity, type and reported time."""
        return traffic.list_incidents(**args)

    @roles_required("operator", "admin")
    @blp.arguments(TrafficIncidentCreateSchema)
    @blp.response(201, TrafficIncidentSchema)
    def post(self, body):
        """Report a traffic incident; high/critical ones raise a traffic alert."""
        return traffic.create_incident(body, auth.current_user(), source="api")


@blp.route("/incidents/<incident_id>")
class Incident(MethodView):
    @auth_required
    @blp.response(200, TrafficIncidentSchema)
    def get(self, incident_id):
        """One traffic incident."""
        return traffic.get_incident(incident_id)

    @roles_required("operator", "admin")
    @blp.arguments(TrafficIncidentUpdateSchema)
    @blp.response(200, TrafficIncidentSchema)
    def patch(self, body, incident_id):
        """Move an incident along reported -> responding -> cleared (409 otherwise)."""
        return traffic.update_incident(incident_id, body, auth.current_user())


@blp.route("/optimization/signals")
@auth_required
@blp.arguments(SignalArgs, location="query", as_kwargs=True)
@blp.response(200, SignalPlansSchema)
def signal_plans(**args):
    """Webster signal timings per intersection from the latest flows (vehicle_count x 60 veh/h)."""
    return traffic.signal_timings(**args)


@blp.route("/optimization/routes", methods=["POST"])
@auth_required  # a POST only because the query is a body; it changes nothing, so viewers may plan too
@blp.arguments(TrafficRouteRequestSchema)
@blp.response(200, TrafficRouteSchema)
def plan_route(body):
    """Fastest route (A*) between two points or intersections under current congestion."""
    return traffic.plan_route(body["origin"], body["destination"])
