"""Leader election for the scheduler: one lock with expiry, renewed by its holder.

Redis (SET NX PX, renewed only by the owner) when REDIS_URL is set; otherwise a MongoDB document
claimed with an atomic find_one_and_update, which also serves a single embedded process.
"""
import logging
import os
import socket
import time
import uuid
from datetime import datetime, timedelta, timezone

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from src import outages
from src.db import get_db
from src.redis_client import get_redis

log = logging.getLogger(__name__)
LOCK_NAME = "scheduler-leader"

# Renew only if we still own the lock: a compare-and-set done atomically inside Redis.
RENEW_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
RELEASE_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class LeaderLock:
    def __init__(self, app, ttl_s):
        self.app = app
        self.ttl_s = ttl_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._leader = False
        self._valid_until = 0.0
        self.redis = get_redis(app)
        self.backend = "redis" if self.redis is not None else "mongodb"
        self.key = f"{app.config['RATELIMIT_KEY_PREFIX']}:{LOCK_NAME}"

    @property
    def is_leader(self):
        """Leader only until the lock we last confirmed could have expired (no split brain if beats stall)."""
        return self._leader and time.monotonic() < self._valid_until

    @is_leader.setter
    def is_leader(self, value):
        self._leader = value
        self._valid_until = time.monotonic() + self.ttl_s * 0.9 if value else 0.0

    @classmethod
    def for_app(cls, app):
        return cls(app, app.config["SCHEDULER_LOCK_TTL_S"])

    def heartbeat(self):
        """Acquire or renew the lock (the scheduler calls this every ttl/3)."""
        started = time.monotonic()
        try:
            held = self._redis_beat() if self.redis is not None else self._mongo_beat()
        except Exception as exc:  # Redis or MongoDB unreachable: step down, and say so once per outage
            (outages.redis if self.redis is not None else outages.mongodb).failed(exc)
            held = False
        else:
            (outages.redis if self.redis is not None else outages.mongodb).recovered()
        if held != self._leader:
            log.info("scheduler leadership %s (%s)", "acquired" if held else "lost", self.owner)
        self._leader = held
        # Count from before the round trip: the lock's own clock started no later than that.
        self._valid_until = started + self.ttl_s * 0.9 if held else 0.0
        return held

    def _redis_beat(self):
        ttl_ms = int(self.ttl_s * 1000)
        if self._leader and self.redis.eval(RENEW_SCRIPT, 1, self.key, self.owner, ttl_ms):
            return True
        return bool(self.redis.set(self.key, self.owner, nx=True, px=ttl_ms))

    def _mongo_beat(self):
        with self.app.app_context():
            db = get_db()
        now = datetime.now(timezone.utc)
        try:
            doc = db.locks.find_one_and_update(
                {"_id": LOCK_NAME, "$or": [{"owner": self.owner}, {"expires_at": {"$lt": now}}]},
                {"$set": {"owner": self.owner, "expires_at": now + timedelta(seconds=self.ttl_s)}},
                upsert=True, return_document=ReturnDocument.AFTER)
        except DuplicateKeyError:
            return False  # someone else holds a live lock
        return doc is not None and doc.get("owner") == self.owner

    def release(self):
        """Give the lock up at shutdown so another process takes over at once."""
        try:
            if self.redis is not None:
                self.redis.eval(RELEASE_SCRIPT, 1, self.key, self.owner)
            else:
                with self.app.app_context():
                    get_db().locks.delete_one({"_id": LOCK_NAME, "owner": self.owner})
        except Exception as exc:  # unreachable: the lock expires by itself within its TTL
            log.warning("could not release the leader lock (%s); it expires within %.0f s",
                        exc.__class__.__name__, self.ttl_s)
        self.is_leader = False
