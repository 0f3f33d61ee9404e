"""Accounts and tokens over REST."""
import base64
import json
import time

import jwt
import pytest

from tests.conftest import ADMIN, bearer, login


def test_login_by_email_returns_token_pair_and_user(client):
    body = login(client)
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 15 * 60
    assert body["user"]["email"] == ADMIN["email"]
    assert body["user"]["role"] == "admin"
    assert "password_hash" not in body["user"]
    assert len(body["user"]["id"]) == 24
    assert body["user"]["created_at"].endswith("Z")


def test_login_by_username(client):
    body = login(client, username="admin")
    assert body["user"]["username"] == "admin"


def test_tokens_carry_required_claims(app, client):
    body = login(client)
    secret = app.config["JWT_SECRET_KEY"]
    access = jwt.decode(body["access_token"], secret, algorithms=["HS256"])
    refresh = jwt.decode(body["refresh_token"], secret, algorithms=["HS256"])
    for claims in (access, refresh):
        assert {"sub", "role", "type", "jti", "exp", "iat"} <= set(claims)
    assert access["type"] == "access" and refresh["type"] == "refresh"
    assert access["exp"] - access["iat"] == pytest.approx(15 * 60)
    assert access["sid"] == refresh["sid"], "tokens issued together share a session id"
    assert refresh["exp"] - refresh["iat"] == 7 * 24 * 3600
    assert access["jti"] != refresh["jti"]


def test_wrong_password_and_unknown_user_get_the_same_401(client):
    wrong = client.post("/api/auth/login", json={"email": ADMIN["email"], "password": "nope-nope"})
    unknown = client.post("/api/auth/login", json={"email": "ghost@example.com", "password": "nope-nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.get_json() == unknown.get_json()
    assert wrong.get_json()["error"] == "invalid_credentials"


def test_login_needs_an_identifier(client):
    response = client.post("/api/auth/login", json={"password": "whatever1"})
    assert response.status_code == 422
    assert "email" in response.get_json()["errors"]


def test_refresh_gives_a_working_access_token(client):
    tokens = login(client)
    response = client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert response.status_code == 200
    access = response.get_json()["access_token"]
    assert client.get("/api/auth/profile", headers=bearer(access)).status_code == 200


def test_refresh_refuses_an_access_token(client):
    tokens = login(client)
    response = client.post("/api/auth/refresh", json={"refresh_token": tokens["access_token"]})
    assert response.status_code == 401
    assert response.get_json()["error"] == "wrong_token_type"


def test_logout_revokes_access_and_refresh_tokens(client):
    tokens = login(client)
    headers = bearer(tokens["access_token"])
    response = client.post("/api/auth/logout", headers=headers, json={"refresh_token": tokens["refresh_token"]})
    assert response.status_code == 200
    again = client.get("/api/auth/profile", headers=headers)
    assert again.status_code == 401
    assert again.get_json()["error"] == "token_revoked"
    refreshed = client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 401


def test_expired_token_is_refused(app_factory):
    app = app_factory(JWT_ACCESS_TTL_S=-10)
    client = app.test_client()
    tokens = login(client)
    response = client.get("/api/auth/profile", headers=bearer(tokens["access_token"]))
    assert response.status_code == 401
    assert response.get_json()["error"] == "token_expired"
    assert response.headers["WWW-Authenticate"] == "Bearer"


def _b64(data):
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_tampered_signature_is_refused(client):
    token = login(client)["access_token"]
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["role"] = "admin"
    claims["sub"] = "0" * 24
    forged = ".".join([header, _b64(claims), signature])
    assert client.get("/api/auth/profile", headers=bearer(forged)).status_code == 401
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    assert client.get("/api/auth/profile", headers=bearer(flipped)).status_code == 401


def test_alg_none_token_is_refused(app, client):
    real = jwt.decode(login(client)["access_token"], app.config["JWT_SECRET_KEY"], algorithms=["HS256"])
    unsigned = _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(real) + "."
    response = client.get("/api/auth/profile", headers=bearer(unsigned))
    assert response.status_code == 401
    assert response.get_json()["error"] == "token_invalid"


def test_refresh_token_is_not_an_access_token(client):
    tokens = login(client)
    response = client.get("/api/auth/profile", headers=bearer(tokens["refresh_token"]))
    assert response.status_code == 401
    assert response.get_json()["error"] == "wrong_token_type"


def test_missing_and_malformed_authorization(client):
    assert client.get("/api/auth/profile").get_json()["error"] == "token_missing"
    response = client.get("/api/auth/profile", headers={"Authorization": "Basic abc"})
    assert response.status_code == 401


def test_viewer_cannot_call_admin_only_route(client, make_user):
    _, tokens = make_user("viewer")
    response = client.post("/api/auth/register", headers=bearer(tokens["access_token"]),
                           json={"email": "x@example.com", "password": "longenough", "role": "viewer"})
    assert response.status_code == 403
    assert response.get_json()["error"] == "forbidden"


def test_operator_cannot_register_users(client, make_user):
    _, tokens = make_user("operator")
    response = client.post("/api/auth/register", headers=bearer(tokens["access_token"]),
                           json={"email": "y@example.com", "password": "longenough"})
    assert response.status_code == 403


def test_register_requires_auth_when_self_registration_is_off(client):
    response = client.post("/api/auth/register", json={"email": "z@example.com", "password": "longenough"})
    assert response.status_code == 401


def test_register_validation_names_each_bad_field(client, admin_headers):
    response = client.post("/api/auth/register", headers=admin_headers,
                           json={"email": "not-an-email", "password": "short", "role": "superuser",
                                 "username": "x"})
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"] == "validation_error"
    assert {"email", "password", "role", "username"} <= set(body["errors"])


def test_register_refuses_unknown_fields(client, admin_headers):
    response = client.post("/api/auth/register", headers=admin_headers,
                           json={"email": "u@example.com", "password": "longenough", "is_admin": True})
    assert response.status_code == 422
    assert "is_admin" in response.get_json()["errors"]


def test_register_refuses_passwords_bcrypt_would_truncate(client, admin_headers):
    response = client.post("/api/auth/register", headers=admin_headers,
                           json={"email": "long@example.com", "password": "é" * 40})
    assert response.status_code == 422
    assert "password" in response.get_json()["errors"]


def test_register_creates_a_user_who_can_log_in(client, admin_headers):
    response = client.post("/api/auth/register", headers=admin_headers,
                           json={"email": "Op@Example.com", "username": "op1", "password": "longenough",
                                 "role": "operator", "full_name": "Olga Operator"})
    assert response.status_code == 201
    user = response.get_json()
    assert user["email"] == "op@example.com" and user["role"] == "operator"
    assert login(client, email="op@example.com", password="longenough")["user"]["role"] == "operator"


def test_duplicate_email_is_409(client, admin_headers):
    body = {"email": "dup@example.com", "password": "longenough"}
    assert client.post("/api/auth/register", headers=admin_headers, json=body).status_code == 201
    response = client.post("/api/auth/register", headers=admin_headers,
                           json=dict(body, email="DUP@example.com", username="other"))
    assert response.status_code == 409
    assert response.get_json()["error"] == "conflict"
    assert "email" in response.get_json()["errors"]


def test_self_registration_creates_viewers_only(app_factory):
    client = app_factory(ALLOW_SELF_REGISTRATION=True).test_client()
    ok = client.post("/api/auth/register", json={"email": "me@example.com", "password": "longenough"})
    assert ok.status_code == 201 and ok.get_json()["role"] == "viewer"
    escalate = client.post("/api/auth/register",
                           json={"email": "me2@example.com", "password": "longenough", "role": "admin"})
    assert escalate.status_code == 403


def test_change_password(client, make_user):
    user, tokens = make_user("viewer", password="first-pass")
    headers = bearer(tokens["access_token"])
    wrong = client.post("/api/auth/change-password", headers=headers,
                        json={"current_password": "not-it-at-all", "new_password": "second-pass"})
    assert wrong.status_code == 403
    assert wrong.get_json()["error"] == "invalid_password"
    too_short = client.post("/api/auth/change-password", headers=headers,
                            json={"current_password": "first-pass", "new_password": "short"})
    assert too_short.status_code == 422 and "new_password" in too_short.get_json()["errors"]

    time.sleep(1.05)  # token iat has whole-second precision
    changed = client.post("/api/auth/change-password", headers=headers,
                          json={"current_password": "first-pass", "new_password": "second-pass"})
    assert changed.status_code == 200
    fresh = changed.get_json()["access_token"]
    assert client.get("/api/auth/profile", headers=bearer(fresh)).status_code == 200
    # Tokens minted before the change no longer work, and the old password is gone.
    old = client.get("/api/auth/profile", headers=headers)
    assert old.status_code == 401 and old.get_json()["error"] == "token_revoked"
    assert client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401
    assert client.post("/api/auth/login", json={"email": user["email"], "password": "first-pass"}).status_code == 401
    login(client, email=user["email"], password="second-pass")


def test_profile_get_and_update(client, make_user):
    user, tokens = make_user("operator")
    headers = bearer(tokens["access_token"])
    assert client.get("/api/auth/profile", headers=headers).get_json()["email"] == user["email"]
    response = client.put("/api/auth/profile", headers=headers,
                          json={"full_name": "Ada Lovelace", "username": "ada_l"})
    assert response.status_code == 200
    assert response.get_json()["full_name"] == "Ada Lovelace"
    assert client.get("/api/auth/profile", headers=headers).get_json()["username"] == "ada_l"


def test_profile_update_refuses_role_and_email_changes_without_revealing_accounts(client, make_user):
    user, tokens = make_user("viewer")
    headers = bearer(tokens["access_token"])
    assert client.put("/api/auth/profile", headers=headers, json={"role": "admin"}).status_code == 422
    # A 409 for a taken address would tell anyone which emails have accounts: the answer is the
    # same whether the address exists or not, and nothing changes.
    taken = client.put("/api/auth/profile", headers=headers, json={"email": ADMIN["email"]})
    free = client.put("/api/auth/profile", headers=headers, json={"email": "nobody-has-this@example.com"})
    assert taken.status_code == free.status_code == 422
    assert taken.get_json() == free.get_json()
    assert client.get("/api/auth/profile", headers=headers).get_json()["email"] == user["email"]


def test_logout_with_a_bad_refresh_token_revokes_nothing(client):
    tokens = login(client)
    headers = bearer(tokens["access_token"])
    refused = client.post("/api/auth/logout", headers=headers, json={"refresh_token": "not-a-token"})
    assert refused.status_code == 401
    assert client.get("/api/auth/profile", headers=headers).status_code == 200  # still logged in
