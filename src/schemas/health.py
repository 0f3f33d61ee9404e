"""Schemas of /api/health, /api/health/live and /api/health/ready."""
from marshmallow import Schema, fields


class HealthSchema(Schema):
    """The public answer has only `status`; a valid access token gets the rest."""
    status = fields.String(metadata={"description": "healthy or degraded (a dependency is down)"})
    service = fields.String()
    version = fields.String()
    environment = fields.String()
    uptime_s = fields.Float()
    server_time = fields.String()
    services = fields.Dict()
    features = fields.Dict()


class ProbeSchema(Schema):
    status = fields.String(metadata={"description": "alive, or ready"})
