"""Alert rules, dedup, escalation, auto-resolve and the operator lifecycle over REST."""
import pytest

from src.realtime import broadcast
from tests.conftest import bearer

ENV = {"sensor_id": "ENV-A1", "pm10": 10.0, "co2": 410.0, "noise_db": 50.0, "temperature_c": 18.0,
       "humidity_pct": 60.0}


@pytest.fixture
def emitted(monkeypatch):
    """Record what the broadcast module is asked to emit."""
    calls = []
    for name in ("emit_alert", "emit_alert_updated"):
        original = getattr(broadcast, name)

        def record(*args, _name=name, _original=original, **kwargs):
            calls.append((_name, args, kwargs))
            return _original(*args, **kwargs)

        monkeypatch.setattr(broadcast, name, record)
    return calls


def post_env(client, headers, pm25, **extra):
    response = client.post("/api/environment/data", headers=headers, json=dict(ENV, pm25=pm25, **extra))
    assert response.status_code == 201, response.get_json()
    return response.get_json()["items"][0]


def open_alerts(client, headers, **args):
    return client.get("/api/alerts", headers=headers, query_string=dict(status="open", **args)).get_json()["items"]


def test_repeats_bump_one_alert_instead_of_creating_more(client, admin_headers, emitted):
    for _ in range(3):
        post_env(client, admin_headers, 40.0)  # AQI 112: low
    alerts = open_alerts(client, admin_headers, sensor_id="ENV-A1")
    assert len(alerts) == 1
    assert alerts[0]["count"] == 3 and alerts[0]["severity"] == "low" and alerts[0]["rule_id"] == "environment.aqi"
    assert [c[0] for c in emitted] == ["emit_alert"]  # one broadcast, not three


def test_escalation_updates_the_open_alert_and_is_broadcast(client, admin_headers, emitted):
    post_env(client, admin_headers, 40.0)
    post_env(client, admin_headers, 300.0)  # AQI 449: critical
    alerts = open_alerts(client, admin_headers, sensor_id="ENV-A1")
    assert len(alerts) == 1 and alerts[0]["severity"] == "critical" and alerts[0]["count"] == 2
    assert alerts[0]["severity_history"][0]["from"] == "low"
    assert [(c[0], c[2].get("escalated")) for c in emitted] == [("emit_alert", False), ("emit_alert", True)]


def test_back_to_normal_auto_resolves(client, admin_headers, emitted):
    post_env(client, admin_headers, 60.0)
    post_env(client, admin_headers, 5.0)
    assert open_alerts(client, admin_headers, sensor_id="ENV-A1") == []
    resolved = client.get("/api/alerts", headers=admin_headers,
                          query_string={"sensor_id": "ENV-A1", "status": "resolved"}).get_json()["items"]
    assert resolved[0]["resolved_by"] == "system"
    assert emitted[-1][0] == "emit_alert_updated" and emitted[-1][1][1] == "resolved"
    post_env(client, admin_headers, 60.0)  # a new episode opens a new alert
    assert len(open_alerts(client, admin_headers, sensor_id="ENV-A1")) == 1


def test_each_rule_has_its_own_alert(client, admin_headers):
    post_env(client, admin_headers, 60.0, noise_db=95.0)
    types = sorted(a["type"] for a in open_alerts(client, admin_headers, sensor_id="ENV-A1"))
    assert types == ["air_quality", "noise"]


@pytest.mark.parametrize("path,body,alert_type,severity", [
    ("/api/traffic/data", {"sensor_id": "T9", "vehicle_count": 5, "average_speed": 5.0, "congestion_level": 86.0},
     "congestion", "high"),
    ("/api/energy/data", {"grid_id": "G9", "load_mw": 50.0, "capacity_mw": 100.0, "frequency_hz": 49.2},
     "frequency_deviation", "critical"),
    ("/api/energy/data", {"grid_id": "G8", "load_mw": 101.0, "capacity_mw": 100.0}, "grid_overload", "critical"),
])
def test_default_rules_fire(client, admin_headers, path, body, alert_type, severity):
    assert client.post(path, headers=admin_headers, json=body).status_code == 201
    alerts = open_alerts(client, admin_headers)
    assert [(a["type"], a["severity"]) for a in alerts] == [(alert_type, severity)]


def test_acknowledge_then_resolve_records_who_and_when(client, admin_headers, make_user, emitted):
    operator_user, tokens = make_user("operator")
    operator = bearer(tokens["access_token"])
    post_env(client, admin_headers, 300.0)
    alert = open_alerts(client, admin_headers)[0]
    ack = client.post(f"/api/alerts/{alert['id']}/acknowledge", headers=operator, json={"note": "crew sent"})
    assert ack.status_code == 200
    body = ack.get_json()
    assert body["status"] == "acknowledged" and body["note"] == "crew sent"
    assert body["acknowledged_by"]["email"] == operator_user["email"] and body["acknowledged_at"].endswith("Z")
    again = client.post(f"/api/alerts/{alert['id']}/acknowledge", headers=operator, json={})
    assert again.status_code == 409
    resolved = client.post(f"/api/alerts/{alert['id']}/resolve", headers=operator, json={"note": "fixed"})
    assert resolved.status_code == 200 and resolved.get_json()["status"] == "resolved"
    assert client.post(f"/api/alerts/{alert['id']}/resolve", headers=operator, json={}).status_code == 409
    assert [c[1][1] for c in emitted if c[0] == "emit_alert_updated"] == ["acknowledged", "resolved"]
    # A resolved alert frees the slot: the next bad reading opens a new alert.
    post_env(client, admin_headers, 300.0)
    assert len(open_alerts(client, admin_headers)) == 1


def test_alert_actions_need_operator_and_a_real_alert(client, admin_headers, make_user):
    viewer = bearer(make_user("viewer")[1]["access_token"])
    post_env(client, admin_headers, 300.0)
    alert = open_alerts(client, admin_headers)[0]
    assert client.post(f"/api/alerts/{alert['id']}/acknowledge", headers=viewer, json={}).status_code == 403
    assert client.get(f"/api/alerts/{alert['id']}", headers=viewer).get_json()["id"] == alert["id"]
    assert client.post(f"/api/alerts/{'0' * 24}/resolve", headers=admin_headers, json={}).status_code == 404
    assert client.get("/api/alerts/not-an-id", headers=admin_headers).status_code == 404


def test_alert_list_filters_and_pagination(client, admin_headers):
    for i in range(5):
        post_env(client, admin_headers, 300.0, sensor_id=f"ENV-P{i}")
    client.post("/api/traffic/data", headers=admin_headers,
                json={"sensor_id": "T1", "vehicle_count": 5, "average_speed": 5.0, "congestion_level": 75.0})
    page = client.get("/api/alerts?module=environment&severity=critical&limit=2&offset=1",
                      headers=admin_headers).get_json()
    assert page["total"] == 5 and len(page["items"]) == 2 and page["offset"] == 1
    assert client.get("/api/environment/alerts", headers=admin_headers).get_json()["total"] == 5
    assert client.get("/api/alerts?severity=urgent", headers=admin_headers).status_code == 422


def test_rules_crud_and_effect(client, admin_headers, make_user):
    viewer = bearer(make_user("viewer")[1]["access_token"])
    rules = client.get("/api/alerts/rules?module=environment", headers=viewer).get_json()
    assert {r["id"] for r in rules["items"]} >= {"environment.aqi", "environment.noise"}
    new = {"module": "environment", "metric": "co2", "type": "co2_high", "name": "CO2 high",
           "levels": [{"severity": "high", "op": "gt", "value": 1500}]}
    assert client.post("/api/alerts/rules", headers=viewer, json=new).status_code == 403
    created = client.post("/api/alerts/rules", headers=admin_headers, json=new)
    assert created.status_code == 201 and created.get_json()["id"] == "environment.co2.1"
    post_env(client, admin_headers, 5.0, co2=1800.0)
    assert [a["type"] for a in open_alerts(client, admin_headers)] == ["co2_high"]
    # Disabling a built-in rule stops it firing; it cannot be deleted.
    assert client.patch("/api/alerts/rules/environment.noise", headers=admin_headers,
                        json={"enabled": False}).get_json()["enabled"] is False
    post_env(client, admin_headers, 5.0, noise_db=99.0, sensor_id="ENV-QUIET")
    assert open_alerts(client, admin_headers, sensor_id="ENV-QUIET") == []
    assert client.delete("/api/alerts/rules/environment.noise", headers=admin_headers).status_code == 409
    assert client.delete("/api/alerts/rules/environment.co2.1", headers=admin_headers).status_code == 204
    assert client.get("/api/alerts/rules/environment.co2.1", headers=admin_headers).status_code == 404


def test_rule_validation(client, admin_headers):
    bad = {"module": "environment", "metric": "co2", "type": "x1", "name": "n",
           "levels": [{"severity": "high", "op": "outside", "value": 5}]}
    response = client.post("/api/alerts/rules", headers=admin_headers, json=bad)
    assert response.status_code == 422 and "levels" in response.get_json()["errors"]
    unknown_metric = dict(bad, metric="sunshine", levels=[{"severity": "high", "op": "gt", "value": 1}])
    response = client.post("/api/alerts/rules", headers=admin_headers, json=unknown_metric)
    assert response.status_code == 422 and "metric" in response.get_json()["errors"]


def test_disabling_a_rule_resolves_its_open_alerts(client, admin_headers, emitted):
    post_env(client, admin_headers, 5.0, noise_db=99.0)
    [alert] = open_alerts(client, admin_headers)
    assert client.patch("/api/alerts/rules/environment.noise", headers=admin_headers,
                        json={"enabled": False}).status_code == 200
    assert open_alerts(client, admin_headers) == []
    resolved = client.get(f"/api/alerts/{alert['id']}", headers=admin_headers).get_json()
    assert resolved["resolved_by"] == "system" and resolved["note"] == "rule disabled"
    assert emitted[-1][0] == "emit_alert_updated"


def test_alert_updated_reaches_every_severity_room_the_alert_was_in(client, admin_headers, monkeypatch):
    from src.realtime import broadcast as module

    sent = []
    monkeypatch.setattr(module, "_emit", lambda event, payload, to: sent.append((event, to)))
    post_env(client, admin_headers, 300.0)  # critical
    post_env(client, admin_headers, 150.0)  # AQI 225: high, de-escalated
    post_env(client, admin_headers, 5.0)    # resolved
    updates = [to for event, to in sent if event == "alert_updated"]
    assert sorted(updates[-1]) == ["alerts:environment:critical", "alerts:environment:high"]


def test_alerts_opened_by_another_process_are_resolved_after_the_index_refresh(app, client, admin_headers,
                                                                                monkeypatch):
    """With MongoDB the open-alert index is re-read periodically instead of queried per reading."""
    from src.db import get_db
    from src.models import alerts
    from src.services import ingest

    index = app.extensions["open_alerts"]
    monkeypatch.setattr(index, "authoritative", False)
    index.load([])
    with app.app_context():  # as if another process had raised it
        alerts.raise_or_bump(get_db(), module="environment", sensor_id="ENV-A1", rule_id="environment.aqi",
                             alert_type="air_quality", severity="high", message="m", value=250, threshold=201)
    post_env(client, admin_headers, 5.0)
    assert len(open_alerts(client, admin_headers)) == 1  # not yet seen by this process
    monkeypatch.setattr(ingest, "OPEN_INDEX_REFRESH_S", 0)
    post_env(client, admin_headers, 5.0)
    assert open_alerts(client, admin_headers) == []


@pytest.mark.parametrize("template", ["{value:d} ppm", "{sensor_id:.1f}", "{threshold:.1f}", "{district!r}"])
def test_templates_that_cannot_render_are_refused(client, admin_headers, template):
    rule = {"module": "environment", "metric": "co2", "type": "co2_high", "name": "CO2", "message": template,
            "levels": [{"severity": "high", "op": "gt", "value": 1500}]}
    response = client.post("/api/alerts/rules", headers=admin_headers, json=rule)
    assert response.status_code == 422 and "message" in response.get_json()["errors"]
