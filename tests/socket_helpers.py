"""A python-socketio Client that records every event, for live-server tests."""
import threading
import time

import requests
import socketio

from tests.conftest import bearer

ENVIRONMENT_OK = {"pm25": 5.0, "pm10": 10.0, "co2": 420.0, "noise_db": 50.0, "temperature_c": 18.0,
                  "humidity_pct": 55.0}
# PM2.5 of 300 is AQI 449 (critical); 40 is AQI 112 (low); 60 is AQI 153 (medium).
PM25_FOR = {"critical": 300.0, "high": 150.0, "medium": 60.0, "low": 40.0, "ok": 5.0}
CONGESTION_FOR = {"critical": 97.0, "high": 88.0, "medium": 75.0, "ok": 20.0}


class RecordingClient:
    """Connects over WebSocket and keeps (event, payload) pairs in arrival order."""

    def __init__(self, url, token=None, auth=None, query_token=None):
        self.url = url
        self.events = []
        self._cond = threading.Condition()
        self.sio = socketio.Client(reconnection=False, request_timeout=10)
        self.sio.on("*", self._record)
        self.connect_error = None
        self.sio.on("connect_error", self._on_connect_error)
        self.token = token
        self.auth = auth if auth is not None else ({"token": token} if token else None)
        self.query_token = query_token

    def _record(self, event, *args):
        with self._cond:
            self.events.append((event, args[0] if len(args) == 1 else list(args)))
            self._cond.notify_all()

    def _on_connect_error(self, data):
        self.connect_error = data

    def connect(self):
        url = self.url + (f"?token={self.query_token}" if self.query_token else "")
        self.sio.connect(url, auth=self.auth, transports=["websocket"], wait_timeout=10)
        self.wait_for("connected")
        return self

    def call(self, event, data=None, timeout=10):
        """Emit with an ack callback and return the ack."""
        return self.sio.call(event, data, timeout=timeout)

    def send(self, event, data=None):
        """Emit without an ack callback."""
        self.sio.emit(event, data)

    def of(self, event):
        with self._cond:
            return [payload for name, payload in self.events if name == event]

    def wait_for(self, event, count=1, timeout=10, where=None):
        """Wait until `count` matching events arrived; return them."""
        deadline = time.time() + timeout
        with self._cond:
            while True:
                found = [p for n, p in self.events if n == event and (where is None or where(p))]
                if len(found) >= count:
                    return found
                remaining = deadline - time.time()
                if remaining <= 0:
                    raise AssertionError(f"waited {timeout}s for {count} {event!r}; got {len(found)}: "
                                         f"{[n for n, _ in self.events]}")
                self._cond.wait(remaining)

    def settle(self, seconds=0.5):
        """Let in-flight events arrive (used only before asserting that something did NOT arrive)."""
        time.sleep(seconds)

    def disconnect(self):
        if self.sio.connected:
            self.sio.disconnect()


class Api:
    """A tiny REST client for a live server."""

    def __init__(self, server, email="admin@smartcity.com", password="admin123"):
        self.server = server
        self.tokens = server.login(email, password)
        self.headers = bearer(self.tokens["access_token"])

    @property
    def token(self):
        return self.tokens["access_token"]

    def post(self, path, json=None):
        return requests.post(self.server.url + path, json=json, headers=self.headers, timeout=10)

    def patch(self, path, json=None):
        return requests.patch(self.server.url + path, json=json, headers=self.headers, timeout=10)

    def get(self, path, **params):
        return requests.get(self.server.url + path, params=params, headers=self.headers, timeout=10)

    def environment(self, sensor_id, level="ok", **extra):
        body = dict(ENVIRONMENT_OK, sensor_id=sensor_id, pm25=PM25_FOR[level], **extra)
        response = self.post("/api/environment/data", body)
        assert response.status_code == 201, response.text
        return response.json()["items"][0]

    def traffic(self, sensor_id, level="ok"):
        body = {"sensor_id": sensor_id, "vehicle_count": 40, "average_speed": 25.0,
                "congestion_level": CONGESTION_FOR[level]}
        response = self.post("/api/traffic/data", body)
        assert response.status_code == 201, response.text
        return response.json()["items"][0]

    def register(self, email, role="viewer", password="s3cret-pass"):
        response = self.post("/api/auth/register", {"email": email, "password": password, "role": role})
        assert response.status_code == 201, response.text
        return Api(self.server, email, password)
