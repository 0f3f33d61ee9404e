"""Query args and response schemas for reading history, built per module from the input schemas."""
import functools

from flask import has_request_context, request
from marshmallow import Schema, ValidationError, fields, pre_load, validate

from src.schemas.common import TIMEZONE_DOC, UTCDateTime
from src.schemas.pagination import TimeRangeArgs, sort_validator
from src.schemas.readings import ID_FIELDS, READING_SCHEMAS, SENSOR_ID

DERIVED = {
    "environment": {"aqi": fields.Integer(), "aqi_category": fields.String(), "dominant_pollutant": fields.String()},
    "energy": {"utilization_pct": fields.Float(), "renewable_pct": fields.Float(), "renewable_mw": fields.Float()},
    "waste": {"waste_type": fields.String()},
}


class ReadingArgs(TimeRangeArgs):
    sensor_id = fields.String(validate=SENSOR_ID, metadata={
        "description": "the sensor, bin or grid id; `bin_id` (waste) and `grid_id` (energy) are accepted too"})
    district = fields.String(validate=validate.Length(max=64))
    source = fields.String(validate=validate.OneOf(("api", "simulator")))
    sort = fields.String(load_default="-timestamp", validate=sort_validator(("timestamp", "sensor_id")))
    resolution = fields.String(load_default="raw", validate=validate.OneOf(("raw", "hour", "day")),
                               metadata={"description": "raw readings, or hourly/daily aggregates from rollups"})

    @pre_load
    def module_id_alias(self, data, **kwargs):
        """Waste readings are a bin's and energy readings a grid's, so `bin_id` / `grid_id` are what users
        write; they mean `sensor_id` on that module's /data (and are unknown parameters elsewhere)."""
        alias = ID_FIELDS.get(request.blueprint) if has_request_context() else None
        if alias in (None, "sensor_id") or alias not in data:
            return data
        data = {key: data[key] for key in data}
        value = data.pop(alias)
        if "sensor_id" in data and data["sensor_id"] != value:
            raise ValidationError(f"Give sensor_id or {alias}, not both.", alias)
        data["sensor_id"] = value
        return data


@functools.lru_cache(maxsize=None)
def reading_out_schema(module):
    """A response schema with the module's measures, derived fields and storage metadata."""
    name = f"{module.capitalize()}Reading"
    base = READING_SCHEMAS[module]
    declared = {key: field for key, field in base._declared_fields.items()}
    declared.update(DERIVED.get(module, {}))
    declared.update(id=fields.String(attribute="_id"), module=fields.String(), sensor_id=fields.String(),
                    timestamp=UTCDateTime(), received_at=UTCDateTime(), source=fields.String())
    return type(f"{name}Out", (Schema,), dict(declared))


class AggregateSchema(Schema):
    """One period of a sensor's rolled-up readings."""
    sensor_id = fields.String()
    district = fields.String(allow_none=True)
    period_start = UTCDateTime()
    resolution = fields.String()
    count = fields.Integer()
    metrics = fields.Dict(metadata={"description": "{metric: {count, sum, min, max, avg}}"})


@functools.lru_cache(maxsize=None)
def reading_page_schema(module):
    out = reading_out_schema(module)
    return type(f"{module.capitalize()}ReadingPage", (Schema,), {
        "items": fields.List(fields.Raw(), metadata={"description": (
            f"raw: {out.__name__} objects; hour/day: AggregateSchema objects")}),
        "total": fields.Integer(), "limit": fields.Integer(), "offset": fields.Integer(),
        "resolution": fields.String(), "timezone": fields.String(metadata={"description": TIMEZONE_DOC}),
    })


@functools.lru_cache(maxsize=None)
def ingest_result_schema(module):
    out = reading_out_schema(module)
    return type(f"{module.capitalize()}IngestResult", (Schema,), {
        "ingested": fields.Integer(), "items": fields.List(fields.Nested(out))})
