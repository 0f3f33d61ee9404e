"""Schemas for /api/alerts."""
from marshmallow import Schema, fields, validate

from src.events.rooms import MODULES, SEVERITIES
from src.models.alerts import STATUSES
from src.schemas.common import ObjectIdString, UTCDateTime
from src.schemas.pagination import TimeRangeArgs, sort_validator


class AlertArgs(TimeRangeArgs):
    module = fields.String(validate=validate.OneOf(MODULES))
    severity = fields.String(validate=validate.OneOf(SEVERITIES))
    status = fields.String(validate=validate.OneOf(STATUSES + ("open",)))
    sensor_id = fields.String(validate=validate.Length(max=64))
    district = fields.String(validate=validate.Length(max=64))
    type = fields.String(validate=validate.Length(max=64))
    sort = fields.String(load_default="-created_at",
                         validate=sort_validator(("created_at", "raised_at", "severity_rank", "last_seen")))


class AlertActionSchema(Schema):
    note = fields.String(validate=validate.Length(max=1000), load_default=None)


class AlertSchema(Schema):
    id = ObjectIdString(attribute="_id")
    module = fields.String()
    severity = fields.String()
    type = fields.String()
    message = fields.String()
    sensor_id = fields.String(allow_none=True)
    rule_id = fields.String(allow_none=True)
    value = fields.Raw(allow_none=True)
    threshold = fields.Raw(allow_none=True)
    status = fields.String()
    count = fields.Integer()
    district = fields.String(allow_none=True)
    location = fields.Dict(allow_none=True)
    created_at = UTCDateTime()
    raised_at = UTCDateTime()
    last_seen = UTCDateTime()
    acknowledged_at = UTCDateTime(allow_none=True)
    acknowledged_by = fields.Dict(allow_none=True)
    resolved_at = UTCDateTime(allow_none=True)
    resolved_by = fields.Raw(allow_none=True)
    note = fields.String(allow_none=True)
    severity_history = fields.List(fields.Dict())


class AlertPageSchema(Schema):
    items = fields.List(fields.Nested(AlertSchema))
    total = fields.Integer()
    limit = fields.Integer()
    offset = fields.Integer()
