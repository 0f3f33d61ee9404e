"""CityPulse: the application factory."""
import logging
import time

from bson import ObjectId
from flask import Flask, Request, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import BadRequest
from werkzeug.middleware.proxy_fix import ProxyFix

from src import db, http_server, outages, redis_client, schedulers
from src.realtime import seam
from src.realtime.recovery import Recovery
from src.realtime.stream import Streams
from src.realtime.seam import make_client_manager
from src.services import ingest, latest, seed
from src.config import get_config
from src.errors import ApiError, register_error_handlers
from src.schemas.common import ErrorSchema
from src.extensions import api, limiter, socketio

log = logging.getLogger(__name__)


def create_app(config=None):
    """Build the app from a config name, class or instance (default: APP_ENV)."""
    config = _resolve_config(config)
    config.validate()
    app = Flask(__name__)
    app.config.from_object(config)
    app.json = CityPulseJSONProvider(app)
    app.request_class = CityPulseRequest
    configure_logging(app)
    for warning in config.warnings():
        log.warning("%s", warning)
    register_extensions(app)
    register_blueprints(app)
    register_console(app)
    register_socket_handlers(app)
    register_error_handlers(app)
    register_request_guards(app)
    register_security_headers(app)
    bootstrap_data(app)
    return app


def _resolve_config(config):
    if config is None or isinstance(config, str):
        return get_config(config)
    if isinstance(config, type):
        return config()
    return config


def configure_logging(app):
    logging.basicConfig(level=app.config["LOG_LEVEL"],
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # APScheduler logs every run at INFO; our job runner records runs and logs failures itself.
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, logging.getLogger().level))
    # Flask-Limiter logs every refused request at INFO: a client could fill the log at will.
    logging.getLogger("flask-limiter").setLevel(max(logging.WARNING, logging.getLogger().level))
    # With Redis down it logs a traceback per request: report those as the one Redis outage instead.
    logging.getLogger("flask-limiter").addFilter(redis_client.limiter_log_filter)


def register_extensions(app):
    """Bind storage, Redis, rate limits, OpenAPI and Socket.IO to this app."""
    if app.config["TRUST_PROXY_HOPS"]:
        hops = app.config["TRUST_PROXY_HOPS"]
        # Only what nginx.conf sets: a forged X-Forwarded-Host must not change generated URLs.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=0)
    db.init_app(app)
    redis_client.init_app(app)
    latest.init_app(app)
    ingest.init_app(app)
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config["REDIS_URL"] or "memory://")
    limiter.init_app(app)
    # Every documented error response (422, 401, DEFAULT_ERROR, ...) is our {error, message, errors},
    # not flask-smorest's {code, status, message, errors}; init_app reads this when it builds the spec.
    api.ERROR_SCHEMA = ErrorSchema
    api.init_app(app)
    origins = app.config["CORS_ALLOWED_ORIGINS"]
    socketio.init_app(
        app,
        async_mode=app.config["SOCKETIO_ASYNC_MODE"],
        client_manager=make_client_manager(app.config["REDIS_URL"], seam.guards, app.config["SOCKETIO_CHANNEL"],
                                           Recovery(app.config["SESSION_RECOVERY_S"],
                                                    app.config["SESSION_RECOVERY_MAX_PACKETS"],
                                                    app.config["RATELIMIT_KEY_PREFIX"]),
                                           Streams(app.config["STREAM_MAX_BACKLOG"])),
        cors_allowed_origins=origins if origins == "*" else [o.strip() for o in origins.split(",")],
        # Any origin may connect with `*`, but never with credentials (tokens go in `auth`, not cookies).
        cors_credentials=origins != "*",
        max_http_buffer_size=app.config["SOCKET_MAX_MESSAGE_BYTES"],
        ping_interval=app.config["SOCKET_PING_INTERVAL_S"],
        ping_timeout=app.config["SOCKET_PING_TIMEOUT_S"],
        logger=False,
        engineio_logger=False,
    )


def register_blueprints(app):
    """Every REST blueprint, through flask-smorest so each lands in the OpenAPI spec."""
    from src.routes import BLUEPRINTS, document_schemas

    document_schemas(api)
    for blueprint in BLUEPRINTS:
        api.register_blueprint(blueprint)


def register_console(app):
    """The operations console at `/` (src/routes/console.py): static pages, outside the API and its spec."""
    from src.routes import console

    app.register_blueprint(console.blp)


def register_socket_handlers(app):
    """The Socket.IO event handlers (registered once on the shared SocketIO object)."""
    from src.events import guard, handlers, sweeper  # noqa: F401 (importing handlers registers them)
    from src.realtime import metrics
    from src.services import health

    guard.install(socketio.server, app.config["SOCKET_MAX_BACKLOG"])
    health.register_provider("realtime", lambda app: dict(metrics.snapshot(socketio), **sweeper.stats()))
    health.register_provider("scheduler", schedulers.status)
    health.register_provider("http", lambda app: http_server.stats())


def register_request_guards(app):
    """Refuse non-JSON bodies before any view parses them; finish a bootstrap that MongoDB refused."""

    @app.before_request
    def require_json_body():
        if request.method in ("POST", "PUT", "PATCH") and request.content_length and not request.is_json:
            raise ApiError("Request body must be application/json", status=415)

    @app.before_request
    def retry_bootstrap():
        state = app.extensions["bootstrap"]
        # Never on a health probe: it waits for MongoDB, and probes have deadlines of their own.
        if request.path.startswith("/api/health"):
            return
        if not state["done"] and time.monotonic() - state["attempted"] > BOOTSTRAP_RETRY_S:
            bootstrap_data(app)


BOOTSTRAP_RETRY_S = 10

# Every response: no MIME sniffing, no referrer leaks. API responses may load nothing; the
# Swagger UI page loads its own assets. Token responses must not be cached by anyone.
API_CSP = "default-src 'none'; frame-ancestors 'none'"
# The page's one inline script starts Swagger UI, which sets inline styles.
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'")


def register_security_headers(app):
    """Security headers on every response, and no-store on everything under /api/auth."""
    docs_path = app.config["OPENAPI_URL_PREFIX"].rstrip("/") + app.config["OPENAPI_SWAGGER_UI_PATH"]

    @app.after_request
    def security_headers(response):
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Content-Security-Policy", DOCS_CSP if request.path == docs_path else API_CSP)
        if request.path.startswith("/api/auth/") or request.path.startswith("/api/users"):
            headers["Cache-Control"] = "no-store"
            headers["Pragma"] = "no-cache"
        return response


def bootstrap_data(app):
    """Create collections and indexes, and the default admin. Logged, not fatal, if MongoDB is down."""
    from pymongo.errors import PyMongoError

    from src.services.accounts import ensure_default_admin

    state = app.extensions.setdefault("bootstrap", {"done": False, "attempted": 0.0})
    state["attempted"] = time.monotonic()
    try:
        db.ensure_schema(db.get_db(app), app.config["RAW_RETENTION_HOURS"])
        ensure_default_admin(app)
        ingest.warm(app)
        if app.config["SEED_CITY"]:
            seed.seed_city(app)
        state["done"] = True
    except PyMongoError as exc:
        if not state.get("reported"):
            state["reported"] = True
            log.error("database bootstrap deferred (%s): requests get 503 until MongoDB is reachable, and "
                      "the bootstrap completes then", exc.__class__.__name__)
        outages.mongodb.failed(exc)


class CityPulseRequest(Request):
    """Says what was wrong with a body that is not valid JSON (Flask hides it outside debug)."""

    def on_json_loading_failed(self, e):
        if e is None:  # not a JSON content type; the 415 guard answers first
            return super().on_json_loading_failed(e)
        raise BadRequest(f"The body is not valid JSON: {e}")


class CityPulseJSONProvider(DefaultJSONProvider):
    """ObjectIds as strings and datetimes as ISO 8601 UTC with Z out; only storable JSON in."""

    def loads(self, s, **kwargs):
        try:
            value = super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply")
        _reject_lone_surrogates(value)
        return value

    @staticmethod
    def default(o):
        from datetime import datetime

        from src.domain import isoformat_z

        if isinstance(o, ObjectId):
            return str(o)
        if isinstance(o, datetime):
            return isoformat_z(o)
        return DefaultJSONProvider.default(o)


def _reject_lone_surrogates(value, depth=0):
    """`"\\ud800"` is valid JSON but not storable text; refuse it at the door (400), not in the database."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("JSON contains invalid Unicode (a lone surrogate)")
    elif isinstance(value, dict):
        for key, item in value.items():
            _reject_lone_surrogates(key, depth + 1)
            _reject_lone_surrogates(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _reject_lone_surrogates(item, depth + 1)
