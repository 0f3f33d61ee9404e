"""The optional Redis connection, shared by limits, revocation, locks and fan-out."""
from flask import current_app


def init_app(app):
    """Create the client lazily-connecting client when REDIS_URL is set; None otherwise."""
    url = app.config.get("REDIS_URL")
    client = None
    if url:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30)
    app.extensions["redis"] = client


def get_redis(app=None):
    """The Redis client, or None when Redis is not configured."""
    return (app or current_app).extensions.get("redis")


def ping(app=None):
    """Return (configured, ok) for the health endpoint."""
    client = get_redis(app)
    if client is None:
        return False, None
    try:
        return True, bool(client.ping())
    except Exception:  # any failure means "not reachable" to a health check
        return True, False
