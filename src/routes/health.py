"""/api/health: liveness, readiness, and the status report (details with a token)."""
from src.routes.blueprint import Blueprint

from src import auth
from src.errors import ApiError
from src.extensions import limiter
from src.schemas.health import HealthSchema, ProbeSchema
from src.services import health

blp = Blueprint("health", __name__, url_prefix="/api", description="Service health")


@blp.route("/health")
@limiter.exempt
@blp.response(200, HealthSchema)
@blp.doc(security=[{}, {"bearerAuth": []}])  # the token is optional: it only adds details
def get_health():
    """healthy or degraded; with a valid access token, the state of every dependency and the configuration."""
    if auth.bearer_token() is None:
        return {"status": health.status()}
    auth.decode_token(auth.bearer_token(), auth.ACCESS, revocation_optional=True)
    return health.report()


@blp.route("/health/live")
@limiter.exempt
@blp.response(200, ProbeSchema)
@blp.doc(security=[])
def get_liveness():
    """200 while the process serves requests (restart it when this fails)."""
    return {"status": "alive"}


@blp.route("/health/ready")
@limiter.exempt
@blp.response(200, ProbeSchema)
@blp.alt_response(503, response="DEFAULT_ERROR", description="MongoDB is unreachable")
@blp.doc(security=[])
def get_readiness():
    """200 when this process can serve (MongoDB answers), 503 otherwise (send traffic elsewhere)."""
    if not health.ready():
        raise ApiError("The database is unreachable", status=503, error="not_ready")
    return {"status": "ready"}
