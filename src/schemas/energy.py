"""Schemas for /api/energy."""
from marshmallow import Schema, fields, validate

from src.schemas.common import TIMEZONE_DOC, UTCDateTime
from src.schemas.pagination import MAX_LIMIT, PageArgs, TimeRangeArgs, page_of, sort_validator
from src.schemas.readings import DISTRICT, SENSOR_ID, GeoPoint, Measure


class GridCreateSchema(Schema):
    grid_id = fields.String(required=True, validate=SENSOR_ID)
    name = fields.String(required=True, validate=validate.Length(min=1, max=128))
    district = fields.String(required=True, validate=DISTRICT)
    capacity_mw = Measure(required=True, min=0.001, max=100000)
    location = fields.Nested(GeoPoint)
    solar_capacity_mw = Measure(min=0, max=100000)
    wind_capacity_mw = Measure(min=0, max=100000)


class GridSchema(GridCreateSchema):
    """A grid and its last reported state (copied from its newest reading).

    A reading for a grid that is not registered registers it (auto_registered: true): name = grid_id, and
    capacity_mw, district and location from the reading.
    """
    id = fields.String(attribute="_id", dump_only=True)
    district = fields.String(allow_none=True, dump_default=None, metadata={
        "description": "null for a grid registered by a reading without one, until a reading carries one"})
    auto_registered = fields.Boolean(dump_only=True, dump_default=False,
                                     metadata={"description": "registered by its first reading, not by POST"})
    load_mw = fields.Float(allow_none=True)
    solar_mw = fields.Float(allow_none=True)
    wind_mw = fields.Float(allow_none=True)
    hydro_mw = fields.Float(allow_none=True)
    frequency_hz = fields.Float(allow_none=True)
    voltage_kv = fields.Float(allow_none=True)
    utilization_pct = fields.Float(allow_none=True)
    renewable_pct = fields.Float(allow_none=True)
    last_reading_at = UTCDateTime(allow_none=True)
    created_at = UTCDateTime()
    updated_at = UTCDateTime()


class GridArgs(PageArgs):
    district = fields.String(validate=DISTRICT)
    sort = fields.String(load_default="grid_id",
                         validate=sort_validator(("grid_id", "name", "district", "capacity_mw", "utilization_pct")))


GridPageSchema = page_of(GridSchema, "GridPageSchema")


class ConsumptionArgs(TimeRangeArgs):
    """Default range: the last 24 h. A report, so the page defaults to the maximum size."""
    limit = fields.Integer(load_default=MAX_LIMIT, validate=validate.Range(min=1, max=MAX_LIMIT))
    grid_id = fields.String(validate=SENSOR_ID)
    district = fields.String(validate=DISTRICT)
    resolution = fields.String(load_default="hour", validate=validate.OneOf(("hour", "day")))
    sort = fields.String(load_default="period_start", validate=sort_validator(("period_start",)))


class ConsumptionPeriodSchema(Schema):
    grid_id = fields.String()
    district = fields.String(allow_none=True)
    period_start = UTCDateTime()
    resolution = fields.String()
    hours_covered = fields.Float(metadata={"description": "hours of the period the readings cover (see method)"})
    readings = fields.Integer()
    avg_load_mw = fields.Float(metadata={"description": "time-weighted mean load: energy_mwh / hours_covered"})
    peak_load_mw = fields.Float()
    energy_mwh = fields.Float(metadata={"description": "load_mw integrated over hours_covered"})
    consumption_kwh = fields.Float(allow_none=True, metadata={
        "description": "sum of the meter-reported consumption_kwh (energy since each meter's previous reading); "
                       "null when the grid reports none"})


class ConsumptionGridSchema(Schema):
    grid_id = fields.String()
    district = fields.String(allow_none=True)
    hours_covered = fields.Float()
    readings = fields.Integer()
    avg_load_mw = fields.Float()
    peak_load_mw = fields.Float()
    energy_mwh = fields.Float()
    consumption_kwh = fields.Float(allow_none=True)


class ConsumptionSchema(Schema):
    items = fields.List(fields.Nested(ConsumptionPeriodSchema), metadata={"description": "per grid per period"})
    total = fields.Integer()
    limit = fields.Integer()
    offset = fields.Integer()
    start = UTCDateTime(data_key="from")
    end = UTCDateTime(data_key="to")
    resolution = fields.String()
    timezone = fields.String(metadata={"description": TIMEZONE_DOC})
    grids = fields.List(fields.Nested(ConsumptionGridSchema), metadata={"description": "per grid over the range"})
    energy_mwh = fields.Float(metadata={"description": "all grids over the range"})
    consumption_kwh = fields.Float(allow_none=True)
    method = fields.String(metadata={"description": "how energy is estimated from the hourly rollups"})


class RenewableTotalsSchema(Schema):
    load_mw = fields.Float()
    solar_mw = fields.Float()
    wind_mw = fields.Float()
    hydro_mw = fields.Float()
    renewable_mw = fields.Float()
    renewable_pct = fields.Float(metadata={"description": "renewable_mw / load_mw, capped at 100"})


class RenewableMixSchema(Schema):
    solar_pct = fields.Float()
    wind_pct = fields.Float()
    hydro_pct = fields.Float()


class RenewableGridSchema(Schema):
    grid_id = fields.String()
    district = fields.String(allow_none=True)
    load_mw = fields.Float()
    capacity_mw = fields.Float(allow_none=True)
    solar_mw = fields.Float()
    wind_mw = fields.Float()
    hydro_mw = fields.Float()
    renewable_mw = fields.Float()
    renewable_pct = fields.Float()
    timestamp = UTCDateTime()


class RenewableSchema(Schema):
    as_of = UTCDateTime(allow_none=True, metadata={"description": "newest reading included"})
    grids_reporting = fields.Integer()
    totals = fields.Nested(RenewableTotalsSchema)
    mix = fields.Nested(RenewableMixSchema, metadata={"description": "share of the renewable output by source"})
    grids = fields.List(fields.Nested(RenewableGridSchema))


class LoadBalancingArgs(Schema):
    target_pct = Measure(load_default=85.0, min=1, max=100, metadata={"description": "utilisation target, %"})


class LoadTransferSchema(Schema):
    from_grid = fields.String(attribute="from", data_key="from")
    to = fields.String()
    mw = fields.Float()


class LoadBalancingSchema(Schema):
    target_pct = fields.Float()
    transfers = fields.List(fields.Nested(LoadTransferSchema))
    before = fields.Dict(keys=fields.String(), values=fields.Float(), metadata={"description": "grid: utilisation %"})
    after = fields.Dict(keys=fields.String(), values=fields.Float(), metadata={"description": "grid: utilisation %"})
    transferred_mw = fields.Float()
    unresolved_mw = fields.Float(metadata={"description": "excess above target no receiver could take"})
    grids_considered = fields.Integer()
