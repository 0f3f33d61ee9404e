"""/api/health: liveness and dependency status, no auth."""
from src.routes.blueprint import Blueprint

from src.extensions import limiter
from src.schemas.health import HealthSchema
from src.services import health

blp = Blueprint("health", __name__, url_prefix="/api", description="Service health")


@blp.route("/health")
@limiter.exempt
@blp.response(200, HealthSchema)
@blp.doc(security=[])
def get_health():
    """Service status, versions, uptime, and the state of the database, Redis and scheduler."""
    return health.report()
