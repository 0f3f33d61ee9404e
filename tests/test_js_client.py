"""Smoke test: the official socket.io-client (npm, pinned in tests/js) against a live eventlet server."""
import pytest

from tests.socket_helpers import Api

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def server():
    from tests.conftest import LiveServer

    live = LiveServer({"RATELIMIT_ENABLED": "false"})
    yield live
    live.stop()


def test_official_client_connects_joins_receives_and_reconnects(server, js_client):
    api = Api(server)

    hello = js_client.connect(server.url, auth={"token": api.token})
    assert hello["ok"] and hello["connected"] and hello["sid"], hello
    connected = js_client.wait_for("connected")[0]["args"][0]
    assert connected["user"]["email"] == "admin@smartcity.com"

    ack = js_client.emit("join_room", {"room": "traffic_monitoring"})
    assert ack == {"ok": True, "room": "traffic_monitoring"}

    reading = api.traffic("JS-SMOKE-1")
    update = js_client.wait_for(lambda r: r.get("event") == "traffic_update"
                                and r["args"][0].get("sensor_id") == "JS-SMOKE-1")[0]
    assert update["args"][0]["id"] == reading["id"]

    # A transport close: the client reconnects by itself, with a new connect and a new `connected`.
    first_sid = js_client.state()["sid"]
    mark = js_client.mark()
    js_client.close_engine()
    # engine.close() reports "forced close" (a server-side drop would be "transport close")
    assert js_client.wait_for("disconnect", after=mark)[0]["reason"] == "forced close"
    js_client.wait_for("connect", after=mark, timeout=10)
    js_client.wait_for("connected", after=mark, timeout=10)
    assert len(js_client.lifecycle("connect")) == 2
    state = js_client.state()
    assert state["connected"] and state["sid"] != first_sid


def test_auth_provider_is_asked_on_every_connect(server, js_client):
    tokens = []

    def fresh_auth():
        tokens.append(server.login()["access_token"])
        return {"token": tokens[-1]}

    assert js_client.connect(server.url, auth_provider=fresh_auth)["connected"]
    js_client.wait_for("connected")  # the server's `connected` event comes just after the connect reply
    mark = js_client.mark()
    js_client.close_engine()
    js_client.wait_for("connected", after=mark)
    assert js_client.auth_requests == 2 and len(tokens) == 2
    assert js_client.emit("join_room", {"room": "traffic_monitoring"})["ok"] is True


def test_refused_connect_reports_the_error_data(server, js_client):
    reply = js_client.connect(server.url, auth={"token": "not-a-jwt"})
    assert reply["ok"] is False and reply["error"]["data"]["error"] == "token_invalid"
    assert js_client.lifecycle("connect_error")
