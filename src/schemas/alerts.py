"""Schemas for /api/alerts."""
import math
import re
import string

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from src.domain import MODULES, READING_MODULES, SEVERITIES
from src.models.alerts import STATUSES
from src.models.rollups import METRICS
from src.schemas.common import ObjectIdString, UTCDateTime
from src.schemas.pagination import PageArgs, TimeRangeArgs, page_of, sort_validator


class AlertArgs(TimeRangeArgs):
    module = fields.String(validate=validate.OneOf(MODULES))
    severity = fields.String(validate=validate.OneOf(SEVERITIES))
    status = fields.String(validate=validate.OneOf(STATUSES + ("open",)))
    sensor_id = fields.String(validate=validate.Length(max=64))
    district = fields.String(validate=validate.Length(max=64))
    type = fields.String(validate=validate.Length(max=64))
    sort = fields.String(load_default="-created_at",
                         validate=sort_validator(("created_at", "raised_at", "severity_rank", "last_seen")))


class ModuleAlertArgs(AlertArgs):
    """The alert list args without `module` (the URL names it)."""

    class Meta:
        exclude = ("module",)


class AlertActionSchema(Schema):
    note = fields.String(validate=validate.Length(max=1000), load_default=None)


class AlertSchema(Schema):
    """The one shape of an alert: REST returns it and every socket alert event carries it (see alert_wire)."""
    id = ObjectIdString(attribute="_id")
    module = fields.String()
    severity = fields.String()
    type = fields.String()
    message = fields.String()
    # Nullable fields are always present (null when unset), on REST and on the socket alike.
    sensor_id = fields.String(allow_none=True, dump_default=None)
    rule_id = fields.String(allow_none=True, dump_default=None)
    value = fields.Raw(allow_none=True, dump_default=None)
    threshold = fields.Raw(allow_none=True, dump_default=None)
    status = fields.String()
    count = fields.Integer()
    district = fields.String(allow_none=True, dump_default=None)
    location = fields.Dict(allow_none=True, dump_default=None)
    created_at = UTCDateTime()
    raised_at = UTCDateTime()
    last_seen = UTCDateTime()
    acknowledged_at = UTCDateTime(allow_none=True, dump_default=None)
    acknowledged_by = fields.Dict(allow_none=True, dump_default=None)
    resolved_at = UTCDateTime(allow_none=True, dump_default=None)
    resolved_by = fields.Raw(allow_none=True, dump_default=None)
    note = fields.String(allow_none=True, dump_default=None)
    severity_history = fields.List(fields.Dict(), dump_default=list, metadata={
        "description": "each severity change: {from, to, at}; empty until the first"})


_ALERT = AlertSchema()


def alert_wire(alert):
    """A stored alert as REST shows it; services pass this to every alert broadcast (dumped once per emit)."""
    return _ALERT.dump(alert)


AlertPageSchema = page_of(AlertSchema, "AlertPageSchema")


class RuleLevelSchema(Schema):
    severity = fields.String(required=True, validate=validate.OneOf(SEVERITIES))
    op = fields.String(required=True, validate=validate.OneOf(("gt", "gte", "lt", "lte", "outside")))
    value = fields.Raw(required=True, metadata={"description": "a number, or [low, high] for `outside`"})

    @validates_schema
    def value_fits_op(self, data, **kwargs):
        value = data.get("value")
        if data.get("op") == "outside":
            if not (isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value)
                    and value[0] < value[1]):
                raise ValidationError("`outside` takes [low, high] with low < high.", "value")
        elif not _is_number(value):
            raise ValidationError("Must be a finite number.", "value")


TEMPLATE_FIELDS = ("value", "sensor_id", "severity", "threshold", "metric", "district", "name")
SIMPLE_FORMAT = re.compile(r"^\.?\d{0,2}[fdg%]?$")


def validate_template(template):
    """Only the documented {fields}, with at most a short numeric format like {value:.1f}."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValidationError(f"Not a valid template: {exc}.")
    for _, field, spec, conversion in parts:
        if field is None:
            continue
        if (field not in TEMPLATE_FIELDS or conversion or not SIMPLE_FORMAT.match(spec or "")
                or (spec and field != "value")):
            raise ValidationError(f"Template fields are {{{'}, {'.join(TEMPLATE_FIELDS)}}}; only {{value}} "
                                  "may take a short format such as {value:.1f}.")
    sample = dict(value=12.5, sensor_id="S-1", severity="high", threshold="10", metric="m", district="d", name="n")
    try:
        template.format(**sample)
    except (ValueError, TypeError) as exc:  # e.g. {value:d} on a reading that is a float
        raise ValidationError(f"Template cannot render a reading: {exc}.")


def _is_number(value):
    """A finite number of sane size (huge ints overflow floats and BSON's 8-byte ints)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value)) and abs(value) < 1e15
    except OverflowError:
        return False


class RuleCreateSchema(Schema):
    id = fields.String(validate=validate.Regexp(r"^[a-z0-9_.-]{3,64}$"), metadata={
        "description": "optional; defaults to <module>.<metric>.<n>"})
    module = fields.String(required=True, validate=validate.OneOf(READING_MODULES))
    metric = fields.String(required=True, validate=validate.Length(min=1, max=64))
    type = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9_]{2,48}$"))
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    message = fields.String(validate=[validate.Length(max=300), validate_template], metadata={
        "description": "template with {value} {sensor_id} {severity} {threshold} {metric} {district} {name}"})
    levels = fields.List(fields.Nested(RuleLevelSchema), required=True, validate=validate.Length(min=1, max=4))
    enabled = fields.Boolean(load_default=True)

    @validates_schema
    def metric_of_module(self, data, **kwargs):
        known = METRICS.get(data.get("module"), ())
        if data.get("metric") and known and data["metric"] not in known:
            raise ValidationError(f"Unknown metric for this module; one of: {', '.join(known)}.", "metric")
        severities = [level["severity"] for level in data.get("levels", [])]
        if len(severities) != len(set(severities)):
            raise ValidationError("One level per severity.", "levels")


class RuleUpdateSchema(Schema):
    name = fields.String(validate=validate.Length(min=1, max=120))
    message = fields.String(validate=[validate.Length(max=300), validate_template])
    levels = fields.List(fields.Nested(RuleLevelSchema), validate=validate.Length(min=1, max=4))
    enabled = fields.Boolean()

    @validates_schema
    def distinct_levels(self, data, **kwargs):
        severities = [level["severity"] for level in data.get("levels", [])]
        if len(severities) != len(set(severities)):
            raise ValidationError("One level per severity.", "levels")


class RuleSchema(Schema):
    id = fields.String(attribute="_id")
    module = fields.String()
    metric = fields.String()
    type = fields.String()
    name = fields.String()
    message = fields.String()
    levels = fields.List(fields.Nested(RuleLevelSchema))
    enabled = fields.Boolean()
    builtin = fields.Boolean()
    created_at = UTCDateTime()
    updated_at = UTCDateTime()


class RuleArgs(PageArgs):
    module = fields.String(validate=validate.OneOf(MODULES))
    enabled = fields.Boolean()


RulePageSchema = page_of(RuleSchema, "RulePageSchema")
