"""The optional Redis connection, shared by limits, revocation, locks and fan-out.

Redis is a shared accelerator, never the only copy of anything that matters: every caller has
a fallback (memory for rate limits, MongoDB for revocation and leadership, polling for task
wake-ups). `attempt` runs one Redis operation and reports failures to `outages.redis`.

A Redis that is gone refuses connections at once; one that hangs (paused, overloaded, a dead
network path) accepts them and never answers, so every command waits for its socket timeout.
Healthy Redis answers in well under a millisecond, so the timeout is short (REDIS_TIMEOUT_S),
and an outage costs each request nothing:

- after a failure Redis is skipped for RETRY_S;
- then, until it answers again, one caller at a time probes it (`attempt`, `ping`) while every
  other caller keeps skipping, so a burst of requests does not queue up behind a silent Redis;
- callers that talk to Redis themselves check `skipping()`, which stays true for the whole
  outage: the probes above (and the watchdog's ping every 2 s) notice the recovery.
"""
import logging
import sys
import threading
import time

from flask import current_app

from src import outages

RETRY_S = 1.0
DEFAULT_TIMEOUT_S = 0.5
# Added to a blocking command's own wait (BLPOP) for its read timeout.
BLOCKING_MARGIN_S = 1.0
# Returned by `attempt` when Redis is not configured, failed, or is being skipped after a failure.
UNAVAILABLE = object()

_skip_until = 0.0
# Held by the one caller probing Redis during an outage (never waited for: others skip).
_probe = threading.Lock()


def _timeout(app):
    return float(app.config.get("REDIS_TIMEOUT_S") or DEFAULT_TIMEOUT_S)


def init_app(app):
    """Create the lazily-connecting client when REDIS_URL is set; None otherwise."""
    url = app.config.get("REDIS_URL")
    client = None
    if url:
        import redis

        timeout = _timeout(app)
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                      health_check_interval=30)
    app.extensions["redis"] = client
    app.extensions.pop("redis_blocking", None)


def get_redis(app=None):
    """The Redis client, or None when Redis is not configured."""
    return (app or current_app).extensions.get("redis")


def get_blocking_redis(app, block_s):
    """A client for blocking commands that wait up to `block_s` (BLPOP): its read timeout is longer
    than the wait, so an idle wait is not an outage; connecting still fails fast. None without Redis."""
    if get_redis(app) is None:
        return None
    clients = app.extensions.setdefault("redis_blocking", {})
    client = clients.get(block_s)
    if client is None:
        import redis

        client = clients[block_s] = redis.Redis.from_url(
            app.config["REDIS_URL"], socket_timeout=block_s + BLOCKING_MARGIN_S,
            socket_connect_timeout=_timeout(app), health_check_interval=30)
    return client


def _run(operation, client):
    global _skip_until
    try:
        result = operation(client)
    except Exception as exc:  # redis-py raises several families (ConnectionError, TimeoutError, OSError...)
        _skip_until = time.monotonic() + RETRY_S
        outages.redis.failed(exc)
        return UNAVAILABLE
    _skip_until = 0.0
    outages.redis.recovered()
    return result


def _probe_once(operation, client):
    """During an outage: run `operation` if no one else is probing, else UNAVAILABLE at once."""
    if not _probe.acquire(blocking=False):
        return UNAVAILABLE
    try:
        return _run(operation, client)
    finally:
        _probe.release()


def attempt(operation, app=None):
    """`operation(client)`, or UNAVAILABLE when Redis is unconfigured or down (reported, never raised)."""
    client = get_redis(app)
    if client is None or time.monotonic() < _skip_until:
        return UNAVAILABLE
    if not outages.redis.is_down:
        return _run(operation, client)
    return _probe_once(operation, client)


def skipping():
    """True while callers that talk to Redis themselves should leave it alone: during an outage
    (from the first failure until a probe gets an answer) and the skip window after a failure."""
    return outages.redis.is_down or time.monotonic() < _skip_until


def report_failure(exc):
    """For callers that talk to Redis themselves (blocking waits, the lock): count the outage."""
    global _skip_until
    _skip_until = time.monotonic() + RETRY_S
    outages.redis.failed(exc)


def ping(app=None):
    """Return (configured, ok) for the health endpoint; a successful ping also ends an outage.

    Health checks probe even inside the skip window, so they see a recovery at once, but never
    alongside another probe: while one is in flight Redis counts as still down."""
    client = get_redis(app)
    if client is None:
        return False, None
    probe = lambda client: bool(client.ping())  # noqa: E731
    if not outages.redis.is_down and time.monotonic() >= _skip_until:
        return True, _run(probe, client) is True
    return True, _probe_once(probe, client) is True


# Flask-Limiter's Redis storage is a client of its own: with RATELIMIT_SWALLOW_ERRORS it logs a
# traceback for every request that finds Redis down ("Failed to rate limit. Swallowing error"),
# and a warning when it falls back to memory. Both are the outage `outages.redis` already
# reports once; this filter (on the "flask-limiter" logger) turns them into that report.


def _is_redis_error(exc):
    if exc is None:
        return False
    if isinstance(exc, (ConnectionError, TimeoutError)):  # OSError family: refused, reset, timed out
        return True
    try:
        import redis
    except ImportError:  # pragma: no cover - Redis is optional
        return False
    if isinstance(exc, redis.exceptions.RedisError):
        return True
    try:
        from limits.errors import StorageError
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, StorageError)


class LimiterStorageErrors(logging.Filter):
    """Report rate-limit storage failures to `outages.redis` instead of logging each one."""

    def filter(self, record):
        # `exception()` records carry the error; the fallback warning is logged inside the except block.
        exc = record.exc_info[1] if record.exc_info else sys.exc_info()[1]
        if not _is_redis_error(exc):
            return True  # anything else (a bug, say) keeps its line and traceback
        report_failure(exc)  # logs the outage once; the fallback warning and tracebacks add nothing
        return False


limiter_log_filter = LimiterStorageErrors()
