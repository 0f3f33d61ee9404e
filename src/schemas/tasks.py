"""Schemas for /api/tasks and the data each task type takes."""
from collections.abc import Mapping

from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates_schema

from src.domain import READING_MODULES
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


DEPRECATED_ALIAS = "Deprecated camelCase alias of `{}`; the API's names are snake_case."


def take_alias(data, name, alias):
    """Move a deprecated camelCase key to its snake_case name (422 if both are given and differ)."""
    if not isinstance(data, Mapping) or alias not in data:
        return data
    data = {key: data[key] for key in data}
    value = data.pop(alias)
    if name in data and data[name] != value:
        raise ValidationError(f"Give {name} or its deprecated alias {alias}, not both.", alias)
    data[name] = value
    return data


class SubmitSchema(Schema):
    task_type = fields.String(required=True, validate=validate.Length(max=64))
    data = fields.Dict(load_default=dict)
    priority = fields.Integer(load_default=5, validate=validate.Range(min=1, max=10))

    # Documented and accepted; moved to `task_type` before loading, so it never reaches the view.
    taskType = fields.String(load_only=True, attribute="_taskType_alias", metadata={
        "deprecated": True, "description": DEPRECATED_ALIAS.format("task_type")})

    @pre_load
    def deprecated_names(self, data, **kwargs):
        return take_alias(data, "task_type", "taskType")


class SubmittedSchema(Schema):
    task_id = ObjectIdString(attribute="_id")
    taskId = ObjectIdString(attribute="_id", dump_only=True, metadata={
        "deprecated": True, "description": DEPRECATED_ALIAS.format("task_id")})
    status = fields.String()


class TaskSchema(Schema):
    """The one shape of a task: GET /api/tasks/<id> returns it and `task_status` carries it (see task_wire)."""
    id = ObjectIdString(attribute="_id")
    task_id = ObjectIdString(attribute="_id", dump_only=True, metadata={"description": "the same as `id`"})
    task_type = fields.String()
    taskType = fields.String(attribute="task_type", dump_only=True, metadata={"deprecated": True,
                                                              "description": DEPRECATED_ALIAS.format("task_type")})
    status = fields.String(validate=validate.OneOf(TASK_STATUSES))
    priority = fields.Integer()
    progress = fields.Integer()
    # Nullable fields are always present (null when unset), on REST and on the socket alike.
    message = fields.String(allow_none=True, dump_default=None)
    data = fields.Dict()
    result = fields.Raw(allow_none=True, dump_default=None)
    error = fields.String(allow_none=True, dump_default=None)
    last_error = fields.String(allow_none=True, dump_default=None)
    attempts = fields.Integer()
    max_attempts = fields.Integer()
    cancel_requested = fields.Boolean()
    created_at = UTCDateTime()
    updated_at = UTCDateTime()
    started_at = UTCDateTime(allow_none=True, dump_default=None)
    finished_at = UTCDateTime(allow_none=True, dump_default=None)
    run_after = UTCDateTime(allow_none=True, dump_default=None)
    owner = fields.String(attribute="owner_id")


_TASK = TaskSchema()


def task_wire(task):
    """A stored task as REST shows it; `task_status` carries exactly this (dumped once per emit)."""
    return _TASK.dump(task)


class TaskArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(TASK_STATUSES))
    task_type = fields.String(validate=validate.Length(max=64))
    taskType = fields.String(load_only=True, attribute="_taskType_alias", metadata={
        "deprecated": True, "description": DEPRECATED_ALIAS.format("task_type")})
    owner = fields.String(validate=validate.Length(max=64), metadata={"description": "admins only"})
    sort = fields.String(load_default="-created_at", validate=sort_validator(("created_at", "priority", "status")))

    @pre_load
    def deprecated_names(self, data, **kwargs):
        return take_alias(data, "task_type", "taskType")


class TaskSummarySchema(TaskSchema):
    """A task without its (possibly large) result, for lists."""

    class Meta:
        exclude = ("result",)


TaskPageSchema = page_of(TaskSummarySchema, "TaskPageSchema")
