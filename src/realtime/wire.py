"""Turn stored documents into JSON-ready payloads, once per emit (not once per client)."""
from datetime import datetime

from bson import ObjectId

from src.domain import isoformat_z


def to_wire(value):
    """ObjectIds to strings, datetimes to ISO 8601 with Z, `_id` to `id`, recursively."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "_id":
                out.setdefault("id", to_wire(item))
            else:
                out[key] = to_wire(item)
        return out
    if isinstance(value, (list, tuple)):
        return [to_wire(item) for item in value]
    if isinstance(value, datetime):
        return isoformat_z(value)
    if isinstance(value, ObjectId):
        return str(value)
    return value
