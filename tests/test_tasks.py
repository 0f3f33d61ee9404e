"""Background tasks: the durable priority queue, workers, leases, retries, cancellation, ownership."""
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from src.db import get_db
from src.realtime import broadcast
from src.models import tasks as task_model
from src.schemas.tasks import CoverageData
from src.services import task_types
from src.services.task_worker import TaskWorker
from tests.conftest import bearer

REPORT = {"taskType": "report_generation",
          "data": {"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z", "modules": ["traffic"]}}


@pytest.fixture
def statuses(monkeypatch):
    """Every task_status the broadcast module is asked to send: (owner_id, payload)."""
    sent = []
    monkeypatch.setattr(broadcast, "emit_task_status", lambda owner, payload: sent.append((owner, payload)))
    return sent


@pytest.fixture
def register_type(monkeypatch):
    """Add a task type for the duration of a test."""
    def add(name, handler):
        monkeypatch.setitem(task_types.REGISTRY, name, task_types.TaskType(name, CoverageData, handler, name))
    return add


def submit(client, headers, body=REPORT, **changes):
    response = client.post("/api/tasks/submit", headers=headers, json=dict(body, **changes))
    assert response.status_code == 202, response.get_json()
    return response.get_json()["taskId"]


def test_submit_returns_202_and_the_task_reads_back(client, admin_headers, statuses):
    body = client.post("/api/tasks/submit", headers=admin_headers, json=dict(REPORT, priority=7)).get_json()
    assert body["status"] == "queued" and len(body["taskId"]) == 24
    task = client.get(f"/api/tasks/{body['taskId']}", headers=admin_headers).get_json()
    assert task["taskType"] == "report_generation" and task["priority"] == 7 and task["progress"] == 0
    assert task["attempts"] == 0 and task["created_at"].endswith("Z") and task["owner"]
    assert task["data"]["from"] == "2026-11-01T00:00:00Z"
    assert statuses[0][1]["status"] == "queued"


@pytest.mark.parametrize("body,field", [
    ({"taskType": "mine_bitcoin"}, "task_type"),
    ({"task_type": "mine_bitcoin"}, "task_type"),
    ({"taskType": "data_export", "data": {"module": "traffic", "from": "2026-11-01T00:00:00Z"}}, "data"),
    ({"taskType": "data_export", "data": {"module": "x", "from": "a", "to": "b"}}, "data"),
    (dict(REPORT, priority=11), "priority"),
    (dict(REPORT, priority=0), "priority"),
    ({"data": {}}, "task_type"),
    ({"task_type": "report_generation", "taskType": "data_export", "data": REPORT["data"]}, "taskType"),
])
def test_bad_submissions_get_422_and_nothing_is_queued(app, client, admin_headers, body, field):
    response = client.post("/api/tasks/submit", headers=admin_headers, json=body)
    assert response.status_code == 422 and field in response.get_json()["errors"]
    assert get_db(app).tasks.count_documents({}) == 0


def test_snake_case_task_type_is_accepted_and_task_id_returned(client, admin_headers, statuses):
    """Issue 10 #15: `task_type` in, `task_id` and `task_type` out; the camelCase names stay as aliases."""
    body = client.post("/api/tasks/submit", headers=admin_headers,
                       json={"task_type": "report_generation", "data": REPORT["data"]}).get_json()
    assert body["status"] == "queued" and len(body["task_id"]) == 24 and body["taskId"] == body["task_id"]
    task = client.get(f"/api/tasks/{body['task_id']}", headers=admin_headers).get_json()
    assert task["task_type"] == task["taskType"] == "report_generation"
    assert task["task_id"] == task["id"] == body["task_id"]
    assert statuses[0][1]["task_type"] == statuses[0][1]["taskType"] == "report_generation"
    same = client.post("/api/tasks/submit", headers=admin_headers,
                       json={"task_type": "report_generation", "taskType": "report_generation", "data": REPORT["data"]})
    assert same.status_code == 202


def test_task_list_filters_by_task_type_and_by_its_deprecated_alias(client, admin_headers, register_type):
    register_type("noop", lambda task, data, progress: {})
    submit(client, admin_headers)
    submit(client, admin_headers, {"task_type": "noop", "data": {}})
    for name in ("task_type", "taskType"):
        page = client.get(f"/api/tasks?{name}=noop", headers=admin_headers).get_json()
        assert page["total"] == 1 and page["items"][0]["task_type"] == "noop", name
    both = client.get("/api/tasks?task_type=noop&taskType=report_generation", headers=admin_headers)
    assert both.status_code == 422 and "taskType" in both.get_json()["errors"]


def test_openapi_marks_the_camel_case_task_names_deprecated(client):
    spec = client.get("/api/openapi.json").get_json()
    schemas = spec["components"]["schemas"]
    assert schemas["Submit"]["properties"]["taskType"]["deprecated"] is True
    assert "task_type" in schemas["Submit"]["required"] and "taskType" not in schemas["Submit"].get("required", [])
    assert schemas["Submitted"]["properties"]["taskId"]["deprecated"] is True
    assert "task_id" in schemas["Submitted"]["properties"]
    assert schemas["Task"]["properties"]["taskType"]["deprecated"] is True
    params = {p["name"]: p for p in spec["paths"]["/api/tasks"]["get"]["parameters"]}
    assert params["taskType"].get("deprecated") is True and not params["task_type"].get("deprecated")


def test_priority_order(app, client, admin_headers):
    low = [submit(client, admin_headers, priority=1) for _ in range(5)]
    urgent = submit(client, admin_headers, priority=10)
    with app.app_context():
        first = task_model.claim(get_db(), "w1", 30)
        second = task_model.claim(get_db(), "w1", 30)
    assert str(first["_id"]) == urgent
    assert str(second["_id"]) == low[0]  # then the oldest of equal priority


def test_eight_workers_500_tasks_each_runs_exactly_once(app, register_type):
    runs = []
    lock = threading.Lock()

    def count_run(data, ctx):
        with lock:
            runs.append(ctx.task_id)
        return {"ok": True}

    register_type("count_run", count_run)
    with app.app_context():
        db = get_db()
        for i in range(500):
            task_model.insert(db, "count_run", {}, 1 + i % 10, "owner-1", 3)

    def work():
        worker = TaskWorker(app)
        while worker.run_once():
            pass

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(runs) == 500 and len(set(runs)) == 500
    with app.app_context():
        assert get_db().tasks.count_documents({"status": "completed", "attempts": 1}) == 500


def test_lease_expiry_requeues_a_task_whose_worker_died(app, client, admin_headers, statuses):
    task_id = submit(client, admin_headers)
    with app.app_context():
        db = get_db()
        claimed = task_model.claim(db, "worker-that-dies", lease_s=30)
        assert str(claimed["_id"]) == task_id
        # Nobody renews the lease; 31 seconds later it has expired.
        later = datetime.now(timezone.utc) + timedelta(seconds=31)
        requeued = task_model.requeue_expired(db, now=later)
        assert [str(t["_id"]) for t in requeued] == [task_id]
    assert TaskWorker(app).run_once() is True
    task = client.get(f"/api/tasks/{task_id}", headers=admin_headers).get_json()
    assert task["status"] == "completed" and task["attempts"] == 2


def test_a_live_lease_is_not_requeued(app, client, admin_headers):
    submit(client, admin_headers)
    with app.app_context():
        db = get_db()
        task_model.claim(db, "busy-worker", lease_s=30)
        assert task_model.requeue_expired(db, now=datetime.now(timezone.utc) + timedelta(seconds=10)) == []


def test_failures_retry_with_exponential_backoff_then_fail(app_factory, register_type, statuses):
    app = app_factory(TASK_RETRY_BACKOFF_S=0.2, TASK_MAX_ATTEMPTS=3)
    calls = []

    def always_fails(data, ctx):
        calls.append(time.monotonic())
        raise RuntimeError("upstream unavailable")

    register_type("always_fails", always_fails)
    with app.app_context():
        task = task_model.insert(get_db(), "always_fails", {}, 5, "owner-1", 3)
    worker = TaskWorker(app)
    deadline = time.monotonic() + 10
    while len(calls) < 3 and time.monotonic() < deadline:
        if not worker.run_once():
            time.sleep(0.02)
    with app.app_context():
        final = task_model.get(get_db(), task["_id"])
    assert len(calls) == 3
    assert final["status"] == "failed" and final["attempts"] == 3
    assert final["error"] == "RuntimeError: upstream unavailable"
    gaps = [b - a for a, b in zip(calls, calls[1:])]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4  # 0.2 s, then 0.4 s
    assert [p["status"] for _, p in statuses if p["id"] == str(task["_id"])][-1] == "failed"


def test_cancel_a_queued_task(client, admin_headers, statuses):
    task_id = submit(client, admin_headers)
    response = client.post(f"/api/tasks/{task_id}/cancel", headers=admin_headers)
    assert response.status_code == 200 and response.get_json()["status"] == "cancelled"
    assert client.post(f"/api/tasks/{task_id}/cancel", headers=admin_headers).status_code == 409
    assert statuses[-1][1]["status"] == "cancelled"


def test_cancel_a_running_task_stops_it_at_the_next_progress_point(app, client, admin_headers, register_type):
    started, steps = threading.Event(), []

    def long_job(data, ctx):
        for step in range(200):
            started.set()
            steps.append(step)
            ctx.progress(step // 2, f"step {step}")
            time.sleep(0.01)
        return {"done": True}

    register_type("long_job", long_job)
    with app.app_context():
        task = task_model.insert(get_db(), "long_job", {}, 5, "owner-1", 3)
    runner = threading.Thread(target=TaskWorker(app).run_once)
    runner.start()
    assert started.wait(5)
    with app.app_context():
        _, how = task_model.cancel(get_db(), task["_id"])
    runner.join(10)
    with app.app_context():
        final = task_model.get(get_db(), task["_id"])
    assert how == "cancel_requested" and final["status"] == "cancelled" and len(steps) < 200


def test_owners_see_their_tasks_others_get_404(client, admin_headers, make_user):
    _, owner_tokens = make_user("operator")
    _, other_tokens = make_user("operator")
    owner, other = bearer(owner_tokens["access_token"]), bearer(other_tokens["access_token"])
    task_id = submit(client, owner)
    assert client.get(f"/api/tasks/{task_id}", headers=owner).status_code == 200
    assert client.get(f"/api/tasks/{task_id}", headers=other).status_code == 404
    assert client.post(f"/api/tasks/{task_id}/cancel", headers=other).status_code == 404
    assert client.get(f"/api/tasks/{task_id}", headers=admin_headers).status_code == 200
    assert client.get("/api/tasks", headers=other).get_json()["total"] == 0
    assert client.get("/api/tasks", headers=owner).get_json()["total"] == 1
    assert client.get("/api/tasks/not-an-id", headers=owner).status_code == 404


def test_viewers_cannot_submit(client, make_user):
    viewer = bearer(make_user("viewer")[1]["access_token"])
    assert client.post("/api/tasks/submit", headers=viewer, json=REPORT).status_code == 403


def test_progress_is_emitted_at_most_every_500_ms(app, register_type, statuses):
    def chatty(data, ctx):
        for step in range(100):
            ctx.progress(step)
            time.sleep(0.01)  # ~1 s of work, 100 progress points
        return {}

    register_type("chatty", chatty)
    with app.app_context():
        task = task_model.insert(get_db(), "chatty", {}, 5, "owner-1", 3)
    TaskWorker(app).run_once()
    mine = [p for _, p in statuses if p["id"] == str(task["_id"])]
    running = [p for p in mine if p["status"] == "running"]
    assert 2 <= len(running) <= 4  # the claim, then one every 500 ms at most
    assert mine[-1]["status"] == "completed" and mine[-1]["progress"] == 100


def test_data_export_csv_is_downloadable(app, client, admin_headers):
    now = datetime.now(timezone.utc)
    batch = [{"sensor_id": f"T{i}", "vehicle_count": i, "average_speed": 30.0, "congestion_level": 10.0,
              "timestamp": (now - timedelta(minutes=i)).isoformat()} for i in range(5)]
    client.post("/api/traffic/data", headers=admin_headers, json=batch)
    task_id = submit(client, admin_headers, {"taskType": "data_export", "data": {
        "module": "traffic", "format": "csv", "from": (now - timedelta(hours=1)).isoformat(),
        "to": (now + timedelta(minutes=1)).isoformat()}})
    assert client.get(f"/api/tasks/{task_id}/result", headers=admin_headers).status_code == 409  # not yet
    TaskWorker(app).run_once()
    task = client.get(f"/api/tasks/{task_id}", headers=admin_headers).get_json()
    assert task["status"] == "completed" and task["result"]["rows"] == 5
    download = client.get(f"/api/tasks/{task_id}/result", headers=admin_headers)
    assert download.status_code == 200 and download.mimetype == "text/csv"
    lines = download.data.decode().strip().splitlines()
    assert lines[0].startswith("id,module,sensor_id,timestamp") and len(lines) == 6
    assert [line.split(",")[2] for line in lines[1:]] == ["T4", "T3", "T2", "T1", "T0"]  # oldest first


def run_task(app, client, headers, task_type, data):
    task_id = submit(client, headers, {"taskType": task_type, "data": data})
    TaskWorker(app).run_once()
    task = client.get(f"/api/tasks/{task_id}", headers=headers).get_json()
    assert task["status"] == "completed", task
    return task["result"]


def test_waste_route_task_visits_the_full_bins(app, client, admin_headers):
    for i, fill in enumerate((95.0, 20.0, 85.0)):
        client.post("/api/waste/bins", headers=admin_headers, json={
            "bin_id": f"BIN-T{i}", "capacity_liters": 240, "district": "Harbor", "fill_level_pct": fill,
            "location": {"type": "Point", "coordinates": [-73.99 + i / 100, 40.70]}})
    result = run_task(app, client, admin_headers, "waste_route_optimization", {"fill_threshold": 80})
    assert sorted(stop["bin_id"] for stop in result["route"]["stops"]) == ["BIN-T0", "BIN-T2"]
    assert result["route"]["distance_km"] > 0


def test_signal_retiming_task_times_intersections_with_flows(app, client, admin_headers):
    client.post("/api/traffic/data", headers=admin_headers, json={
        "sensor_id": "TRF-001", "vehicle_count": 10, "average_speed": 30.0, "congestion_level": 20.0})
    result = run_task(app, client, admin_headers, "traffic_signal_retiming", {})
    assert len(result["items"]) == 1 and result["items"][0]["cycle_s"] >= 30


def test_coverage_task_reports_every_district_and_kind(app, client, admin_headers):
    from src.services import city, emergency

    with app.app_context():
        emergency.seed_units(get_db())
    result = run_task(app, client, admin_headers, "emergency_coverage_analysis", {})
    assert [item["district"] for item in result["items"]] == city.DISTRICT_NAMES
    assert all(item["units"][kind]["eta_min"] > 0 for item in result["items"] for kind in ("ambulance", "fire",
                                                                                          "police"))


def test_queued_tasks_survive_a_worker_restart(app, client, admin_headers):
    """Tasks live in the database, not in a worker: a new worker picks them up.

    On the embedded engine the database itself lives in the server process, so a server restart
    loses it; with MongoDB (TEST_MONGO_URI) this is the restart test.
    """
    ids = [submit(client, admin_headers) for _ in range(3)]
    assert TaskWorker(app, name="before-restart").run_once() is True  # runs one task, then is stopped
    statuses = [client.get(f"/api/tasks/{i}", headers=admin_headers).get_json()["status"] for i in ids]
    assert statuses == ["completed", "queued", "queued"]
    after = TaskWorker(app, name="after-restart")  # a new worker process knows nothing but the database
    while after.run_once():
        pass
    done = [client.get(f"/api/tasks/{i}", headers=admin_headers).get_json()["status"] for i in ids]
    assert done == ["completed"] * 3
