"""Schemas for /api/waste."""
from marshmallow import Schema, fields, validate

from src.models.bins import WASTE_TYPES
from src.schemas.common import UTCDateTime
from src.schemas.pagination import PageArgs, sort_validator
from src.schemas.readings import DISTRICT, SENSOR_ID, GeoPoint, Measure


class BinCreateSchema(Schema):
    bin_id = fields.String(required=True, validate=SENSOR_ID)
    capacity_liters = Measure(required=True, min=1, max=100000)
    location = fields.Nested(GeoPoint, required=True)
    district = fields.String(required=True, validate=DISTRICT)
    waste_type = fields.String(load_default="general", validate=validate.OneOf(WASTE_TYPES))
    fill_level_pct = Measure(load_default=0.0, min=0, max=100)


class BinSchema(BinCreateSchema):
    id = fields.String(attribute="_id", dump_only=True)
    temperature_c = fields.Float(allow_none=True)
    battery_pct = fields.Float(allow_none=True)
    status = fields.String()
    last_reading_at = UTCDateTime(allow_none=True)
    last_emptied_at = UTCDateTime(allow_none=True)
    created_at = UTCDateTime()
    updated_at = UTCDateTime()


class BinArgs(PageArgs):
    district = fields.String(validate=DISTRICT)
    waste_type = fields.String(validate=validate.OneOf(WASTE_TYPES))
    min_fill = Measure(min=0, max=100)
    sort = fields.String(load_default="bin_id", validate=sort_validator(("bin_id", "fill_level_pct", "district")))


class BinPageSchema(Schema):
    items = fields.List(fields.Nested(BinSchema))
    total = fields.Integer()
    limit = fields.Integer()
    offset = fields.Integer()


class LevelUpdateSchema(Schema):
    """A level update for a bin named in the URL."""
    fill_level_pct = Measure(required=True, min=0, max=100)
    temperature_c = Measure(min=-60, max=200)
    battery_pct = Measure(min=0, max=100)
    timestamp = UTCDateTime()
