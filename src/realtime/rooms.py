"""Room names, and who may join which. The only place room names are spelled."""

from src.domain import MODULES, SEVERITIES

SYSTEM = "system"
EVERYONE = "everyone"  # every session is in it (public alerts); not joinable by name
ADMIN = "admin"
SENSOR_PREFIX = "sensor:"
MAX_SENSOR_ID = 64


def module_room(module):
    return f"{module}_monitoring"


def sensor_room(sensor_id):
    return f"{SENSOR_PREFIX}{sensor_id}"


def alert_room(module, severity):
    return f"alerts:{module}:{severity}"


def recovery_twin(room):
    """The room that carries `room`'s broadcasts with offsets, for recovery-capable sessions."""
    return f"~{room}"


def stream_room(key):
    """The room of the sessions that share one stream filter (joined only by the server)."""
    return f"stream:{key}"


def user_room(user_id):
    return f"user:{user_id}"


def alert_rooms(modules=None, severities=None):
    """The rooms a subscription to `modules` x `severities` sits in (empty or None means all)."""
    return [alert_room(m, s) for m in (modules or MODULES) for s in (severities or SEVERITIES)]


def is_alert_room(room):
    return room.startswith("alerts:")


def available_rooms(role):
    """Rooms a client with `role` may join by name (sensor rooms are open to everyone)."""
    rooms = [module_room(m) for m in MODULES] + [SYSTEM]
    if role == "admin":
        rooms.append(ADMIN)
    return rooms


def check_joinable(room, role):
    """Return None if `role` may join `room`, else an error code: forbidden or unknown_room."""
    if room == ADMIN:
        return None if role == "admin" else "forbidden"
    if room in available_rooms(role):
        return None
    if room.startswith(SENSOR_PREFIX):
        sensor_id = room[len(SENSOR_PREFIX):]
        if 0 < len(sensor_id) <= MAX_SENSOR_ID and all(c.isalnum() or c in "-_." for c in sensor_id):
            return None
    if room.startswith(("user:", "stream:")) or is_alert_room(room):
        return "forbidden"  # private rooms, joined only by the server
    return "unknown_room"
