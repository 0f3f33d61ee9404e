"""GET /api/health (public status; details with a token), /api/health/live and /api/health/ready."""
from tests.conftest import bearer


def test_public_health_says_only_healthy_or_degraded(client):
    response = client.get("/api/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "healthy"}, "no configuration flags without a token"


def test_health_details_need_a_valid_token(client, admin_headers):
    assert client.get("/api/health", headers=bearer("not-a-token")).status_code == 401
    response = client.get("/api/health", headers=admin_headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "healthy"
    assert body["service"] == "citypulse"
    assert body["version"]
    assert body["uptime_s"] >= 0
    assert body["server_time"].endswith("Z")
    services = body["services"]
    assert services["database"]["ok"] is True
    assert services["database"]["engine"] in ("embedded", "mongodb")
    assert services["redis"]["configured"] is False and services["redis"]["ok"] is None
    assert services["redis"]["outage"]["down"] is False
    assert "enabled" in services["scheduler"]
    assert body["features"]["auth"] == "jwt"
    realtime = services["realtime"]
    assert realtime["connected_clients"] == 0
    assert {"events_emitted_per_s", "readings_ingested_per_s", "rooms", "pending_handshakes",
            "client_faults"} <= set(realtime)
    assert {"open_connections", "header_timeouts", "idle_timeouts", "body_timeouts"} <= set(services["http"])


def test_liveness_and_readiness(client):
    assert client.get("/api/health/live").get_json() == {"status": "alive"}
    ready = client.get("/api/health/ready")
    assert ready.status_code == 200 and ready.get_json() == {"status": "ready"}


def test_health_reports_redis(app_factory, redis_db):
    client = app_factory(REDIS_URL=redis_db).test_client()
    headers = bearer(client.post("/api/auth/login", json={"email": "admin@smartcity.com",
                                                          "password": "admin123"}).get_json()["access_token"])
    body = client.get("/api/health", headers=headers).get_json()
    assert body["services"]["redis"]["configured"] is True and body["services"]["redis"]["ok"] is True
    assert body["features"]["rate_limit_storage"] == "redis"


def test_health_degraded_but_ready_when_redis_is_down(app_factory):
    app = app_factory(REDIS_URL="redis://127.0.0.1:9/0")
    client = app.test_client()
    assert client.get("/api/health").get_json() == {"status": "degraded"}
    # Redis has fallbacks for everything, so the process can still serve: ready, not unhealthy.
    assert client.get("/api/health/ready").status_code == 200
    tokens = client.post("/api/auth/login", json={"email": "admin@smartcity.com", "password": "admin123"})
    assert tokens.status_code == 200, tokens.get_json()
    body = client.get("/api/health", headers=bearer(tokens.get_json()["access_token"])).get_json()
    redis = body["services"]["redis"]
    assert redis["configured"] is True and redis["ok"] is False
    assert redis["outage"]["down"] is True and redis["outage"]["last_error"]


def test_public_probes_cost_the_database_at_most_one_ping_a_second(app, client, monkeypatch):
    from src import db

    pings = []
    real_ping = db.ping
    monkeypatch.setattr(db, "ping", lambda app=None: pings.append(1) or real_ping(app))
    for _ in range(50):
        assert client.get("/api/health").status_code == 200
        assert client.get("/api/health/ready").status_code == 200
    assert len(pings) <= 4, len(pings)  # one each for status and readiness, within the second
