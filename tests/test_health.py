"""GET /api/health."""


def test_health_shape_without_auth(client):
    response = client.get("/api/health")
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
    assert services["redis"] == {"configured": False, "ok": None}
    assert "enabled" in services["scheduler"]
    assert body["features"]["auth"] == "jwt"
    realtime = services["realtime"]
    assert realtime["connected_clients"] == 0
    assert {"events_emitted_per_s", "readings_ingested_per_s", "rooms"} <= set(realtime)


def test_health_reports_redis(app_factory, redis_db):
    body = app_factory(REDIS_URL=redis_db).test_client().get("/api/health").get_json()
    assert body["services"]["redis"] == {"configured": True, "ok": True}
    assert body["features"]["rate_limit_storage"] == "redis"


def test_health_degraded_when_redis_is_down(app_factory):
    app = app_factory(REDIS_URL="redis://127.0.0.1:9/0")
    body = app.test_client().get("/api/health").get_json()
    assert body["status"] == "degraded"
    assert body["services"]["redis"] == {"configured": True, "ok": False}
