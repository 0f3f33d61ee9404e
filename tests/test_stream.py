"""Coalesced streams (`subscribe_stream`, `<module>_updates`) and per-client backpressure (`slow_consumer`)."""
import json
import socket
import time

import pytest
import requests
import socketio
import websocket

from src.realtime.stream import Streams
from tests.conftest import bearer
from tests.socket_helpers import Api

pytestmark = pytest.mark.live
SPEC = {"modules": ["traffic"], "interval_ms": 250, "sensors": [], "districts": []}


def reading(sensor, count, district="Harbor"):
    return {"id": f"{sensor}-{count}", "sensor_id": sensor, "vehicle_count": count, "district": district}


# The coalescer, with a fake clock

def test_a_frame_holds_exactly_the_latest_reading_per_changed_sensor_and_the_superseded_count():
    streams = Streams()
    group = streams.subscribe("sid-1", SPEC, now=0.0)
    assert streams.subscribe("sid-2", dict(SPEC), now=0.0) is group  # same filter, same group
    for count in (1, 2, 3):
        streams.offer("traffic", reading("T1", count))
    streams.offer("traffic", reading("T2", 7))
    streams.offer("energy", {"id": "e", "sensor_id": "G1", "load_mw": 1.0})  # not subscribed
    assert streams.due_frames(now=0.2) == []  # not due yet
    [(room, event, frame, members)] = streams.due_frames(now=0.25)
    assert (room, event, members) == (group.room, "traffic_updates", {"sid-1", "sid-2"})
    assert [(r["sensor_id"], r["vehicle_count"]) for r in frame["readings"]] == [("T1", 3), ("T2", 7)]
    assert frame["superseded"] == 2 and frame["interval_ms"] == 250
    assert streams.due_frames(now=0.5) == []  # nothing changed: nothing sent
    streams.offer("traffic", reading("T2", 8))
    [(_, _, frame, _)] = streams.due_frames(now=0.75)
    assert [r["vehicle_count"] for r in frame["readings"]] == [8] and frame["superseded"] == 0


def test_filters_by_sensor_and_district_and_a_group_ends_with_its_last_member():
    streams = Streams()
    streams.subscribe("a", dict(SPEC, sensors=["T1"]), now=0)
    streams.subscribe("b", dict(SPEC, districts=["Old Town"]), now=0)
    streams.offer("traffic", reading("T1", 1, district="Harbor"))
    streams.offer("traffic", reading("T9", 2, district="Old Town"))
    frames = {tuple(sorted(members)): [r["sensor_id"] for r in frame["readings"]]
              for _, _, frame, members in streams.due_frames(now=1)}
    assert frames == {("a",): ["T1"], ("b",): ["T9"]}
    streams.unsubscribe("a")
    streams.unsubscribe("b")
    assert streams.groups == {} and streams.of_sid == {}


def test_a_subscriber_that_fell_behind_gets_one_catch_up_frame_with_the_latest_values():
    streams = Streams()
    streams.subscribe("slow", SPEC, now=0)
    streams.offer("traffic", reading("T1", 1))
    [(_, _, frame, _)] = streams.due_frames(now=0.25)
    streams.fall_behind("slow", frame)
    streams.offer("traffic", reading("T1", 2))
    streams.offer("traffic", reading("T2", 5))
    [(_, _, frame, _)] = streams.due_frames(now=0.5)
    streams.fall_behind("slow", frame)
    [(event, catch_up)] = streams.catch_up("slow")
    assert event == "traffic_updates" and catch_up["catch_up"] is True
    assert [(r["sensor_id"], r["vehicle_count"]) for r in catch_up["readings"]] == [("T1", 2), ("T2", 5)]
    assert not streams.is_behind("slow")


# Live

@pytest.fixture(scope="module")
def server():
    from tests.conftest import LiveServer

    live = LiveServer({"RATELIMIT_ENABLED": "false", "SOCKET_MAX_BACKLOG": "150"})
    yield live
    live.stop()


def recording_client(server, token):
    events = []
    client = socketio.Client()
    client.on("*", lambda event, *args: events.append((event, args)))
    client.connect(server.url, auth={"token": token}, transports=["websocket"])
    return client, events


def wait_until(predicate, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def post_batch(api, items):
    response = api.post("/api/traffic/data", items)
    assert response.status_code == 201, response.text


def traffic(sensor, count, congestion=10.0):
    return {"sensor_id": sensor, "vehicle_count": count, "average_speed": 40.0, "congestion_level": congestion,
            "district": "Harbor"}


def test_frames_merge_readings_but_alerts_arrive_one_by_one(server):
    api = Api(server)
    client, events = recording_client(server, api.token)
    try:
        ack = client.call("subscribe_stream", {"modules": ["traffic"], "interval_ms": 200,
                                               "sensors": ["S-A", "S-B", "S-C"]})
        assert ack["ok"] is True and ack["stream"]["interval_ms"] == 200
        assert client.call("subscribe_alerts", {"severity_levels": ["critical"]})["ok"] is True
        # One batch: three readings of S-A, two of S-B, all critical congestion, and a sensor outside the filter.
        post_batch(api, [traffic("S-A", 1, 96), traffic("S-A", 2, 96), traffic("S-A", 3, 96),
                         traffic("S-B", 1, 97), traffic("S-B", 2, 97), traffic("S-X", 1)])
        assert wait_until(lambda: any(e == "traffic_updates" for e, _ in events))
        time.sleep(0.5)
        frames = [args[0] for e, args in events if e == "traffic_updates"]
        latest = {}
        for frame in frames:
            latest.update({r["sensor_id"]: r["vehicle_count"] for r in frame["readings"]})
        assert latest == {"S-A": 3, "S-B": 2} and sum(f["superseded"] for f in frames) == 3
        assert all(len(args) == 1 for e, args in events if e == "traffic_updates")
        alerts = [args[0] for e, args in events if e == "traffic_alert"]
        # One alert per sensor (later critical readings bump it), each delivered as its own event, never merged.
        assert sorted(a["sensor_id"] for a in alerts) == ["S-A", "S-B"]
        assert not any(e == "traffic_update" for e, _ in events)  # not in the per-reading rooms
        assert client.call("unsubscribe_stream")["stream"] is None
    finally:
        client.disconnect()


@pytest.mark.parametrize("payload,field", [
    ({"modules": ["traffic"], "interval_ms": 50}, "interval_ms"),
    ({"modules": ["traffic"], "interval_ms": 20000}, "interval_ms"),
    ({"modules": ["weather"]}, "modules"),
    ({"modules": []}, "modules"),
    ({}, "modules"),
    ({"modules": ["traffic"], "districts": ["Atlantis"]}, "districts"),
    ({"modules": ["traffic"], "sensors": [f"S-{i}" for i in range(501)]}, "sensors"),
    ({"modules": ["traffic"], "sensors": ["bad id!"]}, "sensors"),
    ({"modules": "traffic"}, "modules"),
])
def test_bad_stream_subscriptions_are_refused_with_the_field(server, payload, field):
    client, _ = recording_client(server, Api(server).token)
    try:
        refused = client.call("subscribe_stream", payload)
        assert refused["ok"] is False and refused["error"] == "validation_error" and field in refused["errors"]
        assert client.call("join_room", {"room": "system"})["ok"] is True  # still connected and served
    finally:
        client.disconnect()


@pytest.mark.parametrize("module,event,body", [
    ("environment", "environment_updates", {"sensor_id": "S-ENV", "pm25": 5.0, "pm10": 10.0, "co2": 420.0,
                                            "noise_db": 50.0, "temperature_c": 15.0, "humidity_pct": 50.0}),
    ("energy", "energy_updates", {"grid_id": "S-GRID", "load_mw": 10.0, "capacity_mw": 100.0}),
])
def test_every_reading_module_streams(server, module, event, body):
    api = Api(server)
    client, events = recording_client(server, api.token)
    try:
        client.call("subscribe_stream", {"modules": [module], "interval_ms": 100})
        assert api.post(f"/api/{module}/data", body).status_code == 201
        assert wait_until(lambda: any(e == event for e, _ in events))
    finally:
        client.disconnect()


def test_waste_updates_stream_bin_levels(server):
    api = Api(server)
    assert api.post("/api/waste/bins", {"bin_id": "S-BIN", "district": "Harbor", "capacity_liters": 240,
                                        "waste_type": "general",
                                        "location": {"type": "Point", "coordinates": [-73.98, 40.75]}}
                    ).status_code in (201, 409)
    client, events = recording_client(server, api.token)
    try:
        client.call("subscribe_stream", {"modules": ["waste"], "interval_ms": 100})
        assert api.post("/api/waste/data", {"bin_id": "S-BIN", "fill_level_pct": 40.0}).status_code == 201
        assert wait_until(lambda: any(e == "waste_updates" for e, _ in events))
    finally:
        client.disconnect()


def stalled_client(server, token, room="traffic_monitoring"):
    """A WebSocket Socket.IO client that joins a room and then never reads (a tiny receive buffer)."""
    ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket",
                                     sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
    ws.recv()  # engine.io open
    ws.send("40" + json.dumps({"token": token}))
    while not ws.recv().startswith("40"):
        pass
    ws.send("421" + json.dumps(["join_room", {"room": room}]))
    return ws


def test_a_client_that_never_reads_is_bounded_told_and_dropped_while_others_keep_up(server):
    api = Api(server)
    stalled = stalled_client(server, api.token)
    normal, events = recording_client(server, api.token)
    try:
        normal.call("join_room", {"room": "traffic_monitoring"})
        sent = 0
        latencies = []

        def realtime():
            return requests.get(server.url + "/api/health", headers=bearer(api.token),
                                timeout=5).json()["services"]["realtime"]

        for round_ in range(12):  # the stalled connection absorbs ~128 KB of kernel buffer, then its queue fills
            batch = [traffic(f"S-SLOW-{i}", round_ * 1000 + i) for i in range(250)]
            started = time.time()
            post_batch(api, batch)
            sent += len(batch)
            assert wait_until(lambda: sum(e == "traffic_update" for e, _ in events) >= sent, timeout=20)
            latencies.append(time.time() - started)
            if realtime()["slow_consumers_total"]:
                break
        assert realtime()["slow_consumers_total"] == 1 and realtime()["client_faults"].get("slow_consumer") == 1
        # Reading now, within the grace period, the stalled client finds why it is being dropped.
        stalled.settimeout(5)
        told = None
        while told is None:
            message = stalled.recv()
            if message.startswith('42["slow_consumer"'):
                told = json.loads(message[2:])[1]
        assert told["reason"] == "backlog" and told["limit"] == 150
        # The stalled connection is closed after the grace period.
        assert wait_until(lambda: requests.get(server.url + "/api/health", headers=bearer(api.token), timeout=5)
                          .json()["services"]["realtime"]["connected_clients"] == 1, timeout=10)
        assert max(latencies) < 5, latencies
    finally:
        normal.disconnect()
        stalled.close()


def http_stats(server, token):
    return requests.get(server.url + "/api/health", headers=bearer(token), timeout=5).json()["services"]["http"]


def test_a_client_whose_buffer_fills_mid_frame_gets_every_event_whole_and_in_order(server):
    """Events are written straight to idle connections; what the kernel does not take (the end of
    a frame, then whole packets) waits in the connection's queue, in order, until it reads again."""
    api = Api(server)
    stalled = stalled_client(server, api.token)
    try:
        before = http_stats(server, api.token)
        sent = 0
        while http_stats(server, api.token)["queued_writes"] - before["queued_writes"] < 40:
            post_batch(api, [traffic(f"S-FULL-{n % 7}", n) for n in range(sent, sent + 20)])
            sent += 20
            assert sent < 2000, "the kernel never filled"
        after = http_stats(server, api.token)
        assert after["direct_writes"] - before["direct_writes"] >= sent * 0.5  # most went straight out
        stalled.settimeout(5)
        counts = []
        while len(counts) < sent:
            message = stalled.recv()  # a frame cut in two would not decode
            if message.startswith('42["traffic_update"'):
                counts.append(json.loads(message[2:])[1]["vehicle_count"])
        assert counts == list(range(sent))
    finally:
        stalled.close()


def test_a_slow_consumer_that_never_reads_again_loses_its_tcp_connection(server):
    """Its writer is blocked on a full send buffer; the connection and its MAX_CONNECTIONS slot are freed anyway."""
    api = Api(server)
    def slow_consumers():
        health = requests.get(server.url + "/api/health", headers=bearer(api.token), timeout=5).json()
        return health["services"]["realtime"]["client_faults"].get("slow_consumer", 0)

    baseline, told_before = http_stats(server, api.token)["open_connections"], slow_consumers()
    stalled = stalled_client(server, api.token)
    try:
        told_at = None
        for round_ in range(12):
            post_batch(api, [traffic(f"S-GONE-{i}", round_ * 1000 + i) for i in range(250)])
            time.sleep(0.3)
            if slow_consumers() > told_before:
                told_at = time.time()
                break
        assert told_at, "never told slow_consumer"
        assert wait_until(lambda: http_stats(server, api.token)["open_connections"] <= baseline, timeout=8)
    finally:
        stalled.close()


def test_a_quiet_connection_stays_open_past_the_ping_period(live_server):
    """Pings and events are written straight out, so a connection's queue may stay empty for longer
    than engine.io's ping interval + timeout; that alone must not close it."""
    quick = live_server(RATELIMIT_ENABLED="false", SOCKET_PING_INTERVAL_S="1", SOCKET_PING_TIMEOUT_S="1")
    api = Api(quick)
    client, events = recording_client(quick, api.token)
    disconnects = []
    client.on("disconnect", lambda *args: disconnects.append(args))
    try:
        assert client.call("join_room", {"room": "traffic_monitoring"})["ok"] is True
        time.sleep(5)  # 2.5 ping periods, nothing queued
        post_batch(api, [traffic("S-QUIET", 1)])
        assert wait_until(lambda: any(e == "traffic_update" for e, _ in events), timeout=5)
        assert disconnects == [] and client.connected
    finally:
        client.disconnect()


def test_the_stream_works_across_two_processes_with_redis(live_server, redis_db):
    a = live_server(RATELIMIT_ENABLED="false", REDIS_URL=redis_db)
    b = live_server(RATELIMIT_ENABLED="false", REDIS_URL=redis_db)
    client, events = recording_client(a, Api(a).token)
    try:
        client.call("subscribe_stream", {"modules": ["traffic"], "interval_ms": 150})
        api_b = Api(b)
        post_batch(api_b, [traffic("S-RED", n) for n in range(1, 6)])
        assert wait_until(lambda: any(e == "traffic_updates" for e, _ in events))
        time.sleep(0.4)
        values = [r["vehicle_count"] for e, args in events if e == "traffic_updates" for r in args[0]["readings"]]
        assert values[-1] == 5 and len(values) < 5  # merged on process A
    finally:
        client.disconnect()


def test_a_recovered_stream_gets_the_latest_state_not_every_frame(server, js_client):
    api = Api(server)
    js_client.connect(server.url, auth={"token": api.token})
    js_client.wait_for("connected")
    assert js_client.emit("subscribe_stream", {"modules": ["traffic"], "interval_ms": 100,
                                               "sensors": ["S-REC"]})["ok"] is True
    mark = js_client.mark()
    js_client.close_engine()
    js_client.wait_for("disconnect", after=mark)
    post_batch(api, [traffic("S-REC", n) for n in range(1, 11)])
    hello = js_client.wait_for("connected", after=mark)[0]["args"][0]
    assert hello["recovered"] is True
    frame = js_client.wait_for("traffic_updates", after=mark)[0]["args"][0]
    assert [r["vehicle_count"] for r in frame["readings"]] == [10]


def test_repeated_filter_values_make_one_group_and_intervals_must_be_integers(server):
    client, _ = recording_client(server, Api(server).token)
    other, _ = recording_client(server, Api(server).token)
    try:
        first = client.call("subscribe_stream", {"modules": ["traffic", "traffic"], "interval_ms": 300})
        assert first["stream"]["modules"] == ["traffic"]
        assert other.call("subscribe_stream", {"modules": ["traffic"], "interval_ms": 300}
                          )["subscribers_with_this_filter"] == 2
        for interval in (250.5, "250"):
            refused = client.call("subscribe_stream", {"modules": ["traffic"], "interval_ms": interval})
            assert refused["ok"] is False and "interval_ms" in refused["errors"]
    finally:
        client.disconnect()
        other.disconnect()


def test_a_reading_that_arrives_late_never_replaces_a_newer_one_in_a_frame():
    streams = Streams()
    streams.subscribe("sid", SPEC, now=0)
    streams.offer("traffic", dict(reading("T1", 2), timestamp="2026-12-01T10:00:02.000Z"))
    streams.offer("traffic", dict(reading("T1", 1), timestamp="2026-12-01T10:00:01.000Z"))  # a slower request
    [(_, _, frame, _)] = streams.due_frames(now=1)
    assert [r["vehicle_count"] for r in frame["readings"]] == [2] and frame["superseded"] == 1
    [(_, catch_up)] = [f for f in streams.catch_up("sid", since=0)]
    assert [r["vehicle_count"] for r in catch_up["readings"]] == [2]
