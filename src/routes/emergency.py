"""/api/emergency: incidents, units, dispatch and public broadcasts."""
from flask_smorest import Blueprint

blp = Blueprint("emergency", __name__, url_prefix="/api/emergency", description="Emergency response")
