"""The health report, shared by /api/health and system_update."""
import time

from flask import current_app

from src import db, outages, redis_client
from src.domain import isoformat_z, now_utc

_started = time.monotonic()
# Other components (socket metrics, scheduler) register a callable returning a dict.
_providers = {}


def register_provider(name, func):
    """Add a section to services[name] of the health report."""
    _providers[name] = func


# The public answers are unauthenticated and not rate limited, so each is computed at most once
# a second per process: a flood of probes costs the databases nothing.
PROBE_CACHE_S = 1.0


def _probed(name, compute):
    app = current_app._get_current_object()
    cache = app.extensions.setdefault("health_probes", {})
    now = time.monotonic()
    cached = cache.get(name)
    if cached is None or cached[0] <= now:
        cached = cache[name] = (now + PROBE_CACHE_S, compute(app))
    return cached[1]


def status():
    """healthy or degraded: the public answer, which says nothing about the configuration."""

    def compute(app):
        configured, redis_ok = redis_client.ping(app)
        return "healthy" if db.ping(app)[0] and (not configured or redis_ok) else "degraded"

    return _probed("status", compute)


def ready():
    """Can this process serve requests? (MongoDB answers; Redis has fallbacks, so it does not count.)"""
    return _probed("ready", lambda app: db.ping(app)[0])


def report():
    """The health report dict; `degraded` when a configured dependency is down."""
    app = current_app._get_current_object()
    ok, latency_ms, error = db.ping(app)
    database = {"engine": app.extensions["mongo_engine"], "ok": ok, "latency_ms": latency_ms,
                "outage": outages.mongodb.snapshot()}
    if error:
        database["error"] = error
    configured, redis_ok = redis_client.ping(app)
    services = {
        "database": database,
        "redis": {"configured": configured, "ok": redis_ok, "outage": outages.redis.snapshot()},
    }
    for name, provider in _providers.items():
        services[name] = provider(app)
    services.setdefault("scheduler", {"enabled": app.config["SCHEDULER_ENABLED"], "running": False})
    degraded = not ok or (configured and not redis_ok)
    return {
        "status": "degraded" if degraded else "healthy",
        "service": app.config["SERVICE_NAME"],
        "version": app.config["VERSION"],
        "environment": app.config["ENV_NAME"],
        "uptime_s": round(time.monotonic() - _started, 3),
        "server_time": isoformat_z(now_utc()),
        "services": services,
        "features": features(app),
    }


def features(app):
    """What this deployment offers, so clients and operators can tell at a glance."""
    redis_on = app.extensions.get("redis") is not None
    return {
        "auth": "jwt",
        "self_registration": app.config["ALLOW_SELF_REGISTRATION"],
        "rate_limiting": app.config["RATELIMIT_ENABLED"],
        "rate_limit_storage": "redis" if redis_on else "memory",
        "token_revocation": "redis" if redis_on else "mongodb",
        "websocket_message_queue": "redis" if redis_on else None,
        "async_mode": app.config["SOCKETIO_ASYNC_MODE"],
        "openapi": "/api/openapi.json",
    }
