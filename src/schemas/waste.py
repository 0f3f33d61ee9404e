"""Schemas for /api/waste."""
from marshmallow import Schema, fields, validate

from src.models.bins import WASTE_TYPES
from src.models.waste_collections import STATUSES
from src.schemas.common import ObjectIdString, UTCDateTime
from src.schemas.pagination import PageArgs, TimeRangeArgs, page_of, sort_validator
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


BinPageSchema = page_of(BinSchema, "BinPageSchema")


class LevelUpdateSchema(Schema):
    """A level update for a bin named in the URL."""
    fill_level_pct = Measure(required=True, min=0, max=100)
    temperature_c = Measure(min=-60, max=200)
    battery_pct = Measure(min=0, max=100)
    timestamp = UTCDateTime()


MAX_ROUTE_BINS = 1000


def bin_ids_field():
    return fields.List(fields.String(validate=SENSOR_ID), validate=validate.Length(min=1, max=MAX_ROUTE_BINS),
                       metadata={"description": "bins to visit; default: the bins at or above fill_threshold"})


def fill_threshold_field():
    return Measure(load_default=80.0, min=0, max=100, metadata={"description": "% fill; default 80"})


class WasteRouteRequestSchema(Schema):
    """Which bins to route: those at or above fill_threshold, in a district or among bin_ids."""
    district = fields.String(validate=DISTRICT)
    fill_threshold = fill_threshold_field()
    bin_ids = bin_ids_field()


class WasteStopSchema(Schema):
    bin_id = fields.String()
    location = fields.Nested(GeoPoint, allow_none=True)
    fill_level_pct = fields.Float()
    district = fields.String(allow_none=True)
    waste_type = fields.String(allow_none=True)


class WasteDepotSchema(Schema):
    id = fields.String()
    name = fields.String()
    location = fields.Nested(GeoPoint)


class WasteRouteSchema(Schema):
    depot = fields.Nested(WasteDepotSchema)
    stops = fields.List(fields.Nested(WasteStopSchema), metadata={"description": "in visiting order"})
    distance_km = fields.Float(metadata={"description": "depot -> stops -> depot, straight-line legs"})
    nearest_neighbour_km = fields.Float(metadata={"description": "the same tour before 2-opt"})
    improvement_pct = fields.Float()
    bins_considered = fields.Integer(metadata={"description": "bins checked against the threshold"})
    unlocated_bin_ids = fields.List(fields.String(), metadata={"description": "eligible bins with no location"})
    fill_threshold = fields.Float()
    district = fields.String(allow_none=True)


class WasteCollectionCreateSchema(Schema):
    district = fields.String(validate=DISTRICT)
    scheduled_for = UTCDateTime(metadata={"description": "ISO 8601; now when absent"})
    bin_ids = bin_ids_field()
    fill_threshold = fill_threshold_field()


class WasteCollectionRouteSchema(Schema):
    stops = fields.List(fields.Nested(WasteStopSchema))
    distance_km = fields.Float()
    nearest_neighbour_km = fields.Float()
    improvement_pct = fields.Float()


class WasteCollectionSchema(Schema):
    id = ObjectIdString(attribute="_id")
    district = fields.String(allow_none=True)
    scheduled_for = UTCDateTime()
    bin_ids = fields.List(fields.String(), metadata={"description": "in route order"})
    fill_threshold = fields.Float()
    status = fields.String()
    route = fields.Nested(WasteCollectionRouteSchema, allow_none=True)
    created_by = fields.Raw(allow_none=True, metadata={"description": "{id, email, username} or \"system\""})
    created_at = UTCDateTime()
    updated_at = UTCDateTime()
    started_at = UTCDateTime(allow_none=True)
    completed_at = UTCDateTime(allow_none=True)
    completed_by = fields.Raw(allow_none=True)
    cancelled_at = UTCDateTime(allow_none=True)
    bins_emptied = fields.Integer(allow_none=True)
    note = fields.String(allow_none=True)
    status_history = fields.List(fields.Dict())


class WasteCollectionArgs(TimeRangeArgs):
    """from/to filter on scheduled_for."""
    status = fields.String(validate=validate.OneOf(STATUSES))
    district = fields.String(validate=DISTRICT)
    sort = fields.String(load_default="-scheduled_for",
                         validate=sort_validator(("scheduled_for", "created_at", "status")))


WasteCollectionPageSchema = page_of(WasteCollectionSchema, "WasteCollectionPageSchema")


class WasteCollectionStatusSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    note = fields.String(validate=validate.Length(max=1000))
