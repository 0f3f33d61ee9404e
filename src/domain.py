"""The vocabulary and the clock every layer shares: modules, severities, time, actors, pages.

The bottom layer: it imports nothing from `src`, so models, realtime, schemas and services can
all use it without pointing an import upwards.
"""
from datetime import datetime, timezone

MODULES = ("traffic", "environment", "waste", "energy", "emergency")
READING_MODULES = ("traffic", "environment", "waste", "energy")  # the modules that take sensor readings
SEVERITIES = ("low", "medium", "high", "critical")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES, start=1)}
# Coalesced streams (`subscribe_stream`): frame interval bounds and filter sizes.
STREAM_MIN_INTERVAL_MS, STREAM_MAX_INTERVAL_MS = 100, 10000
STREAM_MAX_SENSORS, STREAM_MAX_DISTRICTS = 500, 50


def now_utc():
    return datetime.now(timezone.utc)


def to_utc(value):
    """An aware UTC datetime; naive values are taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def isoformat_z(value):
    """ISO 8601 in UTC with a `Z`, millisecond precision (what MongoDB stores)."""
    return to_utc(value).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def actor(user, anonymous=None):
    """Who did something, as stored on the record: the user's id, email and username.

    `anonymous` stands for the server itself (a simulator, a job) when there is no user.
    """
    if user is None:
        return anonymous
    return {"id": str(user["_id"]), "email": user.get("email"), "username": user.get("username")}
