"""/api/energy: grid readings, consumption, renewables and load balancing."""
from flask_smorest import Blueprint

from src.routes.reading_views import add_reading_routes

blp = Blueprint("energy", __name__, url_prefix="/api/energy", description="Energy grids")
add_reading_routes(blp, "energy")
