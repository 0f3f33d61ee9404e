"""Query-argument and page schemas shared by every list endpoint."""
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from src.schemas.common import UTCDateTime

MAX_LIMIT = 1000


class PageArgs(Schema):
    """limit (default 50, max 1000), offset, sort (`field` or `-field`)."""

    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=MAX_LIMIT))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=1_000_000))
    sort = fields.String(validate=validate.Length(max=64))


class TimeRangeArgs(PageArgs):
    start = UTCDateTime(data_key="from", metadata={"description": "inclusive ISO 8601 start"})
    end = UTCDateTime(data_key="to", metadata={"description": "exclusive ISO 8601 end"})

    @validates_schema
    def ordered(self, data, **kwargs):
        if data.get("start") and data.get("end") and data["start"] >= data["end"]:
            raise ValidationError("`from` must be before `to`.", "from")


def sort_validator(allowed):
    """Validate `sort` against allowed field names (optionally prefixed with '-')."""
    def check(value):
        if value.lstrip("-+") not in allowed:
            raise ValidationError(f"Sort by one of: {', '.join(allowed)} (prefix '-' for descending).")
    check.allowed = tuple(allowed)  # what tests/test_indexes.py checks against the indexes
    return check


class PageSchema(Schema):
    items = fields.List(fields.Dict())
    total = fields.Integer()
    limit = fields.Integer()
    offset = fields.Integer()


def page_of(item_schema, name):
    """The response schema of a list endpoint: {items: [item_schema], total, limit, offset}."""
    return type(name, (Schema,), {
        "items": fields.List(fields.Nested(item_schema)), "total": fields.Integer(),
        "limit": fields.Integer(), "offset": fields.Integer(),
        "__doc__": f"A page of {item_schema.__name__.removesuffix('Schema')} items.",
    })
