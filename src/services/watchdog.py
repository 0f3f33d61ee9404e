"""Per-process watch on Redis: notice it coming back, and give it back what it missed.

Requests skip Redis while it is down (see redis_client), so something must probe it to end
the outage; on its return, revocations written only to MongoDB meanwhile are copied over, and
an emptied (restarted) Redis is reloaded before it answers revocation checks again.
"""
import logging

from src import auth, redis_client
from src.extensions import socketio

log = logging.getLogger(__name__)

INTERVAL_S = 2.0


def check(app):
    """One round: probe Redis, and sync revocations when it answers. Never raises."""
    if redis_client.get_redis(app) is None:
        return None
    try:
        configured, ok = redis_client.ping(app)
        if ok:
            return auth.sync_revocations(app)
    except Exception:  # MongoDB down during the sync: the next round tries again
        log.debug("revocation sync deferred", exc_info=True)
    return None


def start(app):
    """Run `check` every INTERVAL_S in a background task of the server's async mode."""

    def loop():
        while True:
            check(app)
            socketio.sleep(INTERVAL_S)

    return socketio.start_background_task(loop)
