"""Connection state recovery and token renewal, driven with the official socket.io-client.

The packet log is tested directly; everything else against live eventlet servers: a client that
loses its transport gets `socket.recovered === true`, its rooms and subscription back, and every
event it missed exactly once, in order, before newer live ones.
"""
import json
import os
import subprocess
import time

import pytest
import requests
import socketio
import websocket

from src.realtime.recovery import PacketLog, parse_offset, valid_pid
from tests.conftest import ROOT, bearer
from tests.socket_helpers import Api

# PacketLog, pure


def filled_log(count=5, epoch="e1", max_packets=100, max_age_s=120):
    log = PacketLog(max_packets, max_age_s)
    for seq in range(1, count + 1):
        log.append(f"{epoch}-{seq}", "traffic_update", {"n": seq}, ["traffic_monitoring"] if seq % 2 else ["other"],
                   now=float(seq))
    return log


def test_the_log_returns_what_a_position_missed_in_its_rooms_in_order():
    log = filled_log()
    assert log.missed(("e1", 1), ["traffic_monitoring"], now=6) == [
        ("e1-3", "traffic_update", {"n": 3}), ("e1-5", "traffic_update", {"n": 5})]
    assert log.missed(("e1", 5), ["traffic_monitoring"], now=6) == []
    assert log.missed(("e1", 0), ["other"], now=6) == [("e1-2", "traffic_update", {"n": 2}),
                                                        ("e1-4", "traffic_update", {"n": 4})]


@pytest.mark.parametrize("position", [("e1", 6), ("e2", 3), None, ("e1", -1)])
def test_the_log_cannot_answer_for_positions_it_does_not_cover(position):
    assert filled_log().missed(position, ["traffic_monitoring"], now=6) is None


def test_a_full_or_old_log_forgets_and_refuses_older_positions():
    full = filled_log(max_packets=3)
    assert full.missed(("e1", 1), ["traffic_monitoring"], now=6) is None  # packets 1-2 were dropped
    assert full.missed(("e1", 2), ["traffic_monitoring"], now=6) is not None
    aged = filled_log(max_age_s=2.5)
    assert aged.missed(("e1", 2), ["traffic_monitoring"], now=6) is None
    assert aged.missed(("e1", 4), ["traffic_monitoring"], now=6) == [("e1-5", "traffic_update", {"n": 5})]


def test_a_gap_in_the_sequence_makes_earlier_positions_unrecoverable():
    log = filled_log(count=3)
    log.append("e1-7", "traffic_update", {"n": 7}, ["traffic_monitoring"], now=7)  # 4-6 never arrived
    assert log.missed(("e1", 3), ["traffic_monitoring"], now=7) is None
    assert log.missed(("e1", 6), ["traffic_monitoring"], now=7) == [("e1-7", "traffic_update", {"n": 7})]


@pytest.mark.parametrize("value", [None, 5, "", "e1", "e1-", "-5", "e1-x", "e1-5-6", "x" * 40 + "-1", ["e1-1"],
                                   {"offset": "e1-1"}, "e1-" + "9" * 30])
def test_malformed_offsets_are_no_offset(value):
    assert parse_offset(value) is None


@pytest.mark.parametrize("value", [None, 5, "", "short", "x" * 65, "bad pid with spaces!", {"pid": "x"}])
def test_malformed_pids_are_no_pid(value):
    assert not valid_pid(value)


# Live, with the official client

@pytest.fixture(scope="module")
def server():
    from tests.conftest import LiveServer

    live = LiveServer({"RATELIMIT_ENABLED": "false", "SESSION_SWEEP_S": "0.2"})
    yield live
    live.stop()


def connected_event(js, after=0):
    return js.wait_for("connected", after=after)[0]["args"][0]


def traffic_values(js, after=0):
    return [(r["args"][0]["vehicle_count"], r["args"][1] if len(r["args"]) > 1 else None)
            for r in js.events("traffic_update", after=after) if r["args"][0]["sensor_id"] == "CSR-1"]


def post_traffic(api, count, congestion=10.0):
    response = api.post("/api/traffic/data", {"sensor_id": "CSR-1", "vehicle_count": count, "average_speed": 40.0,
                                              "congestion_level": congestion})
    assert response.status_code == 201, response.text


def away(js):
    """Close the transport; returns the mark after which the reconnect's events are."""
    mark = js.mark()
    js.close_engine()
    js.wait_for("disconnect", after=mark)
    return mark


def test_a_dashboard_with_no_special_code_recovers_rooms_subscription_and_missed_events(server, js_client):
    api = Api(server)
    js_client.connect(server.url, auth={"token": api.token})
    assert connected_event(js_client)["recovered"] is False
    assert js_client.state()["pid"], "the CONNECT reply carries a pid"
    js_client.emit("join_room", {"room": "traffic_monitoring"})
    js_client.emit("subscribe_alerts", {"severity_levels": ["critical"], "modules": ["traffic"]})
    post_traffic(api, 1)
    js_client.wait_for(lambda r: r.get("event") == "traffic_update")

    for round_ in range(2):  # the first session has no offsets (the server's position); the second has them
        base = 10 * (round_ + 1)
        mark = js_client.mark()
        js_client.close_engine()
        js_client.wait_for("disconnect", after=mark)
        # While the client is away (it reconnects after ~100 ms): readings and a critical alert.
        post_traffic(api, base)
        post_traffic(api, base + 1, congestion=97.0)
        post_traffic(api, base + 2)
        hello = connected_event(js_client, after=mark)
        assert hello["recovered"] is True and js_client.state()["recovered"] is True
        assert "traffic_monitoring" in hello["joined"] and hello["subscription"]["severity_levels"] == ["critical"]
        post_traffic(api, base + 3)  # live, after the recovery
        js_client.wait_for(lambda r: r.get("event") == "traffic_update" and r["args"][0]["vehicle_count"] == base + 3,
                           after=mark)
        values = [v for v, _ in traffic_values(js_client, after=mark)]
        # Readings posted before the reconnect may arrive live or replayed: each once, in order.
        assert values == [base, base + 1, base + 2, base + 3], values
        alerts = [r["args"][0] for r in js_client.events("traffic_alert", after=mark)]
        if round_ == 0:  # raised while away (later rounds bump it without a new alert event)
            assert [a["severity"] for a in alerts] == ["critical"], alerts
        assert len({(a["id"], a["count"]) for a in alerts}) == len(alerts), "no alert event twice"
    offsets = [offset for _, offset in traffic_values(js_client)]
    assert all(isinstance(o, str) for o in offsets[-4:]), "a recovered session reads offsets"
    assert js_client.state()["lastOffset"] == offsets[-1]


def test_python_socketio_clients_get_no_offsets_and_no_pid_use(server):
    api = Api(server)
    received = []
    client = socketio.Client()
    client.on("traffic_update", lambda *args: received.append(args))
    client.connect(server.url, auth={"token": api.token}, transports=["websocket"])
    try:
        client.call("join_room", {"room": "traffic_monitoring"})
        post_traffic(api, 5)
        deadline = time.time() + 5
        while not received and time.time() < deadline:
            time.sleep(0.05)
        assert received and all(len(args) == 1 for args in received)
    finally:
        client.disconnect()


def python_connect(server, auth):
    hello = []
    client = socketio.Client()
    client.on("connected", hello.append)
    client.connect(server.url, auth=auth, transports=["websocket"])
    deadline = time.time() + 5
    while not hello and time.time() < deadline:
        time.sleep(0.05)
    return client, hello[0]


@pytest.mark.parametrize("pid,offset", [
    (12345, "e1-1"), ("x" * 5000, "e1-1"), (None, {"evil": True}), ("a" * 24, ["e1-1"]),
    ("a" * 24, "not-an-offset-at-all"), ("a" * 24, "e1-" + "9" * 40)])
def test_malformed_or_unknown_pid_and_offset_give_a_fresh_session(server, pid, offset):
    api = Api(server)
    client, hello = python_connect(server, {"token": api.token, "pid": pid, "offset": offset})
    try:
        assert hello["recovered"] is False and client.connected
        assert client.call("join_room", {"room": "traffic_monitoring"})["ok"] is True
    finally:
        client.disconnect()


def test_a_foreign_pid_gives_a_fresh_session_without_the_others_rooms(server, js_client):
    api = Api(server)
    js_client.connect(server.url, auth={"token": api.token})
    connected_event(js_client)
    js_client.emit("join_room", {"room": "admin"})
    js_client.emit("subscribe_alerts", {})
    admin_pid = js_client.state()["pid"]
    operator = api.register(f"csr-operator-{time.time_ns()}@example.com", "operator")
    client, hello = python_connect(server, {"token": operator.token, "pid": admin_pid,
                                            "offset": js_client.state()["lastOffset"]})
    try:
        assert hello["recovered"] is False and hello["subscription"] is None
        assert not any(r in hello["joined"] for r in ("admin", "traffic_monitoring"))
        assert not any(r.startswith("alerts:") for r in hello["joined"])
    finally:
        client.disconnect()


def test_recovery_after_the_window_is_a_fresh_session(live_server, js_client):
    server = live_server(RATELIMIT_ENABLED="false", SESSION_RECOVERY_S="1")
    api = Api(server)
    js_client.connect(server.url, auth={"token": api.token}, options={"reconnectionDelay": 2500,
                                                                       "reconnectionDelayMax": 2500,
                                                                       "randomizationFactor": 0})
    connected_event(js_client)
    js_client.emit("join_room", {"room": "traffic_monitoring"})
    mark = away(js_client)
    hello = connected_event(js_client, after=mark)
    assert hello["recovered"] is False and "traffic_monitoring" not in hello["joined"]
    assert js_client.state()["recovered"] is False


def test_a_recovered_session_cannot_keep_a_room_its_role_no_longer_allows(server, js_client):
    api = Api(server)
    email = f"csr-admin-{time.time_ns()}@example.com"
    user_id = api.register(email, "admin").get("/api/auth/profile").json()["id"]
    js_client.connect(server.url, auth_provider=lambda: {"token": server.login(email, "s3cret-pass")["access_token"]})
    connected_event(js_client)
    assert js_client.emit("join_room", {"room": "admin"})["ok"] is True
    js_client.emit("join_room", {"room": "traffic_monitoring"})
    mark = js_client.mark()
    demoted = requests.patch(f"{server.url}/api/users/{user_id}", json={"role": "viewer"},
                             headers=bearer(api.token), timeout=5)
    assert demoted.status_code == 200, demoted.text
    # The sweeper closes the transport (role_changed); the client reconnects and recovers as a viewer.
    hello = connected_event(js_client, after=mark)
    assert hello["recovered"] is True and hello["user"]["role"] == "viewer"
    assert "traffic_monitoring" in hello["joined"] and "admin" not in hello["joined"]
    refused = js_client.emit("join_room", {"room": "admin"})
    assert refused["ok"] is False and refused["error"] == "forbidden"


def test_a_client_reconnecting_in_a_tight_loop_is_rate_limited(live_server):
    server = live_server(RATELIMIT_ENABLED="false", SOCKET_CONNECTS_BURST="3", SOCKET_CONNECTS_PER_MINUTE="6")
    token = Api(server).token
    outcomes = []
    for _ in range(5):
        client = socketio.Client(reconnection=False)
        refusals = []
        client.on("connect_error", refusals.append)
        try:
            client.connect(server.url, auth={"token": token}, transports=["websocket"])
            outcomes.append("ok")
            client.disconnect()
        except socketio.exceptions.ConnectionError:
            outcomes.append(refusals[0]["data"]["error"] if refusals else "refused without a reason")
    assert outcomes == ["ok"] * 3 + ["rate_limited"] * 2, outcomes


def test_the_example_dashboard_stays_live_across_token_expiries(live_server):
    from tests.js_client import missing_requirement

    if missing_requirement():
        pytest.skip(missing_requirement())
    server = live_server(RATELIMIT_ENABLED="false", JWT_ACCESS_TTL_S="4", TOKEN_EXPIRY_NOTICE_S="2",
                         SESSION_SWEEP_S="0.2")
    api = Api(server)
    env = dict(os.environ, NODE_PATH=os.path.join(ROOT, "tests", "js", "node_modules"))
    example = subprocess.Popen(["node", os.path.join(ROOT, "examples", "dashboard.js"), server.url], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        import threading

        threading.Thread(target=lambda: [lines.append(json.loads(line)) for line in example.stdout],
                         daemon=True).start()
        deadline = time.time() + 10
        while not any(line["event"] == "connected" for line in lines) and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # joined and subscribed
        sent = []
        for n in range(28):  # 14 s: three or more 4-second tokens
            if n % 4 == 0:
                api = Api(server)  # this test's own REST token expires too
            post_traffic(api, 100 + n)
            sent.append(100 + n)
            time.sleep(0.5)
        time.sleep(1)
        got = [line["payload"]["vehicle_count"] for line in lines
               if line["event"] == "traffic_update" and line["payload"]["sensor_id"] == "CSR-1"]
        assert got == sent, (got, sent)
        assert sum(line["event"] == "token_expiring" for line in lines) >= 3
    finally:
        example.terminate()
        example.wait(5)


def test_reauthenticate_extends_the_session_in_place_for_the_same_user_only(server):
    api = Api(server)
    client, hello = python_connect(server, {"token": api.token})
    try:
        fresh = server.login()["access_token"]
        renewed = client.call("reauthenticate", {"token": fresh})
        assert renewed["ok"] is True and renewed["token_expires_at"].endswith("Z")
        other = api.register(f"csr-viewer-{time.time_ns()}@example.com").token
        assert client.call("reauthenticate", {"token": other})["error"] == "forbidden"
        assert client.call("reauthenticate", {"token": "not-a-jwt"})["error"] == "token_invalid"
        assert client.call("reauthenticate", {})["error"] == "validation_error"
        assert client.connected and client.call("join_room", {"room": "system"})["ok"] is True
    finally:
        client.disconnect()


def test_a_revoked_session_ends_for_good_with_a_reason(server, js_client):
    api = Api(server)
    js_client.connect(server.url, auth={"token": api.token})
    connected_event(js_client)
    pid = js_client.state()["pid"]
    assert api.post("/api/auth/logout", {"refresh_token": api.tokens["refresh_token"]}).status_code == 200
    ended = js_client.wait_for("session_ended")[0]["args"][0]
    assert ended["reason"] == "token_revoked"
    assert js_client.wait_for("disconnect")[0]["reason"] == "io server disconnect"
    # The session cannot be brought back by its pid, even with a valid token.
    client, hello = python_connect(server, {"token": server.login()["access_token"], "pid": pid})
    try:
        assert hello["recovered"] is False
    finally:
        client.disconnect()


def raw_connect(server, auth):
    """A bare WebSocket Socket.IO connection: (socket, frames up to and including the CONNECT reply)."""
    ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket")
    ws.recv()  # engine.io open
    ws.send("40" + json.dumps(auth))
    ws.settimeout(3)
    frames = []
    while not any(f.startswith("40") for f in frames):
        frames.append(ws.recv())
    return ws, frames


def connect_reply(frames):
    return json.loads(next(f for f in frames if f.startswith("40"))[2:])


def next_update_offset(ws):
    """The offset (last argument) of the next `traffic_update` on a raw connection."""
    while True:
        frame = ws.recv()
        if frame.startswith('42["traffic_update"'):
            return json.loads(frame[2:])[2]


def connected_payload(ws, frames):
    while not any(f.startswith('42["connected"') for f in frames):
        frames.append(ws.recv())
    return json.loads(next(f for f in frames if f.startswith('42["connected"'))[2:])[1]


def test_a_session_recovers_again_and_again_without_traffic(server):
    """A recovered session that received nothing since is recoverable next time too (it used to alternate)."""
    api = Api(server)
    ws, frames = raw_connect(server, {"token": api.token, "recovery": True})
    pid = connect_reply(frames)["pid"]
    ws.send("421" + json.dumps(["join_room", {"room": "sensor:CSR-QUIET"}]))
    while not ws.recv().startswith("431"):
        pass
    for attempt in range(3):
        ws.close()  # transport loss, no offset ever received
        time.sleep(0.2)
        ws, frames = raw_connect(server, {"token": api.token, "pid": pid})
        hello = connected_payload(ws, frames)
        assert connect_reply(frames)["pid"] == pid and hello["recovered"] is True, (attempt, hello)
        assert "sensor:CSR-QUIET" in hello["joined"]
    ws.close()


def test_the_missed_packets_follow_the_connect_reply(server):
    """socket.io-client buffers events received before CONNECT and a transport close does not clear that
    buffer; so the replay must come after the CONNECT reply, or a quick second reconnect duplicates it."""
    api = Api(server)
    ws, frames = raw_connect(server, {"token": api.token, "recovery": True})
    pid = connect_reply(frames)["pid"]
    ws.send("421" + json.dumps(["join_room", {"room": "sensor:CSR-ORDER"}]))
    while not ws.recv().startswith("431"):
        pass
    post_traffic_to = {"sensor_id": "CSR-ORDER", "vehicle_count": 1, "average_speed": 40.0, "congestion_level": 10.0}
    assert api.post("/api/traffic/data", post_traffic_to).status_code == 201
    offset = next_update_offset(ws)
    ws.close()  # transport loss
    time.sleep(0.3)
    assert api.post("/api/traffic/data", dict(post_traffic_to, vehicle_count=2)).status_code == 201
    ws, frames = raw_connect(server, {"token": api.token, "pid": pid, "offset": offset})
    ws.settimeout(2)
    try:
        while not any(f.startswith('42["traffic_update"') for f in frames):
            frames.append(ws.recv())
    finally:
        ws.close()
    connect_at = next(i for i, f in enumerate(frames) if f.startswith("40"))
    replay_at = next(i for i, f in enumerate(frames) if f.startswith('42["traffic_update"'))
    assert connect_reply(frames)["pid"] == pid and connect_at < replay_at, frames


def test_a_quiet_session_stays_recoverable_after_its_last_packet_left_the_log(live_server):
    server = live_server(RATELIMIT_ENABLED="false", SESSION_RECOVERY_S="3", SESSION_SWEEP_S="0.2")
    api = Api(server)
    ws, frames = raw_connect(server, {"token": api.token, "recovery": True})
    pid = connect_reply(frames)["pid"]
    ws.send("421" + json.dumps(["join_room", {"room": "sensor:CSR-Q"}]))
    while not ws.recv().startswith("431"):  # joined before the reading is posted
        pass
    quiet = {"sensor_id": "CSR-Q", "vehicle_count": 1, "average_speed": 40.0, "congestion_level": 10.0}
    assert api.post("/api/traffic/data", quiet).status_code == 201
    offset = next_update_offset(ws)
    for n in range(20):  # 4 s of traffic elsewhere: the quiet room's packet ages out of the 3 s log
        post_traffic(api, n)
        time.sleep(0.2)
    ws.close()
    time.sleep(1)  # the server has seen the close and saved the session
    ws, frames = raw_connect(server, {"token": api.token, "pid": pid, "offset": offset})
    try:
        hello = connected_payload(ws, frames)
        assert hello["recovered"] is True and "sensor:CSR-Q" in hello["joined"], hello
    finally:
        ws.close()
