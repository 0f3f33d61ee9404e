"""Reading schemas, one per module: the single validation gate of the ingest pipeline."""
import math

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from src.schemas.common import UTCDateTime, not_in_future, now_utc

SENSOR_ID = validate.Regexp(r"^[A-Za-z0-9_.-]{1,64}$", error="1-64 letters, digits, '_', '.' or '-'.")
DISTRICT = validate.Length(min=1, max=64)


class Measure(fields.Float):
    """A finite number (not a boolean), optionally within [min, max]."""

    def __init__(self, min=None, max=None, **kwargs):
        validators = [validate.Range(min=min, max=max)] if min is not None or max is not None else []
        super().__init__(allow_nan=False, validate=validators, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise ValidationError("Not a valid number.")
        result = super()._deserialize(value, attr, data, **kwargs)
        if not math.isfinite(result):
            raise ValidationError("Number must be finite.")
        return result


class Count(fields.Integer):
    """A non-negative whole number (not a boolean)."""

    def __init__(self, max=None, **kwargs):
        super().__init__(strict=True, validate=validate.Range(min=0, max=max), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise ValidationError("Not a valid integer.")
        return super()._deserialize(value, attr, data, **kwargs)


class GeoPoint(Schema):
    """A GeoJSON Point: {"type": "Point", "coordinates": [lng, lat]}."""

    type = fields.String(required=True, validate=validate.Equal("Point"))
    coordinates = fields.List(Measure(), required=True, validate=validate.Length(equal=2))

    @validates_schema
    def in_range(self, data, **kwargs):
        lng, lat = data.get("coordinates", [0, 0])
        if not -180 <= lng <= 180 or not -90 <= lat <= 90:
            raise ValidationError("Coordinates must be [lng, lat] within [-180, 180] and [-90, 90].",
                                  "coordinates")


class ReadingBase(Schema):
    timestamp = UTCDateTime(validate=not_in_future,
                            metadata={"description": "ISO 8601; the server's UTC now when absent"})
    district = fields.String(validate=DISTRICT)
    location = fields.Nested(GeoPoint)

    @post_load
    def fill_timestamp(self, data, **kwargs):
        data.setdefault("timestamp", now_utc())
        return data


class TrafficReadingSchema(ReadingBase):
    sensor_id = fields.String(required=True, validate=SENSOR_ID)
    vehicle_count = Count(required=True, max=100000)
    average_speed = Measure(required=True, min=0, max=300, metadata={"description": "km/h"})
    congestion_level = Measure(required=True, min=0, max=100, metadata={"description": "%"})
    occupancy_pct = Measure(min=0, max=100)


class EnvironmentReadingSchema(ReadingBase):
    sensor_id = fields.String(required=True, validate=SENSOR_ID)
    pm25 = Measure(required=True, min=0, max=1000, metadata={"description": "µg/m³"})
    pm10 = Measure(required=True, min=0, max=2000, metadata={"description": "µg/m³"})
    co2 = Measure(required=True, min=0, max=10000, metadata={"description": "ppm"})
    noise_db = Measure(required=True, min=0, max=194)
    temperature_c = Measure(required=True, min=-90, max=60)
    humidity_pct = Measure(required=True, min=0, max=100)
    no2 = Measure(min=0, max=2000, metadata={"description": "ppb"})
    o3 = Measure(min=0, max=1000, metadata={"description": "ppb"})


class WasteLevelSchema(ReadingBase):
    bin_id = fields.String(required=True, validate=SENSOR_ID)
    fill_level_pct = Measure(required=True, min=0, max=100)
    temperature_c = Measure(min=-60, max=200)
    battery_pct = Measure(min=0, max=100)


class EnergyReadingSchema(ReadingBase):
    grid_id = fields.String(required=True, validate=SENSOR_ID)
    load_mw = Measure(required=True, min=0, max=100000)
    capacity_mw = Measure(required=True, min=0.001, max=100000)
    solar_mw = Measure(min=0, max=100000)
    wind_mw = Measure(min=0, max=100000)
    hydro_mw = Measure(min=0, max=100000)
    consumption_kwh = Measure(min=0, max=1e12)
    frequency_hz = Measure(min=40, max=70)
    voltage_kv = Measure(min=0, max=1200)


READING_SCHEMAS = {
    "traffic": TrafficReadingSchema,
    "environment": EnvironmentReadingSchema,
    "waste": WasteLevelSchema,
    "energy": EnergyReadingSchema,
}

# The entity id each module's readings carry, stored as `sensor_id` too so one index serves all.
ID_FIELDS = {"traffic": "sensor_id", "environment": "sensor_id", "waste": "bin_id", "energy": "grid_id"}


class ReadingOut(Schema):
    """Any stored reading: known fields typed, module-specific measures passed through."""

    class Meta:
        unknown = "include"

    id = fields.String(attribute="_id")
    module = fields.String()
    sensor_id = fields.String()
    timestamp = UTCDateTime()
    received_at = UTCDateTime()
    source = fields.String()
    district = fields.String()
    location = fields.Dict()
