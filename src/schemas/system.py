"""Schemas for /api/system."""
from marshmallow import Schema, fields

from src.schemas.common import UTCDateTime


class JobSchema(Schema):
    id = fields.String()
    description = fields.String()
    interval_s = fields.Float()
    leader_only = fields.Boolean()
    paused = fields.Boolean()
    next_run_at = UTCDateTime(allow_none=True)
    last_run_at = UTCDateTime(allow_none=True)
    last_duration_ms = fields.Float(allow_none=True)
    last_error = fields.String(allow_none=True)
    last_error_at = UTCDateTime(allow_none=True)
    last_result = fields.Raw(allow_none=True)
    runs = fields.Integer()
    failures = fields.Integer()


class JobListSchema(Schema):
    items = fields.List(fields.Nested(JobSchema))
    leader = fields.Boolean(metadata={"description": "whether this process holds the scheduler lock"})
    lock_backend = fields.String()
    process = fields.String()


class JobRunSchema(Schema):
    id = fields.String()
    status = fields.String()


class PurgeSchema(Schema):
    readings = fields.Integer()
    latest = fields.Integer()
    alerts = fields.Integer()
    rollups = fields.Integer()
    traffic_incidents = fields.Integer()
    emergency_incidents = fields.Integer()
