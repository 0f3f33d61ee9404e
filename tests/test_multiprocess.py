"""Two real server processes sharing one Redis: revocation and rate limits hold across them."""
import requests

from tests.conftest import bearer


def test_live_server_serves_health_on_eventlet(live_server):
    server = live_server()
    body = requests.get(server.url + "/api/health", headers=bearer(server.login()["access_token"]), timeout=5).json()
    assert body["status"] == "healthy"
    assert body["features"]["async_mode"] == "eventlet"


def test_redis_without_mongodb_warns_that_processes_share_nothing(live_server, redis_db):
    server = live_server(REDIS_URL=redis_db)
    assert "processes sharing Redis do NOT share users" in server.output()
    assert "do NOT share" not in live_server().output()


def test_revocation_is_shared_between_processes(live_server, redis_db):
    a = live_server(REDIS_URL=redis_db, RATELIMIT_ENABLED="false")
    b = live_server(REDIS_URL=redis_db, RATELIMIT_ENABLED="false")
    tokens = a.login()
    headers = bearer(tokens["access_token"])
    # B trusts A's tokens (shared secret). With the embedded engine each process has its own users
    # (unsupported beyond this test: it warns), so B is asked through the one endpoint that needs
    # only a valid token, the health details.
    assert requests.get(b.url + "/api/health", headers=headers, timeout=5).status_code == 200
    logout = requests.post(a.url + "/api/auth/logout", headers=headers,
                           json={"refresh_token": tokens["refresh_token"]}, timeout=5)
    assert logout.status_code == 200
    refused = requests.get(b.url + "/api/health", headers=headers, timeout=5)
    assert refused.status_code == 401 and refused.json()["error"] == "token_revoked"
    assert requests.post(b.url + "/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]},
                         timeout=5).status_code == 401


def test_rate_limit_counters_are_shared_between_processes(live_server, redis_db):
    env = dict(REDIS_URL=redis_db, RATELIMIT_DEFAULT="4 per minute", RATELIMIT_LOGIN="50 per minute")
    a = live_server(**env)
    b = live_server(**env)
    headers = bearer(a.login()["access_token"])
    statuses = []
    for server in (a, b, a, b, a):
        statuses.append(requests.get(server.url + "/api/auth/profile", headers=headers, timeout=5).status_code)
    # B answers 401 (the embedded engine gives each process its own users) but still counts the hit.
    assert 429 not in statuses[:4] and statuses[4] == 429
    last = requests.get(b.url + "/api/auth/profile", headers=headers, timeout=5)
    assert last.status_code == 429 and int(last.headers["Retry-After"]) > 0


def test_events_fan_out_across_processes_with_exact_filters(live_server, redis_db):
    """A reading posted to process B reaches a client of process A, severity filter intact."""
    from tests.socket_helpers import Api, RecordingClient

    a = live_server(REDIS_URL=redis_db)
    b = live_server(REDIS_URL=redis_db)
    api_a, api_b = Api(a), Api(b)
    watcher = RecordingClient(a.url, token=api_a.token).connect()
    critical_only = RecordingClient(a.url, token=api_a.token).connect()
    try:
        assert watcher.call("join_room", {"room": "traffic_monitoring"})["ok"]
        assert watcher.call("subscribe_alerts", {})["ok"]
        assert critical_only.call("subscribe_alerts", {"severity_levels": ["critical"],
                                                       "modules": ["environment"]})["ok"]
        api_b.traffic("T-mp-1")
        api_b.environment("E-mp-low", "low")
        api_b.environment("E-mp-crit", "critical")
        update = watcher.wait_for("traffic_update", where=lambda p: p["sensor_id"] == "T-mp-1")[0]
        assert update["module"] == "traffic"
        watcher.wait_for("environment_alert", where=lambda p: p["sensor_id"] == "E-mp-low")
        alert = critical_only.wait_for("environment_alert", where=lambda p: p["sensor_id"] == "E-mp-crit")[0]
        assert alert["severity"] == "critical"
        critical_only.settle()
        assert [p["sensor_id"] for p in critical_only.of("environment_alert")] == ["E-mp-crit"]
        assert critical_only.of("traffic_update") == []
    finally:
        watcher.disconnect()
        critical_only.disconnect()


def test_external_emitter_reaches_only_the_task_owner(live_server, redis_db, app_factory):
    """A process that serves nothing (like a worker) emits task_status through Redis to user:<id> only."""
    from src.realtime import broadcast
    from tests.socket_helpers import Api, RecordingClient

    server = live_server(REDIS_URL=redis_db)
    admin = Api(server)
    other = admin.register("other-user@example.com")
    owner_client = RecordingClient(server.url, token=admin.token).connect()
    other_client = RecordingClient(server.url, token=other.token).connect()
    try:
        owner_id = owner_client.of("connected")[0]["user"]["id"]
        emitter = app_factory(REDIS_URL=redis_db)  # this test process, emitting only
        with emitter.app_context():
            broadcast.emit_task_status(owner_id, {"id": "task-1", "status": "running", "progress": 40})
        status = owner_client.wait_for("task_status")[0]
        assert status == {"id": "task-1", "status": "running", "progress": 40}
        other_client.settle()
        assert other_client.of("task_status") == []
    finally:
        owner_client.disconnect()
        other_client.disconnect()
