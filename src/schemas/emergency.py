"""Schemas for /api/emergency: units, incidents, dispatch, broadcasts, coverage and statistics."""
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from src.domain import SEVERITIES
from src.models.emergency_incidents import STATUSES as INCIDENT_STATUSES
from src.models.emergency_incidents import TYPES
from src.models.units import KINDS, STATUSES as UNIT_STATUSES
from src.schemas.common import ObjectIdString, UTCDateTime, not_in_future
from src.schemas.pagination import PageArgs, TimeRangeArgs, page_of, sort_validator
from src.schemas.readings import DISTRICT, GeoPoint



# Units

class UnitArgs(PageArgs):
    kind = fields.String(validate=validate.OneOf(KINDS))
    status = fields.String(validate=validate.OneOf(UNIT_STATUSES))
    district = fields.String(validate=DISTRICT)
    sort = fields.String(load_default="unit_id", validate=sort_validator(("unit_id", "kind", "status", "district")))


class UnitSchema(Schema):
    id = ObjectIdString(attribute="_id")
    unit_id = fields.String()
    kind = fields.String()
    status = fields.String()
    district = fields.String()
    location = fields.Dict()
    base = fields.Dict()
    speed_kmh = fields.Float()
    incident_id = fields.String(allow_none=True)
    destination = fields.Dict(allow_none=True)
    distance_km = fields.Float(allow_none=True)
    eta_min = fields.Float(allow_none=True)
    eta_at = UTCDateTime(allow_none=True)
    dispatched_at = UTCDateTime(allow_none=True)
    arrived_at = UTCDateTime(allow_none=True)
    updated_at = UTCDateTime()


UnitPageSchema = page_of(UnitSchema, "UnitPageSchema")


# Incidents

class EmergencyIncidentCreateSchema(Schema):
    type = fields.String(required=True, validate=validate.OneOf(TYPES))
    severity = fields.String(required=True, validate=validate.OneOf(SEVERITIES))
    location = fields.Nested(GeoPoint, required=True)
    district = fields.String(validate=DISTRICT, metadata={"description": "nearest district when absent"})
    description = fields.String(load_default="", validate=validate.Length(max=2000))
    reported_at = UTCDateTime(validate=not_in_future, metadata={"description": "the server's UTC now when absent"})


class EmergencyIncidentUpdateSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(INCIDENT_STATUSES), metadata={
        "description": "reported -> resolved|cancelled; dispatched -> on_scene|resolved|cancelled; "
                       "on_scene -> resolved. `dispatched` comes from the dispatch endpoints."})
    note = fields.String(validate=validate.Length(max=1000))


class EmergencyIncidentArgs(TimeRangeArgs):
    status = fields.String(validate=validate.OneOf(INCIDENT_STATUSES))
    type = fields.String(validate=validate.OneOf(TYPES))
    severity = fields.String(validate=validate.OneOf(SEVERITIES))
    district = fields.String(validate=DISTRICT)
    sort = fields.String(load_default="-reported_at",
                         validate=sort_validator(("reported_at", "updated_at", "severity_rank")))


class AssignedUnitSchema(Schema):
    unit_id = fields.String()
    kind = fields.String()
    distance_km = fields.Float()
    eta_min = fields.Float()
    eta_at = UTCDateTime()
    dispatched_at = UTCDateTime()


class EmergencyIncidentSchema(Schema):
    id = ObjectIdString(attribute="_id")
    type = fields.String()
    severity = fields.String()
    status = fields.String()
    description = fields.String()
    location = fields.Dict()
    district = fields.String()
    source = fields.String()
    reported_at = UTCDateTime()
    reported_by = fields.Dict(allow_none=True)
    dispatched_at = UTCDateTime(allow_none=True)
    on_scene_at = UTCDateTime(allow_none=True)
    resolved_at = UTCDateTime(allow_none=True)
    resolved_by = fields.Dict(allow_none=True)
    cancelled_at = UTCDateTime(allow_none=True)
    cancelled_by = fields.Dict(allow_none=True)
    response_time_s = fields.Float(allow_none=True)
    response_time_basis = fields.String(allow_none=True, metadata={
        "description": "on_scene: first unit arrival - reported_at; resolved: resolution - reported_at "
                       "(no unit was recorded on scene)"})
    assigned_units = fields.List(fields.Nested(AssignedUnitSchema))
    note = fields.String(allow_none=True)
    updated_at = UTCDateTime()


EmergencyIncidentPageSchema = page_of(EmergencyIncidentSchema, "EmergencyIncidentPageSchema")


# Dispatch

class DispatchSchema(Schema):
    incident_id = fields.String(required=True, validate=validate.Length(min=1, max=64))


class DispatchNearestSchema(Schema):
    kind = fields.String(validate=validate.OneOf(KINDS), metadata={
        "description": "default: ambulance for medical, fire for fire, police for crime, any kind otherwise"})


class DispatchResultSchema(Schema):
    unit = fields.Nested(UnitSchema)
    incident = fields.Nested(EmergencyIncidentSchema)
    distance_km = fields.Float()
    eta_min = fields.Float()
    eta_at = UTCDateTime()
    alert_id = fields.String()


# Public broadcasts

class PublicAlertCreateSchema(Schema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    message = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    severity = fields.String(required=True, validate=validate.OneOf(SEVERITIES))
    district = fields.String(validate=DISTRICT, load_default=None, metadata={"description": "absent: city-wide"})


class PublicAlertSchema(Schema):
    id = ObjectIdString(attribute="_id")
    title = fields.String()
    message = fields.String()
    severity = fields.String()
    district = fields.String(allow_none=True)
    issued_by = fields.String(allow_none=True)
    created_at = UTCDateTime()


class PublicAlertArgs(PageArgs):
    district = fields.String(validate=DISTRICT)
    severity = fields.String(validate=validate.OneOf(SEVERITIES))
    sort = fields.String(load_default="-created_at", validate=sort_validator(("created_at", "severity")))


PublicAlertPageSchema = page_of(PublicAlertSchema, "PublicAlertPageSchema")


# Coverage and statistics

class CoverageUnitSchema(Schema):
    unit_id = fields.String(allow_none=True)
    distance_km = fields.Float(allow_none=True)
    eta_min = fields.Float(allow_none=True)


class DistrictCoverageSchema(Schema):
    district = fields.String()
    location = fields.Dict(metadata={"description": "the district centre distances are measured from"})
    units = fields.Dict(keys=fields.String(), values=fields.Nested(CoverageUnitSchema),
                        metadata={"description": "per kind; all fields null when no unit of the kind is available"})


class EmergencyCoverageSchema(Schema):
    items = fields.List(fields.Nested(DistrictCoverageSchema))
    available_units = fields.Dict(keys=fields.String(), values=fields.Integer())
    generated_at = UTCDateTime()


class EmergencyStatisticsArgs(Schema):
    start = UTCDateTime(data_key="from", metadata={"description": "inclusive ISO 8601 start (reported_at)"})
    end = UTCDateTime(data_key="to", metadata={"description": "exclusive ISO 8601 end (reported_at)"})

    @validates_schema
    def ordered(self, data, **kwargs):
        if data.get("start") and data.get("end") and data["start"] >= data["end"]:
            raise ValidationError("`from` must be before `to`.", "from")


class ResponseTimeSchema(Schema):
    count = fields.Integer()
    avg_s = fields.Float(allow_none=True)
    min_s = fields.Float(allow_none=True)
    max_s = fields.Float(allow_none=True)


class EmergencyStatisticsSchema(Schema):
    start = UTCDateTime(data_key="from", allow_none=True)
    end = UTCDateTime(data_key="to", allow_none=True)
    total = fields.Integer()
    by_status = fields.Dict(keys=fields.String(), values=fields.Integer())
    response_time = fields.Nested(ResponseTimeSchema)
    units_by_status = fields.Dict(keys=fields.String(), values=fields.Integer())
