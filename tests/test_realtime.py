"""The Socket.IO contract against a real eventlet server (docs/events.md)."""
import pytest

from tests.socket_helpers import Api, RecordingClient


@pytest.fixture(scope="module")
def server():
    from tests.conftest import LiveServer

    live = LiveServer({"SOCKET_EVENTS_PER_SECOND": "50", "SOCKET_EVENTS_BURST": "60", "ALERT_REPLAY_MAX": "50",
                       "RATELIMIT_ENABLED": "false"})
    yield live
    live.stop()


def refused(server, **kwargs):
    client = RecordingClient(server.url, **kwargs)
    with pytest.raises(Exception):
        client.connect()
    error = client.connect_error
    assert set(error) == {"message", "data"} and error["message"]
    return dict(error["data"], message=error["message"])


# Connect

def test_connect_without_token_is_refused(server):
    error = refused(server)
    assert error and "missing" in error["message"].lower()


def test_connect_with_bad_token_is_refused(server):
    assert refused(server, token="not-a-jwt")["error"] == "token_invalid"


def test_connect_with_refresh_token_is_refused(server, admin):
    assert refused(server, token=admin.tokens["refresh_token"])["error"] == "wrong_token_type"


def test_connect_with_revoked_token_is_refused(server):
    api = Api(server)
    assert api.post("/api/auth/logout", {}).status_code == 200
    assert refused(server, token=api.token)["error"] == "token_revoked"


def test_connected_payload(connect, admin):
    client = connect(admin.token)
    hello = client.of("connected")[0]
    assert hello["sid"] and hello["server_time"].endswith("Z")
    assert hello["user"]["email"] == "admin@smartcity.com" and hello["user"]["role"] == "admin"
    assert "traffic_monitoring" in hello["rooms"] and "admin" in hello["rooms"]


def test_query_string_token_is_accepted(connect, admin):
    client = connect(auth={}, query_token=admin.token)
    assert client.of("connected")[0]["user"]["role"] == "admin"


# Rooms

def test_join_and_leave_acks(connect, admin):
    client = connect(admin.token)
    assert client.call("join_room", {"room": "traffic_monitoring"}) == {"ok": True, "room": "traffic_monitoring"}
    assert client.call("join_room", {"room": "sensor:T-42"})["ok"] is True
    assert client.call("leave_room", {"room": "traffic_monitoring"}) == {
        "ok": True, "room": "traffic_monitoring", "was_member": True}


def test_admin_room_is_forbidden_to_viewers(connect, admin):
    viewer = admin.register("viewer-rooms@example.com")
    client = connect(viewer.token)
    assert "admin" not in client.of("connected")[0]["rooms"]
    ack = client.call("join_room", {"room": "admin"})
    assert ack["ok"] is False and ack["error"] == "forbidden"
    assert connect(admin.token).call("join_room", {"room": "admin"})["ok"] is True


def test_unknown_and_private_rooms_are_refused(connect, admin):
    client = connect(admin.token)
    assert client.call("join_room", {"room": "nope"})["error"] == "unknown_room"
    assert client.call("join_room", {"room": "user:someone-else"})["error"] == "forbidden"
    assert client.call("join_room", {"room": "alerts:traffic:critical"})["error"] == "forbidden"


def test_updates_reach_module_and_sensor_rooms_once(connect, admin):
    module_client = connect(admin.token)
    both = connect(admin.token)
    other = connect(admin.token)
    module_client.call("join_room", {"room": "traffic_monitoring"})
    both.call("join_room", {"room": "traffic_monitoring"})
    both.call("join_room", {"room": "sensor:T-room-1"})
    other.call("join_room", {"room": "environment_monitoring"})
    admin.traffic("T-room-1")
    update = module_client.wait_for("traffic_update", where=lambda p: p["sensor_id"] == "T-room-1")[0]
    assert update["module"] == "traffic" and update["congestion_level"] == 20.0 and update["timestamp"].endswith("Z")
    both.wait_for("traffic_update", where=lambda p: p["sensor_id"] == "T-room-1")
    both.settle(0.3)
    assert len([p for p in both.of("traffic_update") if p["sensor_id"] == "T-room-1"]) == 1
    assert not [p for p in other.of("traffic_update") if p["sensor_id"] == "T-room-1"]


# Malformed payloads

@pytest.mark.parametrize("event,payload", [
    ("join_room", None), ("join_room", {}), ("join_room", {"room": 5}), ("join_room", "traffic_monitoring"),
    ("join_room", {"room": "x" * 500}), ("subscribe_alerts", {"severity_levels": ["apocalyptic"]}),
    ("subscribe_alerts", {"modules": "traffic"}), ("subscribe_alerts", {"since": "yesterday-ish"}),
    ("subscribe_alerts", {"extra": 1}), ("request_real_time_data", {"data_type": "weather"}),
    ("request_real_time_data", [1, 2, 3]), ("leave_room", {"room": None}),
])
def test_malformed_payloads_get_ok_false_and_others_keep_receiving(connect, admin, event, payload):
    bad = connect(admin.token)
    watcher = connect(admin.token)
    watcher.call("join_room", {"room": "environment_monitoring"})
    ack = bad.call(event, payload)
    assert ack["ok"] is False and ack["error"] == "validation_error" and ack["message"]
    assert bad.sio.connected
    assert bad.call("join_room", {"room": "system"})["ok"] is True  # still fully usable
    admin.environment("E-malformed")
    watcher.wait_for("environment_update", where=lambda p: p["sensor_id"] == "E-malformed")


def test_error_event_when_no_ack_was_requested(connect, admin):
    client = connect(admin.token)
    client.send("join_room", {"room": "nowhere"})
    error = client.wait_for("error")[0]
    assert error["ok"] is False and error["error"] == "unknown_room" and error["event"] == "join_room"


def test_flooding_client_is_rate_limited_and_others_are_served(connect, admin):
    flooder = connect(admin.token)
    calm = connect(admin.token)
    calm.call("join_room", {"room": "environment_monitoring"})
    acks = [flooder.call("join_room", {"room": "system"}) for _ in range(80)]
    limited = [a for a in acks if not a["ok"]]
    assert limited and all(a["error"] == "rate_limited" for a in limited)
    admin.environment("E-flood")
    calm.wait_for("environment_update", where=lambda p: p["sensor_id"] == "E-flood")
    assert calm.call("join_room", {"room": "system"})["ok"] is True


# Alert subscriptions

def _alerts(client, sensor_id, event="environment_alert"):
    return [p for p in client.of(event) if p["sensor_id"] == sensor_id]


def test_severity_filter_is_exact(connect, admin):
    critical_env = connect(admin.token)
    everything = connect(admin.token)
    assert critical_env.call("subscribe_alerts", {"severity_levels": ["critical"], "modules": ["environment"]})[
        "ok"] is True
    everything.call("subscribe_alerts", {})
    admin.environment("E-filter-low", "low")
    admin.environment("E-filter-crit", "critical")
    admin.traffic("T-filter-crit", "critical")
    alert = critical_env.wait_for("environment_alert", where=lambda p: p["sensor_id"] == "E-filter-crit")[0]
    assert set(alert) >= {"id", "module", "severity", "type", "message", "sensor_id", "value", "threshold", "status",
                          "created_at"}
    assert alert["severity"] == "critical" and alert["type"] == "air_quality" and alert["threshold"] == 300
    everything.wait_for("environment_alert", where=lambda p: p["sensor_id"] == "E-filter-low")
    everything.wait_for("environment_alert", where=lambda p: p["sensor_id"] == "E-filter-crit")
    everything.wait_for("traffic_alert", where=lambda p: p["sensor_id"] == "T-filter-crit")
    critical_env.settle()
    assert _alerts(critical_env, "E-filter-low") == []
    assert critical_env.of("traffic_alert") == []


def test_resubscribing_replaces_the_filter(connect, admin):
    client = connect(admin.token)
    client.call("subscribe_alerts", {"severity_levels": ["critical"], "modules": ["environment"]})
    ack = client.call("subscribe_alerts", {"severity_levels": ["low"], "modules": ["environment"]})
    assert ack["subscription"] == {"modules": ["environment"], "severity_levels": ["low"]} and ack["rooms"] == 1
    admin.environment("E-resub-crit", "critical")
    admin.environment("E-resub-low", "low")
    client.wait_for("environment_alert", where=lambda p: p["sensor_id"] == "E-resub-low")
    client.settle()
    assert _alerts(client, "E-resub-crit") == []


def test_unsubscribe_stops_alerts(connect, admin):
    client = connect(admin.token)
    client.call("subscribe_alerts", {})
    assert client.call("unsubscribe_alerts") == {"ok": True, "subscription": None}
    admin.environment("E-unsub", "critical")
    client.settle()
    assert _alerts(client, "E-unsub") == []


def test_alert_updated_on_acknowledge_and_resolve(connect, admin):
    client = connect(admin.token)
    client.call("subscribe_alerts", {"modules": ["traffic"]})
    admin.traffic("T-life", "high")
    alert = client.wait_for("traffic_alert", where=lambda p: p["sensor_id"] == "T-life")[0]
    assert admin.post(f"/api/alerts/{alert['id']}/acknowledge", {"note": "crew sent"}).status_code == 200
    ack = client.wait_for("alert_updated", where=lambda p: p["id"] == alert["id"])[0]
    assert ack["change"] == "acknowledged" and ack["status"] == "acknowledged" and ack["note"] == "crew sent"
    assert ack["acknowledged_by"]["email"] == "admin@smartcity.com"
    assert admin.post(f"/api/alerts/{alert['id']}/resolve", {"note": "cleared"}).status_code == 200
    resolved = client.wait_for("alert_updated", count=2, where=lambda p: p["id"] == alert["id"])[1]
    assert resolved["change"] == "resolved" and resolved["resolved_at"].endswith("Z")


def test_auto_resolve_emits_alert_updated(connect, admin):
    client = connect(admin.token)
    client.call("subscribe_alerts", {"modules": ["traffic"]})
    admin.traffic("T-auto", "medium")
    alert = client.wait_for("traffic_alert", where=lambda p: p["sensor_id"] == "T-auto")[0]
    admin.traffic("T-auto", "ok")
    update = client.wait_for("alert_updated", where=lambda p: p["id"] == alert["id"])[0]
    assert update["change"] == "resolved" and update["resolved_by"] == "system"


def test_since_replay_across_a_disconnect_has_no_gap_and_no_duplicate(connect, admin, server):
    first = connect(admin.token)
    first.call("subscribe_alerts", {"modules": ["environment"]})
    admin.environment("E-replay-0", "critical")
    seen = first.wait_for("environment_alert", where=lambda p: p["sensor_id"] == "E-replay-0")[0]
    first.disconnect()

    missed = [admin.environment(f"E-replay-{i}", "high") for i in range(1, 5)]
    admin.traffic("T-replay-skip", "critical")  # another module: must not be replayed

    second = connect(admin.token)
    ack = second.call("subscribe_alerts", {"modules": ["environment"], "since": seen["id"]})
    assert ack["ok"] is True and ack["replayed"] == 4 and ack["truncated"] is False
    admin.environment("E-replay-live", "critical")
    second.wait_for("environment_alert", where=lambda p: p["sensor_id"] == "E-replay-live")
    second.settle(0.3)
    received = [(p["sensor_id"], p.get("replayed", False)) for p in second.of("environment_alert")]
    assert received == [(f"E-replay-{i}", True) for i in range(1, 5)] + [("E-replay-live", False)]
    assert second.of("traffic_alert") == []
    assert [m["sensor_id"] for m in missed] == [f"E-replay-{i}" for i in range(1, 5)]


def test_since_accepts_an_iso_time_and_respects_the_filter(connect, admin):
    client = connect(admin.token)
    first = admin.environment("E-iso-0", "ok")
    admin.environment("E-iso-1", "low")
    admin.environment("E-iso-2", "critical")
    ack = client.call("subscribe_alerts", {"modules": ["environment"], "severity_levels": ["critical"],
                                           "since": first["received_at"]})
    assert ack["replayed"] >= 1
    replayed = [p["sensor_id"] for p in client.of("environment_alert") if p.get("replayed")]
    assert "E-iso-2" in replayed and "E-iso-1" not in replayed


def test_since_with_unknown_alert_id_is_refused(connect, admin):
    ack = connect(admin.token).call("subscribe_alerts", {"since": "0" * 24})
    assert ack["ok"] is False and ack["error"] == "not_found"


def test_request_real_time_data_serves_the_latest_per_sensor(connect, admin):
    admin.environment("E-latest", "ok", temperature_c=10.0)
    admin.environment("E-latest", "ok", temperature_c=11.5)
    client = connect(admin.token)
    ack = client.call("request_real_time_data", {"data_type": "environment"})
    readings = [r for r in ack["data"]["environment"] if r["sensor_id"] == "E-latest"]
    assert ack["ok"] is True and len(readings) == 1 and readings[0]["temperature_c"] == 11.5
    everything = client.call("request_real_time_data", {"data_type": "all"})
    assert set(everything["data"]) == {"traffic", "environment", "waste", "energy"}
    client.send("request_real_time_data", {"data_type": "traffic"})
    assert "traffic" in client.wait_for("real_time_data")[0]["data"]


def test_user_room_is_private(connect, admin):
    viewer = admin.register("viewer-private@example.com")
    client = connect(viewer.token)
    own = f"user:{client.of('connected')[0]['user']['id']}"
    assert client.call("join_room", {"room": own})["error"] == "forbidden"  # joined by the server only


@pytest.mark.parametrize("with_redis", [False, True], ids=["single-process", "redis-queue"])
def test_replay_seam_is_exact_while_alerts_keep_arriving(request, live_server, with_redis):
    """Clients subscribe with `since` while alerts keep arriving: each client gets each alert once.

    Through the Redis queue an alert is delivered a moment after it is stored, which is exactly
    the window in which a replay could also pick it up.
    """
    import threading
    import time

    import requests

    env = {"REDIS_URL": request.getfixturevalue("redis_db")} if with_redis else {}
    server = live_server(RATELIMIT_ENABLED="false", **env)
    admin = Api(server)
    clients = [RecordingClient(server.url, token=admin.token).connect() for _ in range(12)]
    marker = admin.environment("E-seam-marker", "ok")
    stop = threading.Event()
    raised = []

    def raise_alerts():
        session = requests.Session()
        for i in range(400):
            if stop.is_set():
                return
            body = {"sensor_id": f"E-seam-{i}", "pm25": 300.0, "pm10": 10.0, "co2": 400.0, "noise_db": 40.0,
                    "temperature_c": 20.0, "humidity_pct": 50.0}
            response = session.post(server.url + "/api/environment/data", json=body, headers=admin.headers,
                                    timeout=10)
            assert response.status_code == 201
            raised.append(f"E-seam-{i}")

    worker = threading.Thread(target=raise_alerts)
    worker.start()
    try:
        for client in clients:
            time.sleep(0.03)
            ack = client.call("subscribe_alerts", {"modules": ["environment"], "severity_levels": ["critical"],
                                                   "since": marker["received_at"]})
            assert ack["ok"] is True and ack["truncated"] is False
        time.sleep(0.2)
    finally:
        stop.set()
        worker.join()
    for client in clients:
        client.wait_for("environment_alert", where=lambda p: p["sensor_id"] == raised[-1])
    clients[0].settle(0.5)
    for client in clients:
        got = [p["sensor_id"] for p in client.of("environment_alert") if p["sensor_id"].startswith("E-seam-")]
        client.disconnect()
        assert len(got) == len(set(got)), f"duplicates: {sorted(x for x in set(got) if got.count(x) > 1)}"
        assert set(got) == set(raised), f"missing: {sorted(set(raised) - set(got))}"


def test_health_counts_connected_clients_and_rooms(connect, admin, server):
    import requests

    client = connect(admin.token)
    client.call("join_room", {"room": "energy_monitoring"})
    realtime = admin.get("/api/health").json()["services"]["realtime"]
    assert realtime["connected_clients"] >= 1
    assert realtime["rooms"]["energy_monitoring"] >= 1
    assert realtime["events_emitted_total"] > 0


@pytest.mark.parametrize("module,update_event,alert_event,body,alert_body", [
    ("waste", "waste_update", "waste_alert", {"bin_id": "BIN-rt", "fill_level_pct": 30.0},
     {"bin_id": "BIN-rt", "fill_level_pct": 95.0}),
    ("energy", "energy_update", "energy_alert", {"grid_id": "GRID-rt", "load_mw": 40.0, "capacity_mw": 100.0},
     {"grid_id": "GRID-rt", "load_mw": 99.0, "capacity_mw": 100.0}),
])
def test_waste_and_energy_updates_and_alerts(connect, admin, module, update_event, alert_event, body, alert_body):
    if module == "waste":
        created = admin.post("/api/waste/bins", {"bin_id": "BIN-rt", "capacity_liters": 240, "district": "Harbor",
                                                 "location": {"type": "Point", "coordinates": [-73.99, 40.70]}})
        assert created.status_code in (201, 409)
    sensor = body.get("bin_id") or body.get("grid_id")
    client = connect(admin.token)
    client.call("join_room", {"room": f"{module}_monitoring"})
    client.call("subscribe_alerts", {"modules": [module]})
    assert admin.post(f"/api/{module}/data", body).status_code == 201
    update = client.wait_for(update_event, where=lambda p: p["sensor_id"] == sensor)[0]
    assert admin.post(f"/api/{module}/data", alert_body).status_code == 201
    alert = client.wait_for(alert_event, where=lambda p: p["sensor_id"] == sensor)[0]
    if module == "waste":
        assert update["district"] == "Harbor" and alert["type"] == "bin_full" and alert["severity"] == "medium"
    else:
        assert update["utilization_pct"] == 40.0 and alert["type"] == "grid_overload" and alert["severity"] == "high"


def test_emergency_alert_on_incident_and_dispatch(connect, admin):
    client = connect(admin.token)
    client.call("subscribe_alerts", {"modules": ["emergency"]})
    incident = admin.post("/api/emergency/incidents", {
        "type": "fire", "severity": "high", "description": "Warehouse fire",
        "location": {"type": "Point", "coordinates": [-73.985, 40.748]}})
    assert incident.status_code == 201, incident.text
    incident_id = incident.json()["id"]
    first = client.wait_for("emergency_alert", where=lambda p: p["type"] == "incident")[0]
    assert first["module"] == "emergency" and first["severity"] == "high"
    dispatched = admin.post(f"/api/emergency/incidents/{incident_id}/dispatch-nearest", {})
    assert dispatched.status_code == 200, dispatched.text
    alert = client.wait_for("emergency_alert", where=lambda p: p["type"] == "dispatch")[0]
    assert alert["severity"] == "high" and "fire" in alert["message"].lower()


def test_public_alert_reaches_every_connected_client(connect, admin):
    viewer = admin.register("viewer-public@example.com")
    listeners = [connect(admin.token), connect(viewer.token)]  # no rooms joined, no subscriptions
    response = admin.post("/api/emergency/alerts/broadcast", {
        "title": "Flood warning", "message": "Avoid the riverside until 18:00", "severity": "high",
        "district": "Riverside"})
    assert response.status_code in (200, 201), response.text
    for client in listeners:
        alert = client.wait_for("public_alert")[0]
        assert alert["title"] == "Flood warning" and alert["issued_by"] == "admin@smartcity.com"
        assert alert["created_at"].endswith("Z") and alert["id"]
    assert viewer.post("/api/emergency/alerts/broadcast", {"title": "x", "message": "y", "severity": "low"}
                       ).status_code == 403


def test_sessions_end_when_their_token_is_revoked(live_server):
    server = live_server(SCHEDULER_ENABLED="true", SIMULATION_ENABLED="false", SYSTEM_UPDATE_INTERVAL_S="0.5",
                         RATELIMIT_ENABLED="false")
    api = Api(server)
    client = RecordingClient(server.url, token=api.token).connect()
    assert api.post("/api/auth/logout", {}).status_code == 200
    import time

    deadline = time.time() + 5
    while client.sio.connected and time.time() < deadline:
        time.sleep(0.1)
    assert not client.sio.connected, "a revoked token's socket is disconnected"


def test_events_after_token_expiry_are_refused(live_server):
    server = live_server(JWT_ACCESS_TTL_S="2", RATELIMIT_ENABLED="false")
    client = RecordingClient(server.url, token=Api(server).token).connect()
    import time

    time.sleep(2.5)
    ack = client.call("join_room", {"room": "system"})
    assert ack["ok"] is False and ack["error"] == "token_expired"
    assert refused(server, token=client.token)["error"] == "token_expired"  # and it cannot connect again
