"""/api/waste: bins, level readings, collections and collection routes."""
from flask.views import MethodView
from src.routes.blueprint import Blueprint

from src import auth
from src.auth import auth_required, roles_required
from src.routes.reading_views import add_reading_routes
from src.schemas.reading_queries import ingest_result_schema
from src.schemas.waste import (BinArgs, BinCreateSchema, BinPageSchema, BinSchema, LevelUpdateSchema,
                               WasteCollectionArgs, WasteCollectionCreateSchema, WasteCollectionPageSchema,
                               WasteCollectionSchema, WasteCollectionStatusSchema, WasteRouteRequestSchema,
                               WasteRouteSchema)
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


@blp.route("/bins/<bin_id>", methods=["GET"])
@auth_required
@blp.response(200, BinSchema)
def get_bin(bin_id):
    """One bin with its last reported level."""
    return waste.get_bin(bin_id)


@blp.route("/bins/<bin_id>/update-level", methods=["PUT"])
@roles_required("operator", "admin")
@blp.arguments(LevelUpdateSchema)
@blp.response(200, ingest_result_schema("waste"))
def update_level(body, bin_id):
    """Report a bin's fill level (through the ingest pipeline)."""
    stored = waste.report_level(bin_id, body)
    return {"ingested": len(stored), "items": stored}


@blp.route("/collections")
class Collections(MethodView):
    @auth_required
    @blp.arguments(WasteCollectionArgs, location="query", as_kwargs=True)
    @blp.response(200, WasteCollectionPageSchema)
    def get(self, **args):
        """Collections filtered by status, district and scheduled time (from/to)."""
        return waste.list_collections(**args)

    @roles_required("operator", "admin")
    @blp.arguments(WasteCollectionCreateSchema)
    @blp.response(201, WasteCollectionSchema)
    def post(self, body):
        """Schedule a collection of the named bins, or of the bins above the fill threshold, with its route."""
        return waste.create_collection(body, auth.current_user())


@blp.route("/collections/<collection_id>")
class CollectionById(MethodView):
    @auth_required
    @blp.response(200, WasteCollectionSchema)
    def get(self, collection_id):
        """One collection with its route."""
        return waste.get_collection(collection_id)

    @roles_required("operator", "admin")
    @blp.arguments(WasteCollectionStatusSchema)
    @blp.response(200, WasteCollectionSchema)
    def patch(self, body, collection_id):
        """Change a collection's status; completing it empties its bins through the ingest pipeline."""
        return waste.update_collection_status(collection_id, body, auth.current_user())


@blp.route("/optimization/routes", methods=["POST"])
@roles_required("operator", "admin")
@blp.arguments(WasteRouteRequestSchema)
@blp.response(200, WasteRouteSchema)
def optimise_routes(body):
    """A collection route from the depot over the bins above the fill threshold (nearest neighbour + 2-opt)."""
    return waste.optimise_route(**body)
