"""Schema of /api/health."""
from marshmallow import Schema, fields


class HealthSchema(Schema):
    status = fields.String(metadata={"description": "healthy or degraded"})
    service = fields.String()
    version = fields.String()
    environment = fields.String()
    uptime_s = fields.Float()
    server_time = fields.String()
    services = fields.Dict()
    features = fields.Dict()
