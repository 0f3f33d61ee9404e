"""Payloads of client -> server Socket.IO events."""
from bson import ObjectId
from marshmallow import Schema, ValidationError, fields, post_load, validate

from src.domain import (MODULES, READING_MODULES, SEVERITIES, STREAM_MAX_DISTRICTS as MAX_DISTRICTS,
                        STREAM_MAX_INTERVAL_MS as MAX_INTERVAL_MS, STREAM_MAX_SENSORS as MAX_SENSORS,
                        STREAM_MIN_INTERVAL_MS as MIN_INTERVAL_MS)
from src.schemas.common import UTCDateTime
from src.schemas.readings import DISTRICT, SENSOR_ID


class RoomSchema(Schema):
    room = fields.String(required=True, validate=validate.Length(min=1, max=128))


class AlertSince(fields.Field):
    """An alert id (24 hex characters) or an ISO 8601 time."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and len(value) == 24 and ObjectId.is_valid(value):
            return value
        try:
            return UTCDateTime()._deserialize(value, attr, data)
        except ValidationError:
            raise ValidationError("Must be an alert id or an ISO 8601 time.")


class SubscribeAlertsSchema(Schema):
    severity_levels = fields.List(fields.String(validate=validate.OneOf(SEVERITIES)), load_default=list,
                                  validate=validate.Length(max=len(SEVERITIES)))
    modules = fields.List(fields.String(validate=validate.OneOf(MODULES)), load_default=list,
                          validate=validate.Length(max=len(MODULES)))
    since = AlertSince(load_default=None)


class RealTimeRequestSchema(Schema):
    data_type = fields.String(required=True, validate=validate.OneOf(("traffic", "environment", "waste",
                                                                      "energy", "all")))


class SubscribeStreamSchema(Schema):
    modules = fields.List(fields.String(validate=validate.OneOf(READING_MODULES)), required=True,
                          validate=validate.Length(min=1, max=len(READING_MODULES)))
    interval_ms = fields.Integer(load_default=250, strict=True,
                                 validate=validate.Range(min=MIN_INTERVAL_MS, max=MAX_INTERVAL_MS))
    sensors = fields.List(fields.String(validate=SENSOR_ID), load_default=list,
                          validate=validate.Length(max=MAX_SENSORS))
    districts = fields.List(fields.String(validate=DISTRICT), load_default=list,
                            validate=validate.Length(max=MAX_DISTRICTS))

    @post_load
    def without_repeats(self, data, **kwargs):
        """One filter, one group: ["traffic", "traffic"] is ["traffic"]."""
        return {key: list(dict.fromkeys(value)) if isinstance(value, list) else value for key, value in data.items()}


class ReauthenticateSchema(Schema):
    token = fields.String(required=True, validate=validate.Length(min=1, max=4096))


class EmptySchema(Schema):
    pass
