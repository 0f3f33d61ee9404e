"""The optional Redis connection, shared by limits, revocation, locks and fan-out.

Redis is a shared accelerator, never the only copy of anything that matters: every caller has
a fallback (memory for rate limits, MongoDB for revocation and leadership, polling for task
wake-ups). `attempt` runs one Redis operation and reports failures to `outages.redis`; after a
failure Redis is skipped for RETRY_S, so an outage costs each request nothing, and the first
call after that probes it again.
"""
import time

from flask import current_app

from src import outages

RETRY_S = 1.0
# Returned by `attempt` when Redis is not configured, failed, or is being skipped after a failure.
UNAVAILABLE = object()

_skip_until = 0.0


def init_app(app):
    """Create the lazily-connecting client when REDIS_URL is set; None otherwise."""
    url = app.config.get("REDIS_URL")
    client = None
    if url:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30)
    app.extensions["redis"] = client


def get_redis(app=None):
    """The Redis client, or None when Redis is not configured."""
    return (app or current_app).extensions.get("redis")


def attempt(operation, app=None):
    """`operation(client)`, or UNAVAILABLE when Redis is unconfigured or down (reported, never raised)."""
    global _skip_until
    client = get_redis(app)
    if client is None or time.monotonic() < _skip_until:
        return UNAVAILABLE
    try:
        result = operation(client)
    except Exception as exc:  # redis-py raises several families (ConnectionError, TimeoutError, OSError...)
        _skip_until = time.monotonic() + RETRY_S
        outages.redis.failed(exc)
        return UNAVAILABLE
    outages.redis.recovered()
    return result


def skipping():
    """True while Redis is being skipped after a failure."""
    return time.monotonic() < _skip_until


def report_failure(exc):
    """For callers that talk to Redis themselves (blocking waits, the lock): count the outage."""
    global _skip_until
    _skip_until = time.monotonic() + RETRY_S
    outages.redis.failed(exc)


def ping(app=None):
    """Return (configured, ok) for the health endpoint; a successful ping also ends an outage."""
    if get_redis(app) is None:
        return False, None
    global _skip_until
    _skip_until = 0.0  # health checks always probe, so they see a recovery at once
    return True, attempt(lambda client: bool(client.ping()), app) is True
