"""The scheduler in real server processes: a living city on start-up, and exactly one leader."""
import os
import signal
import time

import requests

from tests.conftest import bearer
from tests.socket_helpers import Api, RecordingClient


def wait_until(predicate, timeout, interval=0.25):
    deadline = time.time() + timeout
    while time.time() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    return predicate()


def test_fresh_server_shows_a_breathing_city_within_30_seconds(live_server):
    started = time.time()
    server = live_server(SCHEDULER_ENABLED="true", SIMULATION_ENABLED="true", SIMULATION_INTERVAL_S="1",
                         ROLLUP_INTERVAL_S="2", SYSTEM_UPDATE_INTERVAL_S="1")
    api = Api(server)
    client = RecordingClient(server.url, token=api.token).connect()
    try:
        assert client.call("join_room", {"room": "traffic_monitoring"})["ok"]
        client.wait_for("traffic_update", timeout=30 - (time.time() - started))
        reading = client.of("traffic_update")[0]
        assert reading["source"] == "simulator" and reading["sensor_id"].startswith("TRF-")

        def all_modules_alive():
            overview = api.get("/api/dashboard/overview").json()["modules"]
            readings_modules = all(overview[m]["sensors"] > 0 for m in ("traffic", "environment", "waste", "energy"))
            return readings_modules and overview["emergency"]["units"] > 0 and overview
        overview = wait_until(all_modules_alive, timeout=max(1, 30 - (time.time() - started)))
        assert overview, "every module reports within 30 s"
        assert overview["traffic"]["kpis"]["vehicles_per_min"] > 0
        assert time.time() - started < 30
        assert client.call("join_room", {"room": "system"})["ok"]
        update = client.wait_for("system_update", timeout=5)[0]
        assert update["connected_clients"] >= 1 and update["readings_per_s"] >= 0
        assert update["jobs"]["simulate_traffic"]["runs"] > 0
    finally:
        client.disconnect()


def jobs(server, headers):
    return requests.get(server.url + "/api/system/jobs", headers=headers, timeout=5).json()


def runs(server, headers, job_id="rollup_readings"):
    return next(j["runs"] for j in jobs(server, headers)["items"] if j["id"] == job_id)


def test_only_one_process_runs_the_jobs_and_the_other_takes_over(live_server, redis_db):
    ttl = 2.0
    env = dict(REDIS_URL=redis_db, SCHEDULER_ENABLED="true", SIMULATION_ENABLED="false", ROLLUP_INTERVAL_S="0.5",
               SCHEDULER_LOCK_TTL_S=str(ttl), RATELIMIT_ENABLED="false", SYSTEM_UPDATE_INTERVAL_S="0.5")
    a = live_server(**env)
    b = live_server(**env)
    ha, hb = bearer(a.login()["access_token"]), bearer(b.login()["access_token"])
    assert wait_until(lambda: jobs(a, ha)["leader"] != jobs(b, hb)["leader"], timeout=10)
    leader, follower = (a, b) if jobs(a, ha)["leader"] else (b, a)
    lh, fh = (ha, hb) if leader is a else (hb, ha)
    time.sleep(2)
    assert runs(leader, lh) >= 2
    assert runs(follower, fh) == 0  # scheduled there too, but never run
    # system_update comes from the leader only, through Redis, and counts both processes' clients.
    watcher = RecordingClient(follower.url, token=fh["Authorization"].split()[1]).connect()
    try:
        assert watcher.call("join_room", {"room": "system"})["ok"]
        update = watcher.wait_for("system_update", where=lambda p: p["connected_clients"] >= 1, timeout=5)[0]
        assert update["processes"] == 2
    finally:
        watcher.disconnect()
    # Kill the leader without letting it release the lock: the follower must wait for expiry.
    os.kill(leader.proc.pid, signal.SIGKILL)
    leader.proc.wait(5)
    killed_at = time.time()
    assert wait_until(lambda: jobs(follower, fh)["leader"], timeout=3 * ttl, interval=0.1)
    assert time.time() - killed_at <= 2 * ttl + 0.5
    assert wait_until(lambda: runs(follower, fh) > 0, timeout=5)


def test_jobs_can_be_listed_paused_resumed_and_run(live_server):
    server = live_server(SCHEDULER_ENABLED="true", SIMULATION_ENABLED="false", ROLLUP_INTERVAL_S="600")
    admin = Api(server)
    listing = admin.get("/api/system/jobs").json()
    job = next(j for j in listing["items"] if j["id"] == "rollup_readings")
    assert listing["leader"] is True and job["interval_s"] == 600 and job["next_run_at"].endswith("Z")
    assert {"last_run_at", "last_duration_ms", "last_error", "runs", "failures"} <= set(job)
    assert admin.post("/api/system/jobs/rollup_readings/pause").json()["paused"] is True
    assert admin.post("/api/system/jobs/rollup_readings/run").status_code == 202
    assert wait_until(lambda: runs(server, admin.headers) == 1, timeout=5)  # a manual run ignores pause
    assert admin.post("/api/system/jobs/rollup_readings/resume").json()["paused"] is False
    assert admin.post("/api/system/jobs/nope/run").status_code == 404
    viewer = admin.register("viewer-jobs@example.com")
    assert viewer.get("/api/system/jobs").status_code == 403
