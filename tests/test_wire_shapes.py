"""One wire shape per entity: a socket alert or task is the REST object, plus only its event's documented extras.

Each test reads the payload a real python-socketio client received and the REST object right after it
(nothing else writes in between), and requires the same keys and the same values.
"""
import json
import os
import re

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def server():
    from tests.conftest import LiveServer

    live = LiveServer({"RATELIMIT_ENABLED": "false", "TASK_WORKERS": "1", "TASK_POLL_S": "0.2"})
    yield live
    live.stop()


def same_as_rest(payload, rest, **extras):
    """`payload` is `rest` plus exactly `extras` (the event's documented additions)."""
    assert {key: payload.get(key) for key in extras} == extras
    entity = {key: value for key, value in payload.items() if key not in extras}
    assert sorted(entity) == sorted(rest), f"keys differ: socket-only {sorted(set(entity) - set(rest))}, " \
                                           f"REST-only {sorted(set(rest) - set(entity))}"
    assert entity == rest


def rest_alert(admin, alert_id):
    response = admin.get(f"/api/alerts/{alert_id}")
    assert response.status_code == 200, response.text
    return response.json()


def test_alert_events_carry_the_rest_alert(connect, admin):
    client = connect(admin.token)
    client.call("subscribe_alerts", {"modules": ["environment"]})
    sensor = "E-wire-shape"

    admin.environment(sensor, "low")
    created = client.wait_for("environment_alert", where=lambda p: p["sensor_id"] == sensor)[0]
    alert_id = created["id"]
    same_as_rest(created, rest_alert(admin, alert_id), escalated=False)

    admin.environment(sensor, "critical")  # escalation: severity_history gains a step with a time in it
    escalated = client.wait_for("environment_alert", count=2, where=lambda p: p["sensor_id"] == sensor)[1]
    assert escalated["severity_history"] and escalated["severity_history"][0]["at"].endswith("Z")
    same_as_rest(escalated, rest_alert(admin, alert_id), escalated=True)

    def updates(count):
        return client.wait_for("alert_updated", count=count, where=lambda p: p["id"] == alert_id)[count - 1]

    admin.environment(sensor, "medium")
    same_as_rest(updates(1), rest_alert(admin, alert_id), change="deescalated")
    assert admin.post(f"/api/alerts/{alert_id}/acknowledge", {"note": "crew sent"}).status_code == 200
    acknowledged = updates(2)
    assert acknowledged["acknowledged_by"]["email"] == "admin@smartcity.com"
    same_as_rest(acknowledged, rest_alert(admin, alert_id), change="acknowledged")
    assert admin.post(f"/api/alerts/{alert_id}/resolve", {"note": "cleared"}).status_code == 200
    same_as_rest(updates(3), rest_alert(admin, alert_id), change="resolved")

    # A replay sends the stored alert as it is now, flagged `replayed`.
    late = connect(admin.token)
    ack = late.call("subscribe_alerts", {"modules": ["environment"], "since": created["created_at"]})
    assert ack["ok"] is True
    replayed = late.wait_for("environment_alert", where=lambda p: p["id"] == alert_id)[0]
    same_as_rest(replayed, rest_alert(admin, alert_id), replayed=True)


def test_event_alerts_of_incidents_carry_the_rest_alert(connect, admin):
    """Emergency alerts are emitted from the document just inserted, not read back: same shape and values."""
    client = connect(admin.token)
    client.call("subscribe_alerts", {"modules": ["emergency"]})
    incident = admin.post("/api/emergency/incidents", {
        "type": "fire", "severity": "high", "description": "Wire-shape fire",
        "location": {"type": "Point", "coordinates": [-73.985, 40.748]}})
    assert incident.status_code == 201, incident.text
    alert = client.wait_for("emergency_alert", where=lambda p: "Wire-shape" in p["message"])[0]
    assert alert["location"] == {"type": "Point", "coordinates": [-73.985, 40.748]}
    same_as_rest(alert, rest_alert(admin, alert["id"]), escalated=False)


def test_task_status_carries_the_rest_task(connect, admin):
    client = connect(admin.token)
    admin.traffic("T-wire-shape")
    response = admin.post("/api/tasks/submit", {"task_type": "report_generation", "data": {
        "from": "2026-01-01T00:00:00Z", "to": "2027-01-01T00:00:00Z", "modules": ["traffic"]}})
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    done = client.wait_for("task_status", where=lambda p: p["id"] == task_id and p["status"] == "completed",
                           timeout=20)[0]
    rest = admin.get(f"/api/tasks/{task_id}").json()
    same_as_rest(done, rest)
    assert done["taskType"] == done["task_type"] == "report_generation"  # the deprecated alias, as on REST
    assert done["updated_at"].endswith("Z") and done["result"]["modules"]["traffic"]["readings"] >= 1
    for status in client.of("task_status"):  # every status on the way had the same keys
        assert sorted(status) == sorted(rest)


BROADCASTS = re.compile(r"broadcast\.(emit_alert|emit_alert_updated|emit_replayed_alert|emit_task_status)\(([^\n]*)")


def test_every_alert_and_task_broadcast_is_the_schema_dump():
    """Services hand broadcast the schema's dump (alert_wire, task_wire), never a raw document."""
    calls = []
    for folder, _, files in os.walk(os.path.join(ROOT, "src")):
        for name in files:
            if name.endswith(".py"):
                text = open(os.path.join(folder, name), encoding="utf-8").read()
                calls += [(name, event, args) for event, args in BROADCASTS.findall(text)]
    assert len(calls) >= 10
    wire = {"emit_task_status": "task_wire("}
    assert [call for call in calls if wire.get(call[1], "alert_wire(") not in call[2]] == []


def documented_example(heading):
    """The first JSON example under `### <heading>` in docs/events.md."""
    text = open(os.path.join(ROOT, "docs", "events.md"), encoding="utf-8").read()
    section = text[text.index(f"### {heading}\n"):]
    return json.loads(re.search(r"```json\n(.*?)```", section, flags=re.S).group(1))


def test_documented_examples_are_the_schema_plus_the_extras():
    from src.schemas.alerts import AlertSchema
    from src.schemas.tasks import TaskSchema

    alert_keys, task_keys = set(AlertSchema().fields), set(TaskSchema().fields)
    assert set(documented_example("traffic_alert, environment_alert, waste_alert, energy_alert, emergency_alert")) \
        == alert_keys | {"escalated"}
    assert set(documented_example("alert_updated")) == alert_keys | {"change"}
    assert set(documented_example("task_status")) == task_keys
