"""/api/waste: bins, level readings, collections and collection routes."""
from flask.views import MethodView
from flask_smorest import Blueprint

from src.auth import auth_required, roles_required
from src.routes.reading_views import add_reading_routes
from src.schemas.reading_queries import ingest_result_schema
from src.schemas.waste import BinArgs, BinCreateSchema, BinPageSchema, BinSchema, LevelUpdateSchema
from src.services import waste

blp = Blueprint("waste", __name__, url_prefix="/api/waste", description="Waste bins and collection")
add_reading_routes(blp, "waste")


@blp.route("/bins")
class Bins(MethodView):
    @auth_required
    @blp.arguments(BinArgs, location="query", as_kwargs=True)
    @blp.response(200, BinPageSchema)
    def get(self, **args):
        """Bins with their latest level, filtered by district, type or minimum fill."""
        return waste.list_bins(**args)

    @roles_required("operator", "admin")
    @blp.arguments(BinCreateSchema)
    @blp.response(201, BinSchema)
    def post(self, body):
        """Register a bin."""
        return waste.create_bin(body)


@blp.route("/bins/<bin_id>/update-level", methods=["PUT"])
@roles_required("operator", "admin")
@blp.arguments(LevelUpdateSchema)
@blp.response(200, ingest_result_schema("waste"))
def update_level(body, bin_id):
    """Report a bin's fill level (through the ingest pipeline)."""
    stored = waste.report_level(bin_id, body)
    return {"ingested": len(stored), "items": stored}
