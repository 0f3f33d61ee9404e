"""Two real server processes sharing one Redis: revocation and rate limits hold across them."""
import requests

from tests.conftest import bearer


def test_live_server_serves_health_on_eventlet(live_server):
    server = live_server()
    body = requests.get(server.url + "/api/health", timeout=5).json()
    assert body["status"] == "healthy"
    assert body["features"]["async_mode"] == "eventlet"


def test_revocation_is_shared_between_processes(live_server, redis_db):
    a = live_server(REDIS_URL=redis_db, RATELIMIT_ENABLED="false")
    b = live_server(REDIS_URL=redis_db, RATELIMIT_ENABLED="false")
    tokens = a.login()
    headers = bearer(tokens["access_token"])
    # B trusts A's tokens (shared secret; with the embedded engine each process has its own users,
    # so the check is an endpoint that needs only the token): a second token of A logs out on B.
    other = bearer(a.login()["access_token"])
    assert requests.post(b.url + "/api/auth/logout", headers=other, json={}, timeout=5).status_code == 200
    assert requests.post(a.url + "/api/auth/logout", headers=other, json={}, timeout=5).status_code == 401
    logout = requests.post(a.url + "/api/auth/logout", headers=headers,
                           json={"refresh_token": tokens["refresh_token"]}, timeout=5)
    assert logout.status_code == 200
    refused = requests.get(b.url + "/api/auth/profile", headers=headers, timeout=5)
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
