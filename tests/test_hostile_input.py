"""Hostile input gets a clear 4xx in the one error shape, never a 500 and never partial data."""
import pytest

from src.db import get_db
from tests.conftest import bearer, login

BIG = "1" + "0" * 400
ENV = '{"sensor_id": "E1", "pm25": %s, "pm10": 1, "co2": 1, "noise_db": 1, "temperature_c": 1, "humidity_pct": 1%s}'


@pytest.mark.parametrize("method,path,body,status", [
    ("post", "/api/environment/data", ENV % ("1", ', "district": "\\ud800"'), 400),
    ("post", "/api/environment/data", "[" * 100000, 400),
    ("post", "/api/environment/data", ENV % (BIG, ""), 422),
    ("post", "/api/environment/data", ENV % ("1", ', "timestamp": "9999-12-31T23:59:59-05:00"'), 422),
    ("post", "/api/alerts/rules", '{"module": "environment", "metric": "co2", "type": "x_y", "name": "n", '
                                  '"levels": [{"severity": "high", "op": "gt", "value": %s}]}' % BIG, 422),
    ("post", "/api/alerts/rules", '{"module": "environment", "metric": "co2", "type": "x_y", "name": "n", '
                                  '"message": "{district.__class__}", '
                                  '"levels": [{"severity": "high", "op": "gt", "value": 1}]}', 422),
    ("post", "/api/traffic/optimization/routes", '{"origin": [%s, 1], "destination": "N-1-1"}' % BIG, 422),
    ("get", "/api/traffic/data?from=9999-12-31T23:59:59-05:00", None, 422),
    ("get", "/api/analytics/overview?to=0001-01-01T00:00:00Z", None, 422),
    ("post", "/api/auth/login", '{"email": "a@b.co", "password": "\\ud800\\ud800pass"}', 400),
])
def test_hostile_bodies_are_4xx(app, client, admin_headers, method, path, body, status):
    kwargs = {"headers": admin_headers}
    if body is not None:
        kwargs.update(data=body, content_type="application/json")
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == status, response.get_json()
    assert set(response.get_json()) <= {"error", "message", "errors"}
    assert get_db(app).readings.count_documents({}) == 0


def test_refresh_with_an_unencodable_token_is_401(client):
    response = client.post("/api/auth/refresh", json={"refresh_token": "abc.def.ghi"})
    assert response.status_code == 401


def test_logout_survives_a_password_change_without_redis(client, make_user):
    """Per-user cutoffs and per-token revocations are separate entries; both are checked."""
    user, tokens = make_user("viewer", password="first-pass")
    headers = bearer(tokens["access_token"])
    changed = client.post("/api/auth/change-password", headers=headers,
                          json={"current_password": "first-pass", "new_password": "second-pass"}).get_json()
    fresh = login(client, email=user["email"], password="second-pass")
    for session in (changed, fresh):
        access = bearer(session["access_token"])
        assert client.post("/api/auth/logout", headers=access,
                           json={"refresh_token": session["refresh_token"]}).status_code == 200
        assert client.get("/api/auth/profile", headers=access).status_code == 401
        assert client.post("/api/auth/refresh", json={"refresh_token": session["refresh_token"]}).status_code == 401


def test_a_broken_stored_rule_template_does_not_break_ingest(app, client, admin_headers):
    with app.app_context():
        get_db().alert_rules.update_one({"_id": "environment.aqi"}, {"$set": {"message": "{value[0]} {nope.x}"}})
        app.extensions["rule_cache"].invalidate()
    body = {"sensor_id": "E1", "pm25": 300.0, "pm10": 1.0, "co2": 1.0, "noise_db": 1.0, "temperature_c": 1.0,
            "humidity_pct": 1.0}
    assert client.post("/api/environment/data", headers=admin_headers, json=body).status_code == 201
    alert = client.get("/api/alerts", headers=admin_headers).get_json()["items"][0]
    assert alert["severity"] == "critical" and "E1" in alert["message"]
