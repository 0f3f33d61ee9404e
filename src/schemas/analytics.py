"""Schemas for /api/dashboard and /api/analytics (responses are documented at the top level)."""
from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from webargs.fields import DelimitedList

from src.domain import READING_MODULES
from src.schemas.common import TIMEZONE_DOC, UTCDateTime, unique_items
from src.schemas.readings import DISTRICT, SENSOR_ID


class RangeArgs(Schema):
    start = UTCDateTime(data_key="from")
    end = UTCDateTime(data_key="to")

    @validates_schema
    def ordered(self, data, **kwargs):
        if data.get("start") and data.get("end") and data["start"] >= data["end"]:
            raise ValidationError("`from` must be before `to`.", "from")


class PatternArgs(RangeArgs):
    district = fields.String(validate=DISTRICT)
    sensor_id = fields.String(validate=SENSOR_ID)
    metric = fields.String(load_default="vehicle_count",
                           validate=validate.OneOf(("vehicle_count", "average_speed", "congestion_level")))


class PredictArgs(Schema):
    district = fields.String(validate=DISTRICT)
    sensor_id = fields.String(validate=SENSOR_ID)
    horizon = fields.Integer(load_default=6, validate=validate.Range(min=1, max=48))
    metric = fields.String(load_default="vehicle_count",
                           validate=validate.OneOf(("vehicle_count", "average_speed", "congestion_level")))


class ReportArgs(RangeArgs):
    modules = DelimitedList(fields.String(validate=validate.OneOf(READING_MODULES + ("emergency",))),
                            validate=[validate.Length(min=1, max=5), unique_items])


class Overview(Schema):
    generated_at = UTCDateTime()
    modules = fields.Dict(metadata={"description": "per module: sensors, readings_last_hour, last_reading_at, kpis"})
    alerts_active = fields.Dict(metadata={"description": "open alerts by severity"})


class RealTimeData(Schema):
    data_type = fields.String()
    data = fields.Dict(metadata={"description": "module -> latest reading per sensor"})
    server_time = fields.String()


class AlertsSummary(Schema):
    generated_at = UTCDateTime()
    open_by_severity = fields.Dict()
    open_by_module = fields.Dict()
    last_24h = fields.Dict()
    top_sensors_24h = fields.List(fields.Dict())
    response_24h = fields.Dict()


class Weekly(Schema):
    start = UTCDateTime(data_key="from")
    end = UTCDateTime(data_key="to")
    timezone = fields.String(metadata={"description": TIMEZONE_DOC})
    days = fields.List(fields.Dict())


class RangeReport(Schema):
    """A report over a range; sections depend on the endpoint."""

    class Meta:
        unknown = "include"

    start = UTCDateTime(data_key="from")
    end = UTCDateTime(data_key="to")
    generated_at = UTCDateTime()
    resolution = fields.String()
    timezone = fields.String(metadata={"description": TIMEZONE_DOC})
    modules = fields.Dict()
    alerts = fields.Dict()
    traffic = fields.Dict()
    environment = fields.Dict()
    waste = fields.Dict()
    energy = fields.Dict()
    emergency = fields.Dict()


class Patterns(Schema):
    metric = fields.String()
    start = UTCDateTime(data_key="from")
    end = UTCDateTime(data_key="to")
    timezone = fields.String(metadata={"description": TIMEZONE_DOC})
    district = fields.String(allow_none=True)
    sensor_id = fields.String(allow_none=True)
    hour_of_day = fields.List(fields.Dict())
    day_of_week = fields.List(fields.Dict())


class ForecastPoint(Schema):
    period_start = UTCDateTime()
    value = fields.Float()


class Prediction(Schema):
    metric = fields.String()
    sensor_id = fields.String(allow_none=True)
    district = fields.String(allow_none=True)
    method = fields.String(metadata={"description": "holt_winters_additive, seasonal_profile, last_value or none"})
    points_used = fields.Integer()
    season_length_h = fields.Integer()
    forecast = fields.List(fields.Nested(ForecastPoint))
