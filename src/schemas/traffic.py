"""Schemas for /api/traffic incidents, signal timing and route planning."""
import math

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from src.domain import SEVERITIES
from src.models.traffic_incidents import STATUSES, TYPES
from src.schemas.common import ObjectIdString, UTCDateTime, not_in_future
from src.schemas.pagination import TimeRangeArgs, page_of, sort_validator
from src.schemas.readings import DISTRICT, SENSOR_ID, GeoPoint



class TrafficIncidentCreateSchema(Schema):
    type = fields.String(required=True, validate=validate.OneOf(TYPES))
    severity = fields.String(required=True, validate=validate.OneOf(SEVERITIES))
    description = fields.String(load_default="", validate=validate.Length(max=2000))
    location = fields.Nested(GeoPoint, allow_none=True,
                             metadata={"description": "optional when sensor_id names a known sensor"})
    district = fields.String(validate=DISTRICT, metadata={"description": "nearest district when absent"})
    sensor_id = fields.String(validate=SENSOR_ID)
    road_id = fields.String(validate=validate.Length(min=1, max=64))
    reported_at = UTCDateTime(validate=not_in_future, metadata={"description": "the server's UTC now when absent"})

    @validates_schema
    def placed(self, data, **kwargs):
        if data.get("location") is None and not data.get("sensor_id"):
            raise ValidationError("Give a location, or a sensor_id whose location is known.", "location")


class TrafficIncidentUpdateSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(STATUSES),
                           metadata={"description": "reported -> responding -> cleared"})
    note = fields.String(validate=validate.Length(max=1000))


class TrafficIncidentArgs(TimeRangeArgs):
    status = fields.String(validate=validate.OneOf(STATUSES))
    district = fields.String(validate=DISTRICT)
    severity = fields.String(validate=validate.OneOf(SEVERITIES))
    type = fields.String(validate=validate.OneOf(TYPES))
    sort = fields.String(load_default="-reported_at",
                         validate=sort_validator(("reported_at", "updated_at", "severity_rank")))


class TrafficIncidentSchema(Schema):
    id = ObjectIdString(attribute="_id")
    type = fields.String()
    severity = fields.String()
    status = fields.String()
    description = fields.String()
    location = fields.Dict()
    district = fields.String()
    sensor_id = fields.String(allow_none=True)
    road_id = fields.String(allow_none=True)
    source = fields.String()
    reported_at = UTCDateTime()
    reported_by = fields.Dict(allow_none=True)
    responding_at = UTCDateTime(allow_none=True)
    responding_by = fields.Dict(allow_none=True)
    cleared_at = UTCDateTime(allow_none=True)
    cleared_by = fields.Dict(allow_none=True)
    note = fields.String(allow_none=True)
    alert_id = ObjectIdString(allow_none=True)
    updated_at = UTCDateTime()


TrafficIncidentPageSchema = page_of(TrafficIncidentSchema, "TrafficIncidentPageSchema")


class SignalArgs(Schema):
    district = fields.String(validate=DISTRICT)


class PhaseTimingSchema(Schema):
    flow_veh_h = fields.Float()
    green_s = fields.Float()


class SignalSensorSchema(Schema):
    sensor_id = fields.String()
    phase = fields.String()
    vehicle_count = fields.Integer()
    flow_veh_h = fields.Float()
    timestamp = UTCDateTime()
    registered = fields.Boolean(metadata={"description": "false when placed at the nearest intersection"})


class SignalPlanSchema(Schema):
    intersection = fields.String()
    location = fields.Dict()
    district = fields.String()
    phases = fields.Dict(keys=fields.String(), values=fields.Nested(PhaseTimingSchema))
    cycle_s = fields.Float()
    Y = fields.Float()
    lost_time_s = fields.Float()
    oversaturated = fields.Boolean()
    sensors = fields.List(fields.Nested(SignalSensorSchema))


class SignalPlansSchema(Schema):
    items = fields.List(fields.Nested(SignalPlanSchema))
    method = fields.String()
    flow_basis = fields.String()
    generated_at = UTCDateTime()


class RoutePoint(fields.Field):
    """A [lng, lat] pair (snapped to the nearest intersection) or an intersection id."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            if not 1 <= len(value) <= 64:
                raise ValidationError("A node id has 1-64 characters.")
            return value
        if isinstance(value, (list, tuple)) and len(value) == 2:
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
                try:
                    lng, lat = float(value[0]), float(value[1])
                except OverflowError:  # ints too big for a float
                    lng = lat = math.inf
                if -180 <= lng <= 180 and -90 <= lat <= 90:
                    return (lng, lat)
        raise ValidationError("Give [lng, lat] within [-180, 180] and [-90, 90], or a node id string.")


class TrafficRouteRequestSchema(Schema):
    origin = RoutePoint(required=True, metadata={"description": "[lng, lat] or a node id"})
    destination = RoutePoint(required=True, metadata={"description": "[lng, lat] or a node id"})


class TrafficRouteSchema(Schema):
    path = fields.List(fields.String())
    coordinates = fields.List(fields.List(fields.Float()))
    distance_km = fields.Float()
    travel_time_min = fields.Float()
    origin_node = fields.String()
    destination_node = fields.String()
    congested_roads = fields.Integer(metadata={"description": "roads with a congestion level above 0"})
    algorithm = fields.String()
