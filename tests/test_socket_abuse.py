"""Hostile and careless sockets against a real eventlet server: reserved event names, floods,
malformed packets, connections that never authenticate, and accounts changed under a live socket."""
import json
import time

import pytest
import requests
import websocket

from tests.socket_helpers import Api, RecordingClient

pytestmark = pytest.mark.live


def wait_until(predicate, timeout=5.0, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def realtime_health(server, api):
    return api.get("/api/health").json()["services"]["realtime"]


@pytest.fixture
def server(live_server):
    return live_server(SESSION_SWEEP_S="0.3", RATELIMIT_ENABLED="false", SOCKET_EVENTS_PER_SECOND="20",
                       SOCKET_EVENTS_BURST="40", SOCKET_CONNECT_TIMEOUT_S="1", LOG_LEVEL="INFO")


def test_client_sent_disconnect_is_refused_and_logout_still_ends_the_socket(server):
    api = Api(server)
    watcher = RecordingClient(server.url, token=api.token).connect()
    assert watcher.call("join_room", {"room": "traffic_monitoring"})["ok"]
    # The trick: an EVENT named `disconnect` used to run the server's disconnect handler, wiping
    # the session record while the socket stayed connected and in its rooms.
    refused = watcher.call("disconnect", {})
    assert refused["ok"] is False and refused["error"] == "unknown_event"
    refused = watcher.call("connect", {"token": api.token})
    assert refused["ok"] is False and refused["error"] == "unknown_event"
    assert watcher.call("join_room", {"room": "system"})["ok"], "the session survived the attempts"

    assert api.post("/api/auth/logout", {}).status_code == 200
    assert wait_until(lambda: not watcher.sio.connected, timeout=5), "the logged-out socket is disconnected"
    other = Api(server)
    other.traffic("T-after-logout")
    watcher.settle(0.5)
    assert watcher.of("traffic_update") == []


def test_client_sent_disconnect_cannot_outlive_token_expiry(live_server):
    server = live_server(SESSION_SWEEP_S="0.3", RATELIMIT_ENABLED="false", JWT_ACCESS_TTL_S="2")
    api = Api(server)
    client = RecordingClient(server.url, token=api.token).connect()
    assert client.call("join_room", {"room": "traffic_monitoring"})["ok"]
    client.send("disconnect", {})
    assert wait_until(lambda: not client.sio.connected, timeout=6), "expired sockets are swept by what is connected"


def test_connect_event_flood_is_budgeted_and_logged_once(server):
    api = Api(server)
    flooder = RecordingClient(server.url, token=api.token).connect()
    bystander = RecordingClient(server.url, token=api.token).connect()
    for _ in range(300):
        flooder.send("connect", {"token": api.token})
    # The flood spends the flooder's own budget: its next events are refused for a while...
    assert wait_until(lambda: len(flooder.of("error")) >= 40, timeout=5)
    errors = {e["error"] for e in flooder.of("error")}
    assert errors <= {"unknown_event", "rate_limited"} and "rate_limited" in errors
    # ...while another client is served at once.
    started = time.perf_counter()
    assert bystander.call("join_room", {"room": "system"})["ok"]
    assert time.perf_counter() - started < 2
    time.sleep(0.3)
    log = server.output()
    assert "Traceback" not in log
    lines = [line for line in log.splitlines() if flooder.sio.get_sid() in line or "unknown_event" in line]
    assert 1 <= len(lines) <= 2, lines
    faults = realtime_health(server, api)["client_faults"]
    assert faults.get("unknown_event", 0) + faults.get("rate_limited", 0) >= 300


def raw_socket(server, token):
    """An engine.io WebSocket spoken by hand (EIO=4), connected to the default namespace."""
    ws = websocket.create_connection(server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket",
                                     timeout=5)
    assert ws.recv().startswith("0{")  # engine.io OPEN
    if token is not None:
        ws.send("40" + json.dumps({"token": token}))
        frames = [ws.recv() for _ in range(2)]  # the CONNECT ack and `connected`, in either order
        assert any(frame.startswith("40{") for frame in frames), frames
    return ws


def closed_by_server(ws, timeout=5):
    """True when the server closes the connection within `timeout` (pings are answered meanwhile)."""
    ws.settimeout(0.5)
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            message = ws.recv()
        except websocket.WebSocketTimeoutException:
            continue
        except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
            return True
        if message == "":
            return True
        if message == "2":
            ws.send("3")  # pong: the connection is alive, only unauthenticated
    return False


@pytest.mark.parametrize("garbage", ["42[unterminated", "4Z", "49", "42" + "[" * 5000])
def test_malformed_packets_close_the_connection_without_traceback(server, garbage):
    api = Api(server)
    ws = raw_socket(server, api.token)
    ws.send(garbage)
    assert closed_by_server(ws), "a packet the server cannot parse closes the connection"
    time.sleep(0.2)
    assert "Traceback" not in server.output()
    assert realtime_health(server, api)["client_faults"].get("malformed_packet", 0) >= 1


def test_connections_that_never_authenticate_are_closed(server):
    api = Api(server)
    silent = raw_socket(server, token=None)  # answers pings, never sends CONNECT
    refused = raw_socket(server, token=None)
    refused.send("40" + json.dumps({"token": "not-a-jwt"}))
    assert refused.recv().startswith("44")  # CONNECT_ERROR, and the transport stays open...
    assert closed_by_server(silent, timeout=4), "...until the CONNECT deadline (1 s here)"
    assert closed_by_server(refused, timeout=4)
    realtime = realtime_health(server, api)
    assert realtime["handshake_timeouts_total"] >= 2
    assert realtime["pending_handshakes"] == 0


def test_disabled_or_demoted_accounts_lose_their_sockets(server):
    admin = Api(server)
    viewer = admin.register("sock-viewer@example.com", role="operator")
    client = RecordingClient(server.url, token=viewer.token).connect()
    user_id = client.wait_for("connected")[0]["user"]["id"]

    assert admin.patch(f"/api/users/{user_id}", {"role": "viewer"}).status_code == 200
    assert wait_until(lambda: not client.sio.connected, timeout=5), "a demoted user's socket reconnects"
    again = RecordingClient(server.url, token=viewer.token).connect()
    assert again.wait_for("connected")[0]["user"]["role"] == "viewer"
    assert viewer.post("/api/traffic/data", {"sensor_id": "T-1", "vehicle_count": 1, "average_speed": 1.0,
                                             "congestion_level": 1.0}).status_code == 403

    assert admin.patch(f"/api/users/{user_id}", {"active": False}).status_code == 200
    assert wait_until(lambda: not again.sio.connected, timeout=5), "a disabled user's socket is closed"
    assert viewer.get("/api/auth/profile").status_code == 401


def test_socketio_never_allows_credentials_for_any_origin(server):
    response = requests.get(server.url + "/socket.io/?EIO=4&transport=polling",
                            headers={"Origin": "https://evil.example"}, timeout=5)
    assert response.headers.get("Access-Control-Allow-Credentials") != "true"


@pytest.mark.parametrize("frame", ["451-[\"join_room\",{\"_placeholder\":true,\"num\":0}]",
                                   "45999999999-[\"join_room\",{}]", b"\x00\x01binary"])
def test_binary_packets_close_the_connection(server, frame):
    api = Api(server)
    ws = raw_socket(server, api.token)
    if isinstance(frame, bytes):
        ws.send_binary(frame)
    else:
        ws.send(frame)
    assert closed_by_server(ws), "binary packets (unbounded attachments) are refused"
    assert realtime_health(server, api)["client_faults"].get("binary_packet", 0) >= 1


def test_the_sweeper_never_waits_for_a_client_that_stopped_reading():
    """engine.io's disconnect waits for the send queue to drain; the sweeper must not."""
    from types import SimpleNamespace

    from src.events import sweeper

    closed = []

    class StuckSocket:
        def close(self, wait=True, abort=False):
            assert not wait, "waiting here would block the sweeper for ever"
            closed.append(abort)

    server = SimpleNamespace(eio=SimpleNamespace(sockets={"eio-1": StuckSocket()}),
                             manager=SimpleNamespace(rooms={}))
    assert sweeper.sweep_handshakes(server, timeout_s=10, now=0.0) == 0
    assert sweeper.sweep_handshakes(server, timeout_s=10, now=11.0) == 1
    assert closed == [True]


def test_oversized_messages_close_the_connection(server):
    api = Api(server)
    ws = raw_socket(server, api.token)
    ws.send('42["join_room",{"room":"' + "x" * 70_000 + '"}]')
    assert closed_by_server(ws), "past SOCKET_MAX_MESSAGE_BYTES (64 KiB) the connection is closed"
    small = raw_socket(server, api.token)
    small.send('421["join_room",{"room":"system"}]')
    assert any(small.recv().startswith("431") for _ in range(3))
