"""GET/POST /api/<module>/data, shared by the four reading modules' blueprints."""
from flask import request

from src.auth import auth_required, roles_required
from src.schemas.reading_queries import ReadingArgs, ingest_result_schema, reading_page_schema
from src.schemas.readings import READING_SCHEMAS
from src.services import history, ingest


def ingest_request_doc(module):
    """OpenAPI body: one reading or a list of up to 1000 (flask-smorest cannot express oneOf)."""
    ref = {"$ref": f"#/components/schemas/{READING_SCHEMAS[module].__name__.removesuffix('Schema')}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": {
        "oneOf": [ref, {"type": "array", "items": ref, "minItems": 1, "maxItems": ingest.MAX_BATCH}]}}}}}


def add_reading_routes(blp, module):
    """Register history and ingest views for `module` on `blp`."""

    @blp.route("/data", methods=["GET"], endpoint="list_data")
    @auth_required
    @blp.arguments(ReadingArgs, location="query", as_kwargs=True)
    @blp.response(200, reading_page_schema(module))
    def list_data(**args):
        """Reading history: raw, or hourly/daily aggregates with `resolution`."""
        return history.readings_page(module, **args)

    @blp.route("/data", methods=["POST"], endpoint="post_data")
    @roles_required("operator", "admin")
    @blp.doc(**ingest_request_doc(module))
    @blp.response(201, ingest_result_schema(module))
    def post_data():
        """Ingest one reading or a batch (all-or-nothing validation)."""
        stored = ingest.ingest(module, request.get_json(), source="api")
        return {"ingested": len(stored), "items": stored}

    list_data.__doc__ = f"{module.capitalize()} reading history: raw, or hourly/daily aggregates."
    post_data.__doc__ = f"Ingest one {module} reading or a batch of up to 1000 (all-or-nothing)."
