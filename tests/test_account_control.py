"""Account control: admin user management, sessions that end when they should, password limits, headers."""
import jwt
import pytest

from src.config import ConfigError
from tests.conftest import ADMIN, bearer, login


def test_admins_list_users_without_password_hashes(client, admin_headers, make_user):
    make_user("operator")
    make_user("viewer")
    body = client.get("/api/users", headers=admin_headers).get_json()
    assert body["total"] == 3 and body["limit"] == 50 and body["offset"] == 0
    assert all("password_hash" not in user for user in body["items"])
    operators = client.get("/api/users?role=operator", headers=admin_headers).get_json()
    assert [u["role"] for u in operators["items"]] == ["operator"]
    assert client.get("/api/users?role=root", headers=admin_headers).status_code == 422


def test_only_admins_manage_users(client, make_user):
    user, tokens = make_user("operator")
    headers = bearer(tokens["access_token"])
    assert client.get("/api/users", headers=headers).status_code == 403
    assert client.patch(f"/api/users/{user['id']}", headers=headers, json={"role": "admin"}).status_code == 403
    assert client.post(f"/api/users/{user['id']}/revoke-sessions", headers=headers).status_code == 403


def test_demotion_applies_to_existing_tokens_at_once(client, admin_headers, make_user):
    user, tokens = make_user("operator")
    headers = bearer(tokens["access_token"])
    reading = {"sensor_id": "T-1", "vehicle_count": 10, "average_speed": 30.0, "congestion_level": 20.0}
    assert client.post("/api/traffic/data", headers=headers, json=reading).status_code == 201
    response = client.patch(f"/api/users/{user['id']}", headers=admin_headers, json={"role": "viewer"})
    assert response.status_code == 200 and response.get_json()["role"] == "viewer"
    # The token still says operator; the account says viewer, and the account wins.
    assert jwt.decode(tokens["access_token"], options={"verify_signature": False})["role"] == "operator"
    assert client.post("/api/traffic/data", headers=headers, json=reading).status_code == 403
    assert client.get("/api/traffic/data", headers=headers).status_code == 200


def test_deactivation_ends_every_session_and_sign_in(client, admin_headers, make_user):
    user, tokens = make_user("operator", password="s3cret-pass")
    response = client.patch(f"/api/users/{user['id']}", headers=admin_headers, json={"active": False})
    assert response.status_code == 200 and response.get_json()["active"] is False
    assert client.get("/api/auth/profile", headers=bearer(tokens["access_token"])).status_code == 401
    assert client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401
    relogin = client.post("/api/auth/login", json={"email": user["email"], "password": "s3cret-pass"})
    assert relogin.status_code == 403 and relogin.get_json()["error"] == "account_disabled"
    assert client.patch(f"/api/users/{user['id']}", headers=admin_headers, json={"active": True}).status_code == 200
    login(client, email=user["email"], password="s3cret-pass")


def test_revoke_sessions_signs_a_user_out_everywhere(client, admin_headers, make_user):
    user, first = make_user("viewer", password="s3cret-pass")
    second = login(client, email=user["email"], password="s3cret-pass")
    response = client.post(f"/api/users/{user['id']}/revoke-sessions", headers=admin_headers)
    assert response.status_code == 200
    for tokens in (first, second):
        assert client.get("/api/auth/profile", headers=bearer(tokens["access_token"])).status_code == 401
        assert client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401
    fresh = login(client, email=user["email"], password="s3cret-pass")
    assert client.get("/api/auth/profile", headers=bearer(fresh["access_token"])).status_code == 200


def test_admins_cannot_lock_themselves_out(client, admin_headers):
    me = client.get("/api/auth/profile", headers=admin_headers).get_json()
    for change in ({"active": False}, {"role": "viewer"}):
        response = client.patch(f"/api/users/{me['id']}", headers=admin_headers, json=change)
        assert response.status_code == 409, change


def test_unknown_user_is_404(client, admin_headers):
    assert client.patch("/api/users/0123456789abcdef01234567", headers=admin_headers,
                        json={"role": "viewer"}).status_code == 404
    assert client.post("/api/users/not-an-id/revoke-sessions", headers=admin_headers).status_code == 404


def test_logout_without_refresh_token_ends_the_whole_session(client):
    tokens = login(client)
    refreshed = client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).get_json()
    assert client.post("/api/auth/logout", headers=bearer(tokens["access_token"]), json={}).status_code == 200
    refresh = client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refresh.status_code == 401 and refresh.get_json()["error"] == "token_revoked"
    # An access token refreshed from the same sign-in ends with it.
    assert client.get("/api/auth/profile", headers=bearer(refreshed["access_token"])).status_code == 401
    # Another sign-in of the same user is untouched.
    other = login(client)
    assert client.get("/api/auth/profile", headers=bearer(other["access_token"])).status_code == 200


@pytest.mark.parametrize("attempt", range(8))
def test_password_change_revokes_tokens_issued_in_the_same_second(client, make_user, attempt):
    user, _ = make_user("viewer", password="first-pass")
    tokens = login(client, email=user["email"], password="first-pass")
    changed = client.post("/api/auth/change-password", headers=bearer(tokens["access_token"]),
                          json={"current_password": "first-pass", "new_password": "second-pass"})
    assert changed.status_code == 200
    assert client.get("/api/auth/profile", headers=bearer(tokens["access_token"])).status_code == 401
    assert client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401
    fresh = changed.get_json()
    assert client.get("/api/auth/profile", headers=bearer(fresh["access_token"])).status_code == 200


def test_passwords_over_72_bytes_are_refused_with_422(client, admin_headers):
    long_password = "é" * 37  # 74 bytes in UTF-8, 37 characters
    register = client.post("/api/auth/register", headers=admin_headers,
                           json={"email": "long@example.com", "password": long_password})
    assert register.status_code == 422 and "password" in register.get_json()["errors"]
    login_response = client.post("/api/auth/login", json={"email": ADMIN["email"], "password": "x" * 100})
    assert login_response.status_code == 422 and "password" in login_response.get_json()["errors"]
    change = client.post("/api/auth/change-password", headers=admin_headers,
                         json={"current_password": ADMIN["password"], "new_password": "y" * 73})
    assert change.status_code == 422


def test_a_long_admin_password_is_a_config_error(app_factory):
    with pytest.raises(ConfigError, match="ADMIN_PASSWORD must be at most 72 bytes"):
        app_factory(ADMIN_PASSWORD="p" * 73)


def test_sign_ins_beyond_the_bcrypt_queue_get_503_not_a_growing_wait(app_factory):
    from src import auth

    app = app_factory(BCRYPT_QUEUE_MAX=0, BCRYPT_CONCURRENCY=1)
    client = app.test_client()
    login(client)  # a free slot: served
    slots = auth.bcrypt_gate(app)["slots"]
    assert slots.acquire(blocking=False)  # every slot busy, and no room to wait
    try:
        response = client.post("/api/auth/login", json={"email": ADMIN["email"], "password": ADMIN["password"]})
    finally:
        slots.release()
    assert response.status_code == 503 and response.get_json()["error"] == "busy"
    login(client)


def test_security_headers(client, admin_headers):
    for path in ("/api/health", "/api/openapi.json", "/api/no-such-thing"):
        headers = client.get(path).headers
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["Referrer-Policy"] == "no-referrer", path
        assert "default-src 'none'" in headers["Content-Security-Policy"], path
    docs = client.get("/api/docs").headers["Content-Security-Policy"]
    assert "script-src 'self'" in docs and "frame-ancestors 'none'" in docs
    login_response = client.post("/api/auth/login", json={"email": ADMIN["email"], "password": ADMIN["password"]})
    assert login_response.headers["Cache-Control"] == "no-store"
    assert client.get("/api/auth/profile", headers=admin_headers).headers["Cache-Control"] == "no-store"


def test_forwarded_host_is_not_trusted(app_factory):
    app = app_factory(TRUST_PROXY_HOPS=1)
    seen = {}

    @app.get("/api/_host")
    def show_host():
        from flask import request

        seen.update(host=request.host, scheme=request.scheme, remote=request.remote_addr)
        return {}

    app.test_client().get("/api/_host", headers={"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https",
                                                 "X-Forwarded-For": "203.0.113.9"})
    assert seen == {"host": "localhost", "scheme": "https", "remote": "203.0.113.9"}


def test_a_demoted_admin_cannot_register_admins(client, admin_headers, make_user):
    user, tokens = make_user("admin")
    headers = bearer(tokens["access_token"])
    assert client.patch(f"/api/users/{user['id']}", headers=admin_headers, json={"role": "viewer"}).status_code == 200
    response = client.post("/api/auth/register", headers=headers,
                           json={"email": "sneaky@example.com", "password": "s3cret-pass", "role": "admin"})
    assert response.status_code == 403, "the token says admin, the account does not"


def test_the_last_active_admin_survives_a_race(client, admin_headers, make_user, monkeypatch):
    from src.models import users

    other, other_tokens = make_user("admin")
    me = client.get("/api/auth/profile", headers=admin_headers).get_json()
    real_update = users.update
    raced = {}

    def update_racing_the_other_admin(db, user_id, fields):
        # While we demote `other`, `other` demotes us (a concurrent request in another process).
        if not raced:
            raced["done"] = True
            real_update(db, me["id"], {"role": "viewer"})
        return real_update(db, user_id, fields)

    monkeypatch.setattr(users, "update", update_racing_the_other_admin)
    response = client.patch(f"/api/users/{other['id']}", headers=admin_headers, json={"role": "viewer"})
    assert response.status_code == 409 and "last active admin" in response.get_json()["message"]
    listed = client.get("/api/users?role=admin", headers=bearer(other_tokens["access_token"])).get_json()
    assert [u["id"] for u in listed["items"]] == [other["id"]], "one admin is left, never none"
