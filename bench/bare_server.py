"""The bare-stack baseline for the fan-out benchmark: Flask + Flask-SocketIO on eventlet, nothing else.

No auth, no database, no validation, no rate limits: what the libraries cost on their own,
so `bench/fanout.py` can report CityPulse as a ratio of it.

    python bench/bare_server.py --host 127.0.0.1 --port 5055

- Socket.IO event `join` (any payload) puts the client in room `traffic_monitoring`; ack {ok, room}.
- `POST /emit?n=N&size=S` emits N `traffic_update` events of about S bytes of JSON each to that
  room, each a fresh dict shaped like a stored traffic reading, and answers {"emitted": N}.
- `POST /reading` (for `bench/stream.py`): a JSON reading object, or a list of them (at most 1000),
  is emitted as it came, plus `id`, `module`, `source` and `received_at` (arrival, ms precision, as
  CityPulse stamps it), one `traffic_update` per reading to that room; answers 201 {"ingested": N}.
- `GET /health` answers {"status": "ok", "clients": <connected>}.
"""
import warnings

# The message starts with a newline, hence (?s).
warnings.filterwarnings("ignore", message="(?s).*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()

import argparse  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
from datetime import datetime, timezone  # noqa: E402

from flask import Flask, jsonify, request  # noqa: E402
from flask_socketio import SocketIO, join_room  # noqa: E402

ROOM = "traffic_monitoring"
EVENT = "traffic_update"
MAX_N = 100000

app = Flask(__name__)
socketio = SocketIO(app, async_mode="eventlet", cors_allowed_origins="*", logger=False, engineio_logger=False)
_ids = itertools.count(1)
_connected = set()


def _iso_now():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_payload(size):
    """A dict like a stored traffic reading, padded with `note` so its JSON is about `size` bytes."""
    now = _iso_now()
    seq = next(_ids)
    payload = {
        "id": f"{seq:024x}", "module": "traffic", "sensor_id": f"BENCH-{seq % 1000:03d}", "vehicle_count": 10,
        "average_speed": 30.0, "congestion_level": 20.0, "timestamp": now, "received_at": now, "source": "api",
    }
    # The same fields as CityPulse's traffic_update (235 bytes); larger sizes add a `note`.
    missing = size - len(json.dumps(payload, separators=(",", ":"))) - len(',"note":""')
    if missing >= 0:
        payload["note"] = "x" * missing
    return payload


@socketio.on("connect")
def on_connect(auth=None):
    _connected.add(request.sid)


@socketio.on("disconnect")
def on_disconnect(*args):
    _connected.discard(request.sid)


@socketio.on("join")
def on_join(data=None):
    join_room(ROOM)
    return {"ok": True, "room": ROOM}


@app.post("/emit")
def emit():
    try:
        n = int(request.args.get("n", 1))
        size = int(request.args.get("size", 235))
    except ValueError:
        return jsonify(error="n and size must be integers"), 400
    if not 0 < n <= MAX_N or not 0 <= size <= 1_000_000:
        return jsonify(error=f"need 0 < n <= {MAX_N} and 0 <= size <= 1000000"), 400
    for _ in range(n):
        socketio.emit(EVENT, make_payload(size), to=ROOM)
    return jsonify(emitted=n)


@app.post("/reading")
def reading():
    body = request.get_json(silent=True)
    items = body if isinstance(body, list) else [body]
    if not 0 < len(items) <= 1000 or not all(isinstance(item, dict) for item in items):
        return jsonify(error="send one reading object or a list of 1..1000"), 400
    received = _iso_now()
    for item in items:
        payload = dict(item, id=f"{next(_ids):024x}", module="traffic", source="api", received_at=received)
        payload.setdefault("timestamp", received)
        socketio.emit(EVENT, payload, to=ROOM)
    return jsonify(ingested=len(items)), 201


@app.get("/health")
def health():
    return jsonify(status="ok", clients=len(_connected))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "5055")))
    parser.add_argument("--max-size", type=int, default=int(os.environ.get("MAX_CONNECTIONS", "10000")),
                        help="concurrent connections eventlet accepts (its own default is 1024)")
    args = parser.parse_args()
    socketio.run(app, host=args.host, port=args.port, max_size=args.max_size, log_output=False)


if __name__ == "__main__":
    main()
