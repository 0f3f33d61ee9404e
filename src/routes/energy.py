"""/api/energy: grid readings, consumption, renewables and load balancing."""
from flask.views import MethodView
from src.routes.blueprint import Blueprint

from src.auth import auth_required, roles_required
from src.routes.reading_views import add_reading_routes
from src.schemas.energy import (ConsumptionArgs, ConsumptionSchema, GridArgs, GridCreateSchema, GridPageSchema,
                                GridSchema, LoadBalancingArgs, LoadBalancingSchema, RenewableSchema)
from src.services import energy

blp = Blueprint("energy", __name__, url_prefix="/api/energy", description="Energy grids")
add_reading_routes(blp, "energy")


@blp.route("/grids")
class Grids(MethodView):
    @auth_required
    @blp.arguments(GridArgs, location="query", as_kwargs=True)
    @blp.response(200, GridPageSchema)
    def get(self, **args):
        """Grids with their last reported state, filtered by district."""
        return energy.list_grids(**args)

    @roles_required("operator", "admin")
    @blp.arguments(GridCreateSchema)
    @blp.response(201, GridSchema)
    def post(self, body):
        """Register a grid; a duplicate grid_id is a 409."""
        return energy.create_grid(body)


@blp.route("/grids/<grid_id>", methods=["GET"])
@auth_required
@blp.response(200, GridSchema)
def get_grid(grid_id):
    """One grid with its last reported state."""
    return energy.get_grid(grid_id)


@blp.route("/consumption", methods=["GET"])
@auth_required
@blp.arguments(ConsumptionArgs, location="query", as_kwargs=True)
@blp.response(200, ConsumptionSchema)
def consumption(**args):
    """Average and peak load and energy (MWh) per grid per hour or day, from the hourly rollups."""
    return energy.consumption(**args)


@blp.route("/renewable", methods=["GET"])
@auth_required
@blp.response(200, RenewableSchema)
def renewable():
    """Renewable share now, in total and per grid, from each grid's latest reading."""
    return energy.renewable()


@blp.route("/optimization/load-balancing", methods=["GET"])
@auth_required
@blp.arguments(LoadBalancingArgs, location="query", as_kwargs=True)
@blp.response(200, LoadBalancingSchema)
def load_balancing(**args):
    """Transfers (MW) from grids above the utilisation target to grids with headroom."""
    return energy.load_balancing(**args)
