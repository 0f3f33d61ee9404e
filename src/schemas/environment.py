"""Schemas for /api/environment summaries and trends."""
from marshmallow import Schema, fields, validate

from src.schemas.common import TIMEZONE_DOC, UTCDateTime
from src.schemas.readings import DISTRICT, SENSOR_ID


class SummaryArgs(Schema):
    district = fields.String(validate=DISTRICT)


class DistrictAirQuality(Schema):
    district = fields.String()
    aqi = fields.Integer()
    aqi_category = fields.String()
    worst_sensor = fields.String()
    dominant_pollutant = fields.String()
    average_aqi = fields.Float()
    sensors = fields.Integer()
    as_of = UTCDateTime()


class AirQualitySummary(Schema):
    items = fields.List(fields.Nested(DistrictAirQuality))
    generated_at = UTCDateTime()


class TrendArgs(Schema):
    resolution = fields.String(load_default="hour", validate=validate.OneOf(("hour", "day")))
    start = UTCDateTime(data_key="from")
    end = UTCDateTime(data_key="to")
    district = fields.String(validate=DISTRICT)
    sensor_id = fields.String(validate=SENSOR_ID)


class TrendSchema(Schema):
    resolution = fields.String()
    timezone = fields.String(metadata={"description": TIMEZONE_DOC})
    start = UTCDateTime(data_key="from")
    end = UTCDateTime(data_key="to")
    district = fields.String(allow_none=True)
    sensor_id = fields.String(allow_none=True)
    items = fields.List(fields.Dict(), metadata={
        "description": "per period: period_start, readings, and {avg, min, max} per pollutant"})
