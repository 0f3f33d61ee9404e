"""/api/traffic: readings, incidents, signal timing and routes."""
from flask_smorest import Blueprint

from src.routes.reading_views import add_reading_routes

blp = Blueprint("traffic", __name__, url_prefix="/api/traffic", description="Traffic sensors and operations")
add_reading_routes(blp, "traffic")
