"""/api/environment: air quality and noise readings, summaries and trends."""
from flask_smorest import Blueprint

from src.routes.reading_views import add_reading_routes

blp = Blueprint("environment", __name__, url_prefix="/api/environment", description="Environmental sensors")
add_reading_routes(blp, "environment")
