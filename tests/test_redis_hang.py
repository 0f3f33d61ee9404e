"""A Redis that hangs (SIGSTOP: connections accepted, nothing answered) under load.

Unlike a killed Redis, which refuses connections at once, a hung one costs every caller its
socket timeout. Requests must stay fast (short timeouts, one probe at a time after a failure),
the outage must be a few log lines rather than a traceback per request, and the service must
report healthy again once Redis answers.
"""
import concurrent.futures
import os
import signal
import threading
import time

import pytest
import requests

from tests.conftest import bearer

pytestmark = pytest.mark.live

HANG_S = 6.0  # several skip windows, watchdog rounds and rate-limiter backend checks
MAX_LATENCY_S = 2.0  # a request during the hang (it was 12 s); healthy requests take milliseconds
PATHS = ("/api/auth/profile", "/api/alerts?limit=5", "/api/health/live")


class Probes:
    """Threads requesting PATHS in a loop; records (start offset, path, status, latency)."""

    def __init__(self, server, token, threads=6):
        self.server, self.headers = server, bearer(token)
        self.samples = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, index):
        deadline = time.time() + 40
        i = index
        while not self._stop.is_set() and time.time() < deadline:
            path = PATHS[i % len(PATHS)]
            i += 1
            self.samples.append(timed_get(self.server.url + path, self.headers))
            time.sleep(0.05)

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(35)


def timed_get(url, headers):
    started = time.monotonic()
    try:
        status = requests.get(url, headers=headers, timeout=30).status_code
    except requests.RequestException as exc:
        status = repr(exc)
    return started, url, status, time.monotonic() - started


def test_hung_redis_costs_requests_little_and_logs_one_outage(live_server, redis_process):
    server = live_server(REDIS_URL=redis_process.url, RATELIMIT_ENABLED="true", RATELIMIT_DEFAULT="100000 per minute",
                         LOG_LEVEL="INFO")
    token = server.login()["access_token"]
    headers = bearer(token)
    for path in PATHS:  # warm: connections open, limits counted in Redis
        assert requests.get(server.url + path, headers=headers, timeout=10).status_code == 200
    assert requests.get(server.url + "/api/health", timeout=10).json() == {"status": "healthy"}

    with Probes(server, token) as probes:
        time.sleep(0.5)
        os.kill(redis_process.proc.pid, signal.SIGSTOP)
        hung_at = time.monotonic()
        try:
            # A burst right after the hang: every request finds Redis silent at once.
            with concurrent.futures.ThreadPoolExecutor(40) as pool:
                burst = list(pool.map(lambda _: timed_get(server.url + "/api/alerts?limit=5", headers), range(40)))
            time.sleep(max(0.0, HANG_S - (time.monotonic() - hung_at)))
            during = requests.get(server.url + "/api/health", timeout=30).json()
        finally:
            os.kill(redis_process.proc.pid, signal.SIGCONT)
        resumed_at = time.monotonic()
        deadline = time.monotonic() + 10
        health = None
        while time.monotonic() < deadline:
            health = requests.get(server.url + "/api/health", timeout=10).json()
            if health == {"status": "healthy"}:
                break
            time.sleep(0.2)
        time.sleep(0.5)

    assert during == {"status": "degraded"}
    assert health == {"status": "healthy"}, "the service reports healthy again once Redis answers"
    samples = probes.samples + burst
    bad = [s for s in samples if s[2] != 200]
    assert not bad, bad[:10]
    in_hang = [s for s in samples if hung_at <= s[0] <= resumed_at]
    assert len(in_hang) > 50, len(in_hang)
    slowest = max(latency for *_, latency in in_hang)
    slow = sorted(((round(s[0] - hung_at, 1), s[1].rsplit("/api", 1)[1], round(s[3], 2)) for s in in_hang
                   if s[3] > 0.6), key=lambda s: -s[2])
    assert slowest < MAX_LATENCY_S, f"slowest request during the hang: {slowest:.1f} s; over 0.6 s: {slow[:12]}"

    log = server.output()
    assert "Traceback" not in log
    assert "Swallowing error" not in log
    redis_lines = [line for line in log.splitlines() if ("redis" in line.lower() or "rate limit storage" in line.lower())
                   and "REDIS_URL is set but MONGO_URI is not" not in line]  # the embedded database's start-up note
    assert 2 <= len(redis_lines) <= 4, redis_lines  # unavailable ... recovered: one line each
