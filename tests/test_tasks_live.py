"""Task status over Socket.IO from a real server with an in-process worker pool."""
from tests.socket_helpers import Api, RecordingClient


def test_report_task_streams_status_to_its_owner_only(live_server):
    server = live_server(TASK_WORKERS="1", TASK_POLL_S="0.2", RATELIMIT_ENABLED="false")
    owner = Api(server)
    other = owner.register("someone-else@example.com", role="operator")
    owner_client = RecordingClient(server.url, token=owner.token).connect()
    other_client = RecordingClient(server.url, token=other.token).connect()
    try:
        for i in range(30):
            owner.traffic(f"T-report-{i % 3}")
        response = owner.post("/api/tasks/submit", {"taskType": "report_generation", "priority": 8, "data": {
            "from": "2026-01-01T00:00:00Z", "to": "2027-01-01T00:00:00Z"}})
        assert response.status_code == 202
        task_id = response.json()["taskId"]
        done = owner_client.wait_for("task_status", where=lambda p: p["id"] == task_id and p["status"] == "completed",
                                     timeout=20)[0]
        assert done["progress"] == 100 and done["taskType"] == "report_generation"
        sequence = [p["status"] for p in owner_client.of("task_status") if p["id"] == task_id]
        assert sequence[0] == "queued" and sequence[-1] == "completed"
        running = [p for p in owner_client.of("task_status") if p["id"] == task_id and p["status"] == "running"]
        assert running and max(p["progress"] for p in running) > 0
        assert sequence.index("running") < sequence.index("completed")
        result = owner.get(f"/api/tasks/{task_id}/result").json()["result"]
        assert result["modules"]["traffic"]["readings"] >= 30
        other_client.settle(0.5)
        assert other_client.of("task_status") == []
        assert other.get(f"/api/tasks/{task_id}").status_code == 404
    finally:
        owner_client.disconnect()
        other_client.disconnect()
