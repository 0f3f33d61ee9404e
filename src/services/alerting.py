"""Alert rule evaluation: pure, no I/O."""
from src.domain import SEVERITY_RANK

OPERATORS = {
    "gt": lambda v, t: v > t,
    "gte": lambda v, t: v >= t,
    "lt": lambda v, t: v < t,
    "lte": lambda v, t: v <= t,
    "outside": lambda v, t: v < t[0] or v > t[1],
}


def matching_level(rule, value):
    """The most severe level of `rule` that `value` meets, or None."""
    levels = sorted(rule["levels"], key=lambda level: SEVERITY_RANK[level["severity"]], reverse=True)
    for level in levels:
        if OPERATORS[level["op"]](value, level["value"]):
            return level
    return None


def format_threshold(level):
    value = level["value"]
    return f"{value[0]}-{value[1]}" if isinstance(value, (list, tuple)) else value


def evaluate(reading, rules):
    """Decisions for one reading: [(rule, level or None, value)] for each rule whose metric it carries.

    A level means "raise or bump at this severity"; None means "back to normal: resolve if open".
    """
    decisions = []
    for rule in rules:
        value = reading.get(rule["metric"])
        if value is None or isinstance(value, bool):
            continue
        decisions.append((rule, matching_level(rule, value), value))
    return decisions


def render_message(rule, level, reading, value):
    """The human message for an alert raised by `rule` at `level`."""
    template = rule.get("message") or "{metric} {value} at {sensor_id} ({severity})"
    fields = {"value": round(value, 2) if isinstance(value, float) else value,
              "sensor_id": reading.get("sensor_id"), "severity": level["severity"],
              "threshold": format_threshold(level), "metric": rule["metric"],
              "district": reading.get("district") or "-", "name": rule.get("name", rule["metric"])}
    try:
        # Templates are validated on the way in; rules stored before that must not break ingest.
        message = template.format(**fields)
        if len(message) <= 500:
            return message
    except Exception:
        pass
    return f"{rule.get('name', rule['metric'])}: {fields['value']} at {fields['sensor_id']}"
