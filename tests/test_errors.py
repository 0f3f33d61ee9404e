"""Every error has one JSON shape: {error, message, errors?}."""
import pytest

from src import auth
from tests.conftest import ADMIN, bearer, login


def assert_shape(response, status, error=None):
    assert response.status_code == status
    assert response.is_json, response.data
    body = response.get_json()
    assert set(body) <= {"error", "message", "errors"}
    assert isinstance(body["error"], str) and isinstance(body["message"], str) and body["message"]
    if error:
        assert body["error"] == error
    return body


def test_404_is_json(client):
    assert_shape(client.get("/api/no-such-thing"), 404, "not_found")


def test_405_is_json_and_lists_allowed_methods(client):
    response = client.delete("/api/auth/login")
    assert_shape(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


def test_400_on_malformed_json(client):
    response = client.post("/api/auth/login", data="{not json", content_type="application/json")
    assert_shape(response, 400, "bad_request")


def test_413_when_body_exceeds_limit(app_factory):
    client = app_factory(MAX_CONTENT_LENGTH=1024).test_client()
    response = client.post("/api/auth/login", json={"email": ADMIN["email"], "password": "x" * 4096})
    assert_shape(response, 413, "payload_too_large")


def test_default_body_limit_is_one_mebibyte(app):
    assert app.config["MAX_CONTENT_LENGTH"] == 1024 * 1024


def test_415_on_non_json_body(client):
    response = client.post("/api/auth/login", data="email=a&password=b",
                           content_type="application/x-www-form-urlencoded")
    assert_shape(response, 415, "unsupported_media_type")


def test_422_names_fields(client):
    body = assert_shape(client.post("/api/auth/login", json={"email": "nope", "password": ""}), 422,
                        "validation_error")
    assert "email" in body["errors"] and "password" in body["errors"]


def test_500_hides_the_traceback(app):
    @app.route("/api/_boom")
    def boom():
        raise RuntimeError("secret internals")

    body = assert_shape(app.test_client().get("/api/_boom"), 500, "internal_error")
    assert "secret" not in body["message"] and "Traceback" not in body["message"]


def test_503_when_mongodb_is_unreachable(app_factory):
    app = app_factory(MONGO_URI="mongodb://127.0.0.1:9/?directConnection=true", MONGO_TIMEOUT_MS=200,
                      MONGO_DB_NAME="citypulse_unreachable")
    client = app.test_client()
    response = client.post("/api/auth/login", json={"email": ADMIN["email"], "password": ADMIN["password"]})
    body = assert_shape(response, 503, "database_unavailable")
    assert "Traceback" not in body["message"]
    assert client.get("/api/health").get_json() == {"status": "degraded"}
    assert_shape(client.get("/api/health/ready"), 503, "not_ready")
    assert client.get("/api/health/live").status_code == 200
    # Operators still get the details during the outage (revocation cannot be checked, the signature can).
    with app.app_context():
        token, _ = auth.encode_token({"_id": "0" * 24, "role": "admin"}, auth.ACCESS)
    health = client.get("/api/health", headers=bearer(token)).get_json()
    assert health["status"] == "degraded"
    assert health["services"]["database"]["ok"] is False


@pytest.fixture
def limited_client(app_factory):
    app = app_factory(RATELIMIT_ENABLED=True, RATELIMIT_DEFAULT="3 per minute", RATELIMIT_LOGIN="2 per minute")
    return app.test_client()


def test_default_rate_limit_gives_429_with_retry_after(limited_client):
    tokens = login(limited_client)
    headers = bearer(tokens["access_token"])
    statuses = [limited_client.get("/api/auth/profile", headers=headers).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = limited_client.get("/api/auth/profile", headers=headers)
    assert_shape(response, 429, "rate_limited")
    assert 0 < int(response.headers["Retry-After"]) <= 60


def test_rate_limit_is_per_user_not_shared(limited_client):
    first = bearer(login(limited_client)["access_token"])
    for _ in range(3):
        limited_client.get("/api/auth/profile", headers=first)
    assert limited_client.get("/api/auth/profile", headers=first).status_code == 429
    # Anonymous callers from the same IP have their own bucket.
    assert limited_client.get("/api/auth/profile").status_code == 401


def test_login_limit_is_per_ip(limited_client):
    bad = {"email": ADMIN["email"], "password": "wrong-password"}
    statuses = [limited_client.post("/api/auth/login", json=bad).status_code for _ in range(3)]
    assert statuses == [401, 401, 429]
    response = limited_client.post("/api/auth/login", json=bad)
    assert "Retry-After" in response.headers


def test_health_is_not_rate_limited(limited_client):
    assert all(limited_client.get("/api/health").status_code == 200 for _ in range(6))
