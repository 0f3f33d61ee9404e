"""Schemas for /api/tasks and the data each task type takes."""
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from src.realtime.rooms import READING_MODULES
from src.schemas.common import ObjectIdString, UTCDateTime, unique_items
from src.schemas.pagination import PageArgs, page_of, sort_validator
from src.schemas.readings import DISTRICT

TASK_STATUSES = ("queued", "running", "completed", "failed", "cancelled")


class RangeData(Schema):
    start = UTCDateTime(data_key="from", required=True)
    end = UTCDateTime(data_key="to", required=True)

    @validates_schema
    def ordered(self, data, **kwargs):
        if data.get("start") and data.get("end") and data["start"] >= data["end"]:
            raise ValidationError("`from` must be before `to`.", "from")


class WasteRouteData(Schema):
    district = fields.String(validate=DISTRICT)
    fill_threshold = fields.Float(load_default=80.0, validate=validate.Range(min=0, max=100))
    create_collection = fields.Boolean(load_default=False)


class SignalRetimingData(Schema):
    district = fields.String(validate=DISTRICT)


class CoverageData(Schema):
    pass


class ReportData(RangeData):
    modules = fields.List(fields.String(validate=validate.OneOf(READING_MODULES + ("emergency",))),
                          load_default=lambda: list(READING_MODULES),
                          validate=[validate.Length(min=1, max=5), unique_items])


class ExportData(RangeData):
    module = fields.String(required=True, validate=validate.OneOf(READING_MODULES))
    format = fields.String(load_default="csv", validate=validate.OneOf(("csv", "json")))
    sensor_id = fields.String(validate=validate.Length(max=64))


class SubmitSchema(Schema):
    taskType = fields.String(required=True, attribute="task_type", validate=validate.Length(max=64))
    data = fields.Dict(load_default=dict)
    priority = fields.Integer(load_default=5, validate=validate.Range(min=1, max=10))


class SubmittedSchema(Schema):
    taskId = ObjectIdString(attribute="_id")
    status = fields.String()


class TaskSchema(Schema):
    id = ObjectIdString(attribute="_id")
    taskType = fields.String(attribute="task_type")
    status = fields.String(validate=validate.OneOf(TASK_STATUSES))
    priority = fields.Integer()
    progress = fields.Integer()
    message = fields.String(allow_none=True)
    data = fields.Dict()
    result = fields.Raw(allow_none=True)
    error = fields.String(allow_none=True)
    last_error = fields.String(allow_none=True)
    attempts = fields.Integer()
    max_attempts = fields.Integer()
    cancel_requested = fields.Boolean()
    created_at = UTCDateTime()
    started_at = UTCDateTime(allow_none=True)
    finished_at = UTCDateTime(allow_none=True)
    run_after = UTCDateTime(allow_none=True)
    owner = fields.String(attribute="owner_id")


class TaskArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(TASK_STATUSES))
    taskType = fields.String(attribute="task_type")
    owner = fields.String(validate=validate.Length(max=64), metadata={"description": "admins only"})
    sort = fields.String(load_default="-created_at", validate=sort_validator(("created_at", "priority", "status")))


class TaskSummarySchema(TaskSchema):
    """A task without its (possibly large) result, for lists."""

    class Meta:
        exclude = ("result",)


TaskPageSchema = page_of(TaskSummarySchema, "TaskPageSchema")
