"""Fields and schemas shared by every area."""
from datetime import datetime, timedelta

from marshmallow import Schema, ValidationError, fields, validate

from src.domain import isoformat_z, now_utc, to_utc


MIN_YEAR, MAX_YEAR = 1970, 2100
TIMEZONE_DOC = ("the city's timezone (CITY_TIMEZONE, a tz database name): hours of the day, weekdays and `day` "
                "periods are local to it; times are still UTC instants")


class UTCDateTime(fields.DateTime):
    """Loads any ISO 8601 time (naive means UTC) in 1970-2100 as aware UTC; dumps ISO 8601 with `Z`."""

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else isoformat_z(value)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, datetime):  # internal callers (simulators) pass datetimes
            if isinstance(value, str) and value.endswith(("Z", "z")):
                value = value[:-1] + "+00:00"
            value = super()._deserialize(value, attr, data, **kwargs)
        try:
            value = to_utc(value)
        except OverflowError:
            raise ValidationError(f"Time must be between {MIN_YEAR} and {MAX_YEAR}.")
        if not MIN_YEAR <= value.year <= MAX_YEAR:
            raise ValidationError(f"Time must be between {MIN_YEAR} and {MAX_YEAR}.")
        return value


class ObjectIdString(fields.String):
    """An ObjectId dumped as its hex string."""

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else str(value)


def bcrypt_length(value):
    """bcrypt reads only the first 72 bytes of a password; longer ones are refused, not truncated."""
    try:
        encoded = value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("Password is not valid text.")
    if len(encoded) > 72:
        raise ValidationError("Password must be at most 72 bytes (UTF-8).")


class Password(fields.String):
    """At least 8 characters, at most 72 bytes (bcrypt's limit)."""

    def __init__(self, **kwargs):
        super().__init__(validate=[validate.Length(min=8), bcrypt_length], **kwargs)


class MessageSchema(Schema):
    message = fields.String()


class ErrorSchema(Schema):
    """The one error shape."""
    error = fields.String(required=True, metadata={"example": "validation_error"})
    message = fields.String(required=True)
    errors = fields.Dict(keys=fields.String(), values=fields.Raw())


def unique_items(values):
    """A list validator: no repeats."""
    if len(values) != len(set(values)):
        raise ValidationError("Items must not repeat.")


# Clocks drift; a time slightly in the future is accepted, one from next week is not.
MAX_FUTURE = timedelta(minutes=5)


def not_in_future(value):
    """A field validator for times that report something that already happened."""
    if value > now_utc() + MAX_FUTURE:
        raise ValidationError("Time is in the future.")
