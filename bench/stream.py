"""Steady-state stream benchmark (issue 12): evenly paced readings, 1000 subscribers per mode.

Readings arrive evenly paced at fixed rates, one per POST (`single`) and, separately, as gateway
batches of 20 (`batch20`), across `--sensors` sensor ids (round-robin). Every reading carries a
`vehicle_count` that grows by one per reading sent to that server (sensor = vehicle_count mod
sensors), so the final value of every sensor in a phase is known, and a `timestamp` that is the
time it was due to be sent. Modes, each on its own server process, all up at once:

- `bare`: `bench/bare_server.py` (Flask-SocketIO on eventlet, nothing else); `POST /reading` emits
  one `traffic_update` per reading to the room, stamped `received_at` on arrival;
- `per-reading`: CityPulse (`python run.py`, development profile, embedded database, no scheduler,
  no simulation, rate limits off), subscribers `join_room {"room": "traffic_monitoring"}` and get
  one `traffic_update` per reading (`POST /api/traffic/data` with a Bearer token);
- `coalesced`: the same server setup, subscribers `subscribe_stream {"modules": ["traffic"],
  "interval_ms": 250}` and get `traffic_updates` frames;
- `ingest-only`: the same server setup with no subscribers at all: how fast ingest alone goes.

For every shape and rate, the modes still standing run one phase each (the order rotates from
rate to rate, so a noisy neighbour hits them alike): `--seconds` of paced POSTs (open loop: a POST
is sent when it is due, whatever the answers; a phase is cut short when more than `--max-lag`
seconds of POSTs are outstanding), then up to `--drain` seconds for every subscriber to have the
final value of every sensor. A phase is `ok` when it is sustained (accepted >= 95% of the offered rate), lossless (every
final value at every subscriber) and its p99 is at most 500 ms. A mode that is overloaded at a
rate (not sustained, a final value missing, or p99 over 2.5 s) runs no higher rate of that shape; a mode whose server is left behind (not
drained, subscribers disconnected) is stopped at once, so it does not slow the others, and
started afresh for the next shape.

Per phase: readings/s sustained (accepted / the longer of the schedule and the last answer),
deliveries/s (events received by all subscribers, a frame being one delivery; values/s counts the
readings inside frames), end-to-end latency p50/p99 from the reading's `received_at` (the server's
clock at arrival, the same host clock) to the subscriber's receipt, per reading inside a frame,
and also from the time it was due to be sent (`from send`: it includes waiting in the server's
accept queue, which `received_at` does not see); the server's CPU per reading (/proc/<pid>/stat
over the phase, until the last needed delivery); loss (subscriber x sensor pairs whose final value
never arrived; for per-reading modes also subscribers short of events); the server's peak RSS.

Then two runs on fresh CityPulse servers:

- slow consumer: `--subscribers - 1` per-reading subscribers at `--slow-rate` single POSTs (default
  10/s, about what per-reading mode holds with 1000 subscribers here) for `--slow-seconds`, then again
  with one more client that connects (SO_RCVBUF 4 KB), joins and never reads again (it only sends an
  Engine.IO pong every 5 s, so engine.io's 45 s ping timeout does not end it first), until 8 s after
  the server logged `slow_consumer` (at most `--slow-max-seconds`): the others' p99 with and without
  it, when it was told (the server log, health `slow_consumers_total` with a token), whether its TCP
  connection was closed (the server side of it in /proc/net/tcp), the server's RSS;
- memory: `--memory-connections` idle subscribers (joined `traffic_monitoring`) connected in steps
  from `--memory-procs` processes; server RSS growth per connection (the soft `ulimit -n` is raised
  to the hard limit; the server's `MAX_CONNECTIONS` is set to the target + 100).

    .venv/bin/python bench/stream.py                      # everything, about 9 minutes here (10,000 connections)
    .venv/bin/python bench/stream.py --quick              # about 3.5 minutes: fewer rates/subscribers
    .venv/bin/python bench/stream.py --only sweep --shapes single --rates 10,50,100 -k 200
    .venv/bin/python bench/stream.py --only slow --slow-rate 20
    .venv/bin/python bench/stream.py --only memory --memory-connections 5000

Subscribers are raw Socket.IO-over-WebSocket clients (asyncio + aiohttp, like bench/fanout.py) in
separate processes; each distinct event text is parsed once per process and every receipt is
stamped with time.time() before anything else is done with it.
"""
import argparse
import asyncio
import base64
import json
import math
import multiprocessing
import os
import resource
import signal
import socket
import struct
import sys
import time
from collections import Counter
from datetime import datetime, timezone

import requests

BENCH = os.path.dirname(os.path.abspath(__file__))
if BENCH not in sys.path:
    sys.path.insert(0, BENCH)

import fanout  # noqa: E402  (free_port, login, machine_busy_seconds, raise_fd_limit, _die_with_parent, _recv)

ROOT = fanout.ROOT
ROOM = "traffic_monitoring"
MODES = ("bare", "per-reading", "coalesced", "ingest-only")
SHAPES = {"single": 1, "batch20": 20}
P99_GOAL_MS = 500.0
OVERLOAD_P99_MS = 2500.0  # a mode whose p99 passes this (or that loses or is not sustained) runs no higher rate
SUSTAINED = 0.95  # a phase is sustained when it accepted at least this share of the offered rate

DEFAULTS = {
    "subscribers": 1000, "rates": "5,10,20,50,100,200,500,1000", "shapes": "single,batch20",
    "modes": ",".join(MODES), "seconds": 4.0, "drain": 8.0, "max_lag": 1.0, "sensors": 200, "interval_ms": 250,
    "procs": 1, "connect_concurrency": 50, "connect_timeout": 180.0, "recovery_s": None,
    "slow_rate": 10.0, "slow_seconds": 20.0, "slow_max_seconds": 120.0, "slow_rcvbuf": 4096, "slow_pongs": True,
    "memory_connections": 10000, "memory_procs": 4, "memory_idle_seconds": 4.0,
    "only": "sweep,slow,memory", "retry_busy": 50.0, "max_retries": 8,
}
QUICK = {"subscribers": 300, "rates": "10,50,150,500", "seconds": 3.0, "slow_rate": 30.0, "slow_seconds": 15.0,
         "slow_max_seconds": 60.0, "memory_connections": 3000}


def iso_ms(epoch):
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch_ms(iso):
    """`2026-11-22T22:55:47.500Z` -> integer milliseconds since the epoch."""
    return round(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


# --------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------

class Server(fanout.Server):
    """`bench/bare_server.py` (kind "bare") or `run.py` (kind "citypulse") on a free 127.0.0.1 port."""

    def __init__(self, kind, connections, extra_env=None, start_timeout=90.0):
        self.kind = kind
        self.port = fanout.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k not in fanout.STRIPPED_ENV}
        self.max_connections = max(10000, connections + 100)
        if kind == "bare":
            cmd = [sys.executable, os.path.join(BENCH, "bare_server.py"), "--host", "127.0.0.1",
                   "--port", str(self.port), "--max-size", str(self.max_connections)]
            self.health_url = self.url + "/health"
        else:
            cmd = [sys.executable, os.path.join(ROOT, "run.py")]
            env.update({
                "APP_ENV": "development", "HOST": "127.0.0.1", "PORT": str(self.port),
                "SCHEDULER_ENABLED": "false", "SIMULATION_ENABLED": "false", "RATELIMIT_ENABLED": "false",
                "LOG_LEVEL": "WARNING", "BCRYPT_ROUNDS": "4", "MAX_CONNECTIONS": str(self.max_connections),
                "SOCKETIO_ASYNC_MODE": "eventlet",
                # Every subscriber is the same user: lift the per-user connection limit (a rate limit).
                "SOCKET_CONNECTS_BURST": str(max(100000, 2 * connections)),
            })
            env.update(extra_env or {})
            self.health_url = self.url + "/api/health"
        self.mode, self.health = kind, self.health_url  # what fanout.Server's methods read
        self._launch(cmd, env, f"citypulse-stream-{kind}-", start_timeout)

    def open_fds(self):
        try:
            return len(os.listdir(f"/proc/{self.proc.pid}/fd"))
        except OSError:
            return None

    def report(self, token):
        """/api/health with a token (CityPulse), or None."""
        try:
            response = requests.get(self.health_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
            return response.json() if response.status_code == 200 else None
        except (requests.RequestException, ValueError):
            return None

    def alive(self):
        return self.proc.poll() is None



def find_key(tree, key):
    """The first value of `key` anywhere in a nested dict (the health report)."""
    if isinstance(tree, dict):
        if key in tree:
            return tree[key]
        for value in tree.values():
            found = find_key(value, key)
            if found is not None:
                return found
    return None


# --------------------------------------------------------------------------------------------
# Subscribers (run inside subscriber processes)
# --------------------------------------------------------------------------------------------

READING_PREFIX = '42["traffic_update",'
FRAME_PREFIX = '42["traffic_updates",'
SLOW_PREFIX = '42["slow_consumer"'


class Sub:
    """One raw Socket.IO v5 / Engine.IO v4 client over an aiohttp WebSocket."""

    __slots__ = ("rec", "session", "auth", "join", "ws_url", "ws", "reader", "count", "best", "frames",
                 "missing", "complete", "closed", "slow")

    def __init__(self, rec, session, url, auth, join):
        self.rec, self.session, self.auth, self.join = rec, session, auth, join
        self.ws_url = url.replace("http://", "ws://", 1) + "/socket.io/?EIO=4&transport=websocket"
        self.ws = self.reader = None
        self.count, self.best, self.frames = 0, [0] * rec.sensors, []
        self.missing, self.complete, self.closed, self.slow = None, False, False, 0

    async def connect(self, timeout):
        self.ws = await fanout.handshake(self.session, self.ws_url, self.auth, self.join, timeout)
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self):
        import aiohttp

        ws, rec, now = self.ws, self.rec, time.time
        try:
            while True:
                msg = await ws.receive()
                if msg.type == aiohttp.WSMsgType.TEXT:
                    rec.on_message(self, msg.data, now())
                elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED,
                                  aiohttp.WSMsgType.ERROR):
                    return
        finally:
            rec.on_closed(self)

    async def close(self):
        if self.reader is not None:
            self.reader.cancel()
        if self.ws is not None and not self.ws.closed:
            try:
                await asyncio.wait_for(self.ws.close(), 5)
            except (asyncio.TimeoutError, Exception):
                pass


class Frame:
    __slots__ = ("readings", "max", "catch_up", "superseded", "receipts", "covers")

    def __init__(self, readings, catch_up, superseded):
        self.readings = readings  # [(sensor, vehicle_count, received_ms, sent_ms)]
        self.max = {}
        for s, vc, _, _ in readings:
            if vc > self.max.get(s, 0):
                self.max[s] = vc
        self.catch_up, self.superseded = catch_up, superseded
        self.receipts = []
        self.covers = frozenset()


class Recorder:
    """What one subscriber process measures in one phase."""

    def __init__(self, sensors):
        self.sensors = sensors
        self.clients = []
        self.done = asyncio.Event()
        self.reset()

    def reset(self):
        self.cache, self.frames, self.frame_of = {}, [], {}
        self.hist, self.hist_sent = Counter(), Counter()
        self.deliveries = self.values = self.slow_events = 0
        self.finals = None
        self.expected = None
        self.remaining = self.completed_clients = 0
        self.done_at = self.last_rx = None
        self.done.clear()
        for client in self.clients:
            client.count, client.frames, client.missing, client.complete = 0, [], None, False

    # -- receipts --

    def on_message(self, client, data, now):
        self.last_rx = now
        if data.startswith(READING_PREFIX):
            parsed = self.cache.get(data)
            if parsed is None:
                parsed = self.cache[data] = self._parse_reading(data)
            s, vc, received_ms, sent_ms = parsed
            client.count += 1
            self.deliveries += 1
            self.values += 1
            now_ms = int(now * 1000)
            self.hist[now_ms - received_ms] += 1
            self.hist_sent[now_ms - sent_ms] += 1
            if vc > client.best[s]:
                client.best[s] = vc
                if client.missing and s in client.missing and vc >= self.finals[s]:
                    client.missing.discard(s)
            if self.finals is not None and not client.complete:
                self._check(client, now)
        elif data.startswith(FRAME_PREFIX):
            head = data[:400]
            key = data if '"catch_up":true' in head else (len(data), head)
            index = self.frame_of.get(key)
            if index is None:
                index = self.frame_of[key] = self._add_frame(data)
            frame = self.frames[index]
            frame.receipts.append(now)
            client.frames.append(index)
            self.deliveries += 1
            self.values += len(frame.readings)
            if client.missing and frame.covers:
                client.missing -= frame.covers
            if self.finals is not None and not client.complete:
                self._check(client, now)
        elif data == "2":
            asyncio.get_running_loop().create_task(client.ws.send_str("3"))
        elif data.startswith(SLOW_PREFIX):
            client.slow += 1
            self.slow_events += 1

    def _parse_reading(self, data):
        payload = json.loads(data[2:])[1]
        vc = int(payload["vehicle_count"])
        return vc % self.sensors, vc, epoch_ms(payload["received_at"]), epoch_ms(payload["timestamp"])

    def _add_frame(self, data):
        body = json.loads(data[2:])[1]
        readings = []
        for payload in body.get("readings", ()):
            vc = int(payload["vehicle_count"])
            readings.append((vc % self.sensors, vc, epoch_ms(payload["received_at"]), epoch_ms(payload["timestamp"])))
        frame = Frame(readings, bool(body.get("catch_up")), int(body.get("superseded") or 0))
        if self.finals is not None:
            frame.covers = self._covers(frame)
        self.frames.append(frame)
        return len(self.frames) - 1

    def _covers(self, frame):
        finals = self.finals
        return frozenset(s for s, vc in frame.max.items() if s in finals and vc >= finals[s])

    def on_closed(self, client):
        client.closed = True
        if self.finals is not None and not client.complete:
            client.complete = True  # it will never complete: stop waiting for it (its loss is counted)
            self._finish_one(time.time(), counted=False)

    # -- the end of a phase --

    def expect(self, finals, expected):
        """The final value of every sensor in this phase (and, per-reading, the number of events)."""
        self.finals, self.expected = finals, expected
        for frame in self.frames:
            frame.covers = self._covers(frame)
        covered_by = {}
        self.remaining = len(self.clients)
        self.completed_clients = 0
        for client in self.clients:
            if client.frames:
                key = tuple(client.frames)
                covered = covered_by.get(key)
                if covered is None:
                    covered = covered_by[key] = frozenset().union(*(self.frames[i].covers for i in set(key)))
                client.missing = {s for s in finals if s not in covered and client.best[s] < finals[s]}
            else:
                client.missing = {s for s, vc in finals.items() if client.best[s] < vc}
            if client.closed:
                client.complete = True
                self._finish_one(None, counted=False)
            else:
                self._check(client, None)
        if self.remaining == 0:
            self.done.set()

    def _check(self, client, now):
        if not client.missing and (self.expected is None or client.count >= self.expected):
            client.complete = True
            self._finish_one(now, counted=True)

    def _finish_one(self, now, counted):
        if counted:
            self.completed_clients += 1
            if now is not None:
                self.done_at = now if self.done_at is None else max(self.done_at, now)
        self.remaining -= 1
        if self.remaining == 0:
            self.done.set()

    def frame_histograms(self):
        """Latency of every reading inside every frame received: receipt time - reading time, in ms."""
        for frame in self.frames:
            if not frame.receipts or not frame.readings:
                continue
            at = Counter(int(t * 1000) for t in frame.receipts)
            received = Counter(r[2] for r in frame.readings)
            sent = Counter(r[3] for r in frame.readings)
            for t, tn in at.items():
                for r, rn in received.items():
                    self.hist[t - r] += tn * rn
                for r, rn in sent.items():
                    self.hist_sent[t - r] += tn * rn

    def summary(self, cpu):
        if self.frames:
            self.frame_histograms()
        clients = self.clients
        missing_pairs = sum(len(c.missing or ()) for c in clients)
        distinct = [f for f in self.frames if not f.catch_up]
        return {
            "clients": len(clients), "completed": self.completed_clients, "done_at": self.done_at,
            "last_rx": self.last_rx, "deliveries": self.deliveries, "values": self.values,
            "hist": dict(self.hist), "hist_sent": dict(self.hist_sent), "missing_pairs": missing_pairs,
            "pairs": len(clients) * len(self.finals or ()),
            "short": sum(1 for c in clients if self.expected is not None and c.count < self.expected),
            "extra": sum(1 for c in clients if self.expected is not None and c.count > self.expected),
            "closed": sum(1 for c in clients if c.closed), "slow_events": self.slow_events,
            "frames_distinct": len(distinct), "catch_up_frames": sum(1 for f in self.frames if f.catch_up),
            "catch_up_receipts": sum(len(f.receipts) for f in self.frames if f.catch_up),
            "frame_readings": sum(len(f.readings) for f in distinct),
            "frame_superseded": sum(f.superseded for f in distinct), "cpu": cpu,
        }


def _cpu_now():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def subscriber_main(conn, cfg):
    """Entry point of one subscriber process; talks to the driver over `conn`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        asyncio.run(_subscriber(conn, cfg))
    except Exception as exc:  # report, never hang the driver
        try:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
        except Exception:
            pass
    finally:
        conn.close()


async def _subscriber(conn, cfg):
    """("grow", n) -> connect n more, reply ("ready", connected, errors, seconds); ("arm",) -> reset,
    reply ("armed",); ("expect", finals, expected, deadline_s) -> wait until every client has every
    final value (or the deadline), reply ("done", summary); ("stop",) -> disconnect and exit."""
    import aiohttp

    receive, watch = fanout.driver_link(conn, cfg["connect_timeout"] + 600)
    rec = Recorder(cfg["sensors"])
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
    gate = asyncio.Semaphore(cfg["connect_concurrency"])
    join = tuple(cfg["join"]) if cfg["join"] else None

    async def connect(client):
        last = None
        for attempt in range(4):
            async with gate:
                try:
                    await client.connect(timeout=30)
                    return None
                except Exception as exc:  # retried: a full accept backlog resets connections
                    last = f"{type(exc).__name__}: {exc}"
                    await client.close()
            await asyncio.sleep(0.2 * (attempt + 1))
        return last

    cpu0 = _cpu_now()
    try:
        while True:
            message = await receive()
            kind = message[0]
            if kind == "grow":
                fresh = [Sub(rec, session, cfg["url"], cfg["auth"], join) for _ in range(message[1])]
                t0 = time.monotonic()
                errors = await asyncio.gather(*(connect(c) for c in fresh))
                good = [c for c, e in zip(fresh, errors) if not e]
                rec.clients.extend(good)
                failed = [e for e in errors if e]
                conn.send(("ready", len(good), failed[:3], round(time.monotonic() - t0, 2), len(failed)))
            elif kind == "arm":
                rec.reset()
                cpu0 = _cpu_now()
                conn.send(("armed",))
            elif kind == "expect":
                _, finals, expected, deadline = message
                rec.expect(dict(finals), expected)
                try:
                    await asyncio.wait_for(rec.done.wait(), deadline)
                except asyncio.TimeoutError:
                    pass
                cpu = _cpu_now() - cpu0
                conn.send(("done", rec.summary(cpu)))
            elif kind == "counts":
                conn.send(("counts", sum(1 for c in rec.clients if not c.closed), rec.slow_events))
            else:  # "stop"
                return
    finally:
        try:
            await asyncio.wait_for(asyncio.gather(*(c.close() for c in rec.clients), return_exceptions=True), 60)
        except asyncio.TimeoutError:
            pass
        await session.close()
        watch.cancel()


# --------------------------------------------------------------------------------------------
# The driver: evenly paced POSTs
# --------------------------------------------------------------------------------------------

async def _drive(target, batch, rate, seconds, max_lag, sampler, stop_when=None, stop_after=3.0):
    """POST `rate` readings/s for `seconds`, `batch` per request, each when it is due (open loop);
    with `stop_when`, `stop_after` seconds after it first returns true (polled before every POST).

    Returns {accepted: [vehicle_count...], posts, failed, t0, t_last, scheduled_s, aborted, rss_max}."""
    import aiohttp

    n_posts = max(1, round(rate * seconds / batch))
    interval = batch / rate
    limit = max(8, math.ceil(max_lag / interval))  # more outstanding than max_lag's worth: cut short
    connector = aiohttp.TCPConnector(limit=64, force_close=False)
    headers = {"Authorization": f"Bearer {target.token}"} if target.token else {}
    accepted, failures, state = [], [], {"outstanding": 0, "t_last": None}
    sensors = target.opts["sensors"]

    async with aiohttp.ClientSession(connector=connector, headers=headers) as http:
        async def post(first, due):
            readings = [{"sensor_id": f"BENCH-{(first + i) % sensors:04d}", "vehicle_count": first + i,
                         "average_speed": 30.0, "congestion_level": 20.0, "timestamp": iso_ms(due)}
                        for i in range(batch)]
            body = readings[0] if batch == 1 else readings
            try:
                async with http.post(target.ingest_url, json=body, timeout=aiohttp.ClientTimeout(total=120)) as r:
                    answer = await r.json(content_type=None)
                    ok = r.status == 201 and answer.get("ingested", len(readings) if batch > 1 else 1) == batch
                    if ok:
                        accepted.extend(range(first, first + batch))
                    else:
                        failures.append(f"{r.status} {str(answer)[:200]}")
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
            finally:
                state["outstanding"] -= 1
                state["t_last"] = time.time()

        sampling = asyncio.get_running_loop().create_task(sampler())
        tasks, aborted, stopping = [], False, None
        t0 = time.time()
        for p in range(n_posts):
            due = t0 + p * interval
            delay = due - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if state["outstanding"] >= limit:
                aborted = True
                break
            if stop_when is not None:
                if stopping is None and stop_when():
                    stopping = time.time() + stop_after
                if stopping is not None and time.time() >= stopping:
                    break
            state["outstanding"] += 1
            first = target.seq
            target.seq += batch
            tasks.append(asyncio.get_running_loop().create_task(post(first, due)))
        await asyncio.gather(*tasks)
        sampling.cancel()
    return {"accepted": accepted, "posts": len(tasks), "failed": failures, "t0": t0,
            "t_last": state["t_last"] or time.time(), "scheduled_s": len(tasks) * interval, "aborted": aborted}


def percentile(hist, q):
    total = sum(hist.values())
    if not total:
        return None
    rank = q * (total - 1)
    seen = 0
    for value in sorted(hist):
        seen += hist[value]
        if seen > rank:
            return max(0, value)
    return max(hist)


# --------------------------------------------------------------------------------------------
# Targets: a server, its subscriber processes, its phases
# --------------------------------------------------------------------------------------------

class Target:
    def __init__(self, mode, opts, log, subscribers=None, extra_env=None):
        self.mode, self.opts, self.log = mode, opts, log
        self.k = opts["subscribers"] if subscribers is None else subscribers
        if mode == "ingest-only":
            self.k = 0
        self.extra_env = dict(extra_env or {})
        if opts.get("recovery_s") is not None:
            self.extra_env.setdefault("SESSION_RECOVERY_S", str(opts["recovery_s"]))
        self.server, self.workers, self.conns = None, [], []
        self.token, self.seq, self.broken = None, 1, False

    @property
    def kind(self):
        return "bare" if self.mode == "bare" else "citypulse"

    @property
    def join(self):
        if self.mode == "bare":
            return ("join", {"room": ROOM})
        if self.mode == "coalesced":
            return ("subscribe_stream", {"modules": ["traffic"], "interval_ms": self.opts["interval_ms"]})
        return ("join_room", {"room": ROOM})

    def start(self, procs=None, connect=True):
        self.log(f"[{self.mode}] starting server ...")
        self.server = Server(self.kind, self.k, self.extra_env)
        self.token = fanout.login(self.server.url) if self.kind == "citypulse" else None
        self.ingest_url = self.server.url + ("/reading" if self.mode == "bare" else "/api/traffic/data")
        self.seq, self.broken = 1, False
        self.workers, self.conns = [], []
        if self.k and connect:
            self.spawn(procs or self.opts["procs"], self.join)
            self.grow(self.k)

    def spawn(self, procs, join):
        ctx = multiprocessing.get_context("fork")
        auth = {"token": self.token} if self.token else None
        for _ in range(max(1, procs)):
            cfg = {"url": self.server.url, "auth": auth, "join": join, "sensors": self.opts["sensors"],
                   "connect_concurrency": max(5, self.opts["connect_concurrency"] // max(1, procs)),
                   "connect_timeout": self.opts["connect_timeout"]}
            parent_end, child_end = ctx.Pipe()
            worker = ctx.Process(target=subscriber_main, args=(child_end, cfg), daemon=True)
            worker.start()
            child_end.close()
            self.workers.append(worker)
            self.conns.append(parent_end)

    def grow(self, n):
        """Connect n more subscribers, spread over the processes; returns (connected, seconds)."""
        t0 = time.monotonic()
        shares = fanout.split(n, len(self.conns))
        for conn, share in zip(self.conns, shares):
            conn.send(("grow", share))
        ready = fanout._recv(self.conns, self.opts["connect_timeout"] + 60, "their connections")
        connected = sum(r[1] for r in ready)
        if connected != n:
            errors = [e for r in ready for e in r[2]]
            raise RuntimeError(f"{self.mode}: only {connected}/{n} subscribers connected; e.g. {errors[:3]}")
        seconds = time.monotonic() - t0
        self.log(f"[{self.mode}] {n} subscribers connected in {seconds:.1f}s")
        return connected, seconds

    def phase(self, shape, rate, seconds=None, label=None, stop_when=None, stop_after=3.0):
        """One measurement: paced POSTs, then wait for every final value. Returns the row."""
        opts = self.opts
        seconds = opts["seconds"] if seconds is None else seconds
        batch = SHAPES[shape]
        for conn in self.conns:
            conn.send(("arm",))
        fanout._recv(self.conns, 30, "that they are armed")
        rss = {"max": self.server.rss_mb() or 0.0}

        async def sampler():
            while True:
                value = self.server.rss_mb()
                if value:
                    rss["max"] = max(rss["max"], value)
                await asyncio.sleep(0.2)

        cpu0, busy0 = self.server.cpu_seconds(), fanout.machine_busy_seconds()
        driver0 = _cpu_now()
        sent = asyncio.run(_drive(self, batch, rate, seconds, opts["max_lag"], sampler, stop_when, stop_after))
        accepted = sent["accepted"]
        sensors = opts["sensors"]
        finals = {}
        for vc in accepted:
            s = vc % sensors
            if vc > finals.get(s, 0):
                finals[s] = vc
        expected = len(accepted) if self.mode in ("bare", "per-reading") else None
        done = []
        if self.conns:
            wait = max(0.5, opts["drain"] - (time.time() - sent["t_last"]))
            for conn in self.conns:
                conn.send(("expect", sorted(finals.items()), expected, wait))
            done = [d[1] for d in fanout._recv(self.conns, wait + 60, "completion")]
        t_end = time.time()
        server_cpu = self.server.cpu_seconds() - cpu0
        busy1, driver_cpu = fanout.machine_busy_seconds(), _cpu_now() - driver0
        rss["max"] = max(rss["max"], self.server.rss_mb() or 0.0)
        t0 = sent["t0"]
        ingest_window = max(sent["scheduled_s"], sent["t_last"] - t0)
        readings_per_s = len(accepted) / ingest_window if ingest_window > 0 else 0.0
        hist, hist_sent = Counter(), Counter()
        for d in done:
            hist.update(d["hist"])
            hist_sent.update(d["hist_sent"])
        complete = all(d["completed"] == d["clients"] for d in done)
        if done:
            ends = [d["done_at"] if d["done_at"] is not None else (d["last_rx"] or t_end) for d in done]
            last_delivery = max(ends) if complete else max(d["last_rx"] or t0 for d in done)
            delivery_window = max(sent["scheduled_s"], last_delivery - t0)
        else:
            delivery_window = ingest_window
        deliveries = sum(d["deliveries"] for d in done)
        values = sum(d["values"] for d in done)
        missing = sum(d["missing_pairs"] for d in done)
        pairs = sum(d["pairs"] for d in done)
        short = sum(d["short"] for d in done)
        closed = sum(d["closed"] for d in done)
        client_cpu = sum(d["cpu"] for d in done)
        window = t_end - t0
        other = None
        if busy0 is not None and busy1 is not None:
            other = max(0.0, (busy1 - busy0) - server_cpu - client_cpu - driver_cpu)
        p50, p99 = percentile(hist, 0.50), percentile(hist, 0.99)
        sustained = (not sent["aborted"] and not sent["failed"] and readings_per_s >= SUSTAINED * rate)
        lossless = missing == 0 and short == 0 and closed == 0 and complete
        ok = sustained and lossless and (self.k == 0 or (p99 is not None and p99 <= P99_GOAL_MS))
        row = {
            "mode": label or self.mode, "shape": shape, "rate": rate, "subscribers": self.k,
            "readings": len(accepted), "posts": sent["posts"], "failed_posts": len(sent["failed"]),
            "post_errors": sent["failed"][:3], "aborted": sent["aborted"],
            "readings_per_s": round(readings_per_s, 1), "sustained": sustained,
            "deliveries": deliveries, "deliveries_per_s": round(deliveries / delivery_window, 1) if self.k else None,
            "values_per_s": round(values / delivery_window, 1) if self.k else None,
            "latency_ms_p50": p50, "latency_ms_p99": p99, "latency_ms_max": max(hist) if hist else None,
            "from_send_ms_p50": percentile(hist_sent, 0.50), "from_send_ms_p99": percentile(hist_sent, 0.99),
            "server_cpu_us_per_reading": round(1e6 * server_cpu / len(accepted), 1) if accepted else None,
            "server_cpu_pct": round(100 * server_cpu / window, 1) if window > 0 else None,
            "client_cpu_pct": round(100 * client_cpu / window, 1) if window > 0 else None,
            "driver_cpu_pct": round(100 * driver_cpu / window, 1) if window > 0 else None,
            "other_cpu_pct": round(100 * other / window, 1) if other is not None and window > 0 else None,
            "missing_pairs": missing, "pairs": pairs, "short_subscribers": short, "extra_subscribers":
                sum(d["extra"] for d in done), "disconnected": closed,
            "slow_consumer_events": sum(d["slow_events"] for d in done), "complete": complete,
            "frames": sum(d["frames_distinct"] for d in done) // max(1, len(done)),
            "catch_up_frames": sum(d["catch_up_receipts"] for d in done),
            "frame_readings_accounted": (sum(d["frame_readings"] + d["frame_superseded"] for d in done) // max(1, len(done))
                                         if self.mode == "coalesced" else None),
            "server_rss_mb": round(rss["max"], 1), "window_s": round(window, 2), "ok": ok,
        }
        if self.mode == "coalesced" and done and row["frame_readings_accounted"] != len(accepted):
            row["note"] = (f"frames account for {row['frame_readings_accounted']} readings (in frame + superseded) "
                           f"of {len(accepted)}")
        # Past this a higher rate can only be worse: the mode stops escalating (p99 alone over the goal
        # does not stop it: coalesced latency hardly depends on the rate).
        row["overloaded"] = not sustained or not lossless or p99 is None and self.k > 0 or (
            p99 is not None and p99 > OVERLOAD_P99_MS)
        if not lossless or not self.server.alive():
            self.broken = True
        return row

    def stop(self):
        for conn in self.conns:
            try:
                conn.send(("stop",))
            except (OSError, ValueError):
                pass
        for worker in self.workers:
            worker.join(60)
            if worker.is_alive():
                worker.terminate()
                worker.join(5)
        for conn in self.conns:
            conn.close()
        self.workers, self.conns = [], []
        if self.server is not None:
            self.server.stop()
            self.server = None


# --------------------------------------------------------------------------------------------
# The runs
# --------------------------------------------------------------------------------------------

def fmt_row(row):
    def num(value, spec=",.0f"):
        return "-" if value is None else format(value, spec)

    loss = "0" if row["missing_pairs"] == 0 and not row["short_subscribers"] and not row["disconnected"] else (
        f"{row['missing_pairs']}/{row['pairs']}" + (f" short {row['short_subscribers']}" if row["short_subscribers"] else "")
        + (f" disc {row['disconnected']}" if row["disconnected"] else ""))
    if row["subscribers"] == 0:
        loss = "-"
    return (row["shape"], num(row["rate"], "g"), row["mode"], num(row["readings_per_s"], ",.1f"),
            num(row["deliveries_per_s"]), num(row["values_per_s"]) if row["mode"] == "coalesced" else "",
            num(row["latency_ms_p50"], "d"), num(row["latency_ms_p99"], "d"), num(row["from_send_ms_p99"], "d"),
            num(row["server_cpu_us_per_reading"]), num(row["server_cpu_pct"], ".0f") + "%", loss,
            num(row["server_rss_mb"], ".0f"), num(row["other_cpu_pct"], ".0f") + "%",
            ("yes" if row["ok"] else ("NO" + (" (cut)" if row["aborted"] else ""))) + ("*" if "first_attempt" in row else ""))


HEAD = ("shape", "rate/s", "mode", "readings/s", "deliveries/s", "values/s", "p50 ms", "p99 ms", "p99 send",
        "CPU us/rdg", "srv CPU", "loss", "RSS MB", "other", "ok")


def table(rows, head=HEAD):
    rows = [head] + [fmt_row(r) for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) if i not in (0, 2) else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run_sweep(opts, log):
    modes = [m for m in opts["modes"].split(",") if m]
    rates = [float(r) if "." in r else int(r) for r in opts["rates"].split(",") if r]
    shapes = [s for s in opts["shapes"].split(",") if s]
    targets = {m: Target(m, opts, log) for m in modes}
    rows, skipped, retries = [], [], 0
    try:
        for target in targets.values():
            target.start()
        for shape in shapes:
            for target in targets.values():
                if target.broken or target.server is None:
                    target.stop()
                    target.start()
            standing = list(modes)
            for index, rate in enumerate(rates):
                shift = index % len(standing) if standing else 0
                order = standing[shift:] + standing[:shift]
                for mode in order:
                    target = targets[mode]
                    log(f"[{shape} {rate}/s] {mode} ...")
                    row = target.phase(shape, rate)
                    log("    " + " ".join(f"{h}={v}" for h, v in zip(HEAD[3:], fmt_row(row)[3:])))
                    if (not row["ok"] and not target.broken and opts["retry_busy"] and retries < opts["max_retries"]
                            and (row["other_cpu_pct"] or 0) > opts["retry_busy"]):
                        retries += 1
                        # Other processes took a core's worth of share meanwhile: once more, keep the second.
                        log(f"    other processes took {row['other_cpu_pct']:.0f}% of a core: once more ...")
                        time.sleep(1.0)
                        first = row
                        row = target.phase(shape, rate)
                        row["first_attempt"] = {k: first[k] for k in (
                            "readings_per_s", "latency_ms_p50", "latency_ms_p99", "other_cpu_pct", "ok")}
                        log("    " + " ".join(f"{h}={v}" for h, v in zip(HEAD[3:], fmt_row(row)[3:])))
                    rows.append(row)
                    if row["overloaded"]:
                        standing.remove(mode)
                        higher = [r for r in rates if r > rate]
                        if higher:
                            skipped.append({"mode": mode, "shape": shape, "failed_at": rate, "skipped": higher})
                        if target.broken:
                            log(f"    {mode} left behind: stopping its server until the next shape")
                            target.stop()
                if not standing:
                    break
    finally:
        for target in targets.values():
            target.stop()
    return {"rows": rows, "skipped": skipped, "rates": rates, "shapes": shapes, "modes": modes}


# --- the slow consumer ---

class SlowClient:
    """Connects, authenticates and joins over a raw socket with a small receive buffer, then never reads.

    With `pongs`, a thread sends an Engine.IO pong ("3") every 5 s without reading anything: a client
    whose downstream is stalled while its upstream works, so that engine.io's ping timeout (it closes
    a client that does not answer a ping within ping_interval + ping_timeout, 45 s) is not what ends it.
    """

    def __init__(self, url, token, rcvbuf, pongs=True):
        host, port = url.split("//", 1)[1].split(":")
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: sets the window
        self.sock.settimeout(30)
        self.sock.connect((host, int(port)))
        self.buffer = b""
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {host}:{port}\r\n"
                           f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"no websocket upgrade: {head[:200]!r}")
        if not self._text().startswith("0"):
            raise ConnectionError("no Engine.IO open packet")
        self._send("40" + json.dumps({"token": token}))
        while not self._text().startswith("40"):
            pass
        self._send("421" + json.dumps(["join_room", {"room": ROOM}]))
        while True:
            text = self._text()
            if text.startswith("431"):
                if '"ok":true' not in text.replace(" ", ""):
                    raise ConnectionError(f"join refused: {text[:200]}")
                break
        self.rcvbuf = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        # From here on nothing is read: the server's writes fill our window and its send buffer.
        self.closed = False
        if pongs:
            import threading

            threading.Thread(target=self._pong, daemon=True).start()

    def _pong(self):
        while not self.closed:
            time.sleep(5)
            try:
                self._send("3")
            except OSError:
                return

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        self.buffer += chunk

    def _take(self, n):
        while len(self.buffer) < n:
            self._fill()
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def _text(self):
        while True:
            b0, b1 = self._take(2)
            length = b1 & 0x7F
            if length == 126:
                length = struct.unpack("!H", self._take(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", self._take(8))[0]
            data = self._take(length)
            if b0 & 0x0F == 1:
                text = data.decode()
                if text == "2":
                    self._send("3")
                    continue
                return text

    def _send(self, text):
        data = text.encode()
        mask = os.urandom(4)
        header = bytes([0x81])
        if len(data) < 126:
            header += bytes([0x80 | len(data)])
        elif len(data) < 65536:
            header += bytes([0x80 | 126]) + struct.pack("!H", len(data))
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", len(data))
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    TCP_STATES = {1: "ESTABLISHED", 7: "CLOSE", 8: "CLOSE_WAIT"}

    def tcp_state(self):
        """ESTABLISHED while the server keeps it; CLOSE_WAIT (FIN) or CLOSE (RST) once the server closed it."""
        try:
            info = self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
            return self.TCP_STATES.get(info[0], str(info[0]))
        except OSError as exc:
            return f"? ({exc})"

    PROC_STATES = {"01": "ESTABLISHED", "04": "FIN_WAIT1", "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE",
                   "08": "CLOSE_WAIT", "09": "LAST_ACK", "0B": "CLOSING"}

    def server_side(self):
        """(state, bytes queued to send) of the server's end of this connection, from /proc/net/tcp."""
        try:
            local = "%04X" % self.sock.getsockname()[1]
            remote = "%04X" % self.sock.getpeername()[1]
        except OSError:  # reset by the server: its end is gone
            return "gone", 0
        try:
            with open("/proc/net/tcp") as fh:
                for line in fh:
                    fields = line.split()
                    if fields[1].endswith(":" + remote) and fields[2].endswith(":" + local):
                        return self.PROC_STATES.get(fields[3], fields[3]), int(fields[4].split(":")[0], 16)
        except (OSError, IndexError, ValueError):
            pass
        return "gone", 0

    def unread_bytes(self):
        import fcntl
        import termios

        try:
            return struct.unpack("i", fcntl.ioctl(self.sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]
        except OSError:
            return None

    def close(self):
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass


def run_slow(opts, log, rate):
    """`--subscribers - 1` normal per-reading subscribers: a phase without, then a phase with one client
    that never reads (it only sends an Engine.IO pong every 5 s, unless --no-slow-pongs), until the
    server has closed it (plus 3 s) or `--slow-max-seconds`."""
    k = opts["subscribers"] - 1
    target = Target("per-reading", opts, log, subscribers=k)
    slow = None
    result = {"subscribers": k, "rate": rate, "shape": "single", "pongs": opts["slow_pongs"]}
    try:
        target.start()
        log(f"[slow consumer] {k} subscribers, {rate}/s single POSTs, {opts['slow_seconds']:.0f}s without ...")
        before = target.phase("single", rate, seconds=opts["slow_seconds"], label="per-reading, no slow client")
        log("    " + " ".join(f"{h}={v}" for h, v in zip(HEAD[3:], fmt_row(before)[3:])))
        rss_before = target.server.rss_mb()
        slow = SlowClient(target.server.url, target.token, opts["slow_rcvbuf"], opts["slow_pongs"])
        log(f"[slow consumer] + 1 client that never reads (SO_RCVBUF {slow.rcvbuf} B"
            f"{', pongs every 5 s' if opts['slow_pongs'] else ''}), until the server closes it "
            f"(at most {opts['slow_max_seconds']:.0f}s) ...")
        t_connected = time.time()
        closed = {"at": None, "next": 0.0}

        def server_closed():
            # The server logs `slow_consumer` when it tells the client (and ends its session); the TCP
            # connection itself may stay open (see `transport` below).
            now = time.time()
            if closed["at"] is None and now >= closed["next"]:
                closed["next"] = now + 0.5
                if "slow_consumer" in target.server.output(4000) or slow.server_side()[0] != "ESTABLISHED":
                    closed["at"] = now
            return closed["at"] is not None

        during = target.phase("single", rate, seconds=opts["slow_max_seconds"], label="per-reading, with slow client",
                              stop_when=server_closed, stop_after=8.0)
        log("    " + " ".join(f"{h}={v}" for h, v in zip(HEAD[3:], fmt_row(during)[3:])))
        server_closed()
        health = target.server.report(target.token) or {}
        lines = [line for line in target.server.output().splitlines() if "slow_consumer" in line]
        told = find_key(health, "slow_consumers_total")
        server_state, server_queued = slow.server_side()
        result.update({
            "without": before, "with": during, "rss_before_mb": round(rss_before or 0, 1),
            "rss_max_with_mb": during["server_rss_mb"], "rss_after_mb": round(target.server.rss_mb() or 0, 1),
            "slow_consumers_total": told, "client_faults": find_key(health, "client_faults"),
            "server_log_lines": lines[:3], "slow_tcp_state": slow.tcp_state(),
            "slow_unread_bytes": slow.unread_bytes(), "slow_rcvbuf": slow.rcvbuf,
            "told_after_s": round(closed["at"] - t_connected, 1) if closed["at"] else None,
            "events_before_told": round(rate * (closed["at"] - t_connected)) if closed["at"] else None,
            "connected_clients_after": find_key(health, "connected_clients"),
            "transport_after": {"server_side_state": server_state, "server_send_queue_bytes": server_queued,
                                "seconds_after_told": round(time.time() - closed["at"], 1) if closed["at"] else None},
        })
        p99a, p99b = before["latency_ms_p99"], during["latency_ms_p99"]
        result["p99_ratio"] = round(p99b / p99a, 3) if p99a and p99b is not None else None
    finally:
        if slow is not None:
            slow.close()
        target.stop()
    return result


def run_memory(opts, log):
    """Idle subscribers connected in steps; the server's RSS after each step."""
    n = opts["memory_connections"]
    procs = max(1, opts["memory_procs"])
    fanout.raise_fd_limit(min(n + 1024, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    steps = sorted({s for s in (100, 1000, n // 4, n // 2, n) if 0 < s <= n})
    target = Target("per-reading", dict(opts, connect_timeout=max(opts["connect_timeout"], 600)), log, subscribers=n)
    result = {"target": n, "ulimit_n": [soft, hard], "steps": [], "reached": 0}
    try:
        target.start(connect=False)
        result["max_connections"] = target.server.max_connections
        target.spawn(procs, target.join)
        reached = 0
        for step in steps:
            try:
                _, seconds = target.grow(step - reached)
            except RuntimeError as exc:
                result["error"] = str(exc)
                log(f"[memory] stopped: {exc}")
                break
            reached = step
            time.sleep(2.0)  # let connect-time work (session saves, handshakes) settle
            cpu0, t0 = target.server.cpu_seconds(), time.monotonic()
            time.sleep(opts["memory_idle_seconds"])  # idle: what the connections cost with nothing to send
            idle = 100 * (target.server.cpu_seconds() - cpu0) / (time.monotonic() - t0)
            rss = target.server.rss_mb()
            result["steps"].append({"connections": step, "rss_mb": round(rss, 1), "connect_s": round(seconds, 1),
                                    "server_fds": target.server.open_fds(), "idle_cpu_pct": round(idle, 1)})
            log(f"[memory] {step} connected: server RSS {rss:.1f} MB, idle CPU {idle:.0f}% "
                f"({seconds:.1f}s to connect this step)")
        result["reached"] = reached
        if len(result["steps"]) >= 2:
            first, last = result["steps"][0], result["steps"][-1]
            result["kb_per_connection"] = round(1024 * (last["rss_mb"] - first["rss_mb"])
                                                / (last["connections"] - first["connections"]), 1)
        health = target.server.report(target.token)
        result["server_cpu_s"] = round(target.server.cpu_seconds(), 1)
        result["open_connections"] = find_key(health, "open_connections")
    finally:
        target.stop()
    return result


# --------------------------------------------------------------------------------------------
# Verdicts
# --------------------------------------------------------------------------------------------

def best_ok_rate(rows, mode, shape):
    rates = [r["rate"] for r in rows if r["mode"] == mode and r["shape"] == shape and r["ok"]]
    return max(rates) if rates else 0


def first_failure(rows, mode, shape):
    failed = [r for r in rows if r["mode"] == mode and r["shape"] == shape and not r["ok"]]
    return failed[0] if failed else None


def verdicts(report):
    out = []
    sweep = report.get("sweep")
    if sweep:
        rows, lowest = sweep["rows"], min(sweep["rates"])
        top = max(sweep["rates"])
        for shape in sweep["shapes"]:
            c, p = best_ok_rate(rows, "coalesced", shape), best_ok_rate(rows, "per-reading", shape)
            i, b = best_ok_rate(rows, "ingest-only", shape), best_ok_rate(rows, "bare", shape)
            ratio = (c / p) if p else None
            capped = first_failure(rows, "per-reading", shape) is None  # per-reading never failed: a lower bound
            text = (f"[{shape}] coalesced highest rate with p99 <= {P99_GOAL_MS:.0f} ms and no loss: {c}/s; "
                    f"per-reading: {p}/s" + ("" if p else f" (none of the rates, lowest {lowest}/s)")
                    + (" (held at every rate tried)" if capped else "") + "; ratio "
                    + (f"{ratio:.1f}x" if ratio else f"> {c / lowest:.0f}x (per-reading below the lowest rate)" if c else "n/a")
                    + (": HOLDS" if c and (ratio if ratio else c / lowest) >= 10 else
                       ": not measurable (per-reading held everywhere)" if capped else
                       ": NOT SHOWN (per-reading held no rate; a lower first rate would tell)" if c and not p else
                       ": NOT MET"))
            fail = first_failure(rows, "coalesced", shape)
            ingest_fail = first_failure(rows, "ingest-only", shape)
            if fail is None:
                limit = f"; coalesced held at every rate tried (up to {top}/s)"
            elif ingest_fail is not None and ingest_fail["rate"] <= fail["rate"]:
                limit = (f"; at {fail['rate']}/s coalesced accepted {fail['readings_per_s']:.0f} readings/s and ingest "
                         f"alone (no subscribers) {ingest_fail['readings_per_s']:.0f}/s at {ingest_fail['rate']}/s: "
                         f"INGEST is the limit")
            elif "ingest-only" in sweep["modes"]:
                limit = (f"; ingest alone held {i}/s but coalesced failed at {fail['rate']}/s: FAN-OUT/streaming "
                         f"is the limit")
            else:
                limit = ""
            out.append(text + limit)
            # per-reading vs bare, rate by rate
            per_rate, cpu_ratio = [], []
            for rate in sweep["rates"]:
                a = next((r for r in rows if r["mode"] == "per-reading" and r["shape"] == shape and r["rate"] == rate), None)
                z = next((r for r in rows if r["mode"] == "bare" and r["shape"] == shape and r["rate"] == rate), None)
                if a and z and a["deliveries_per_s"] and z["deliveries_per_s"]:
                    per_rate.append((rate, a["deliveries_per_s"] / z["deliveries_per_s"], a["ok"], z["ok"]))
                    if a["server_cpu_us_per_reading"] and z["server_cpu_us_per_reading"]:
                        cpu_ratio.append((rate, a["server_cpu_us_per_reading"] / z["server_cpu_us_per_reading"]))
                elif z and not a:
                    cap = max((r["deliveries_per_s"] or 0) for r in rows
                              if r["mode"] == "per-reading" and r["shape"] == shape) if any(
                        r["mode"] == "per-reading" and r["shape"] == shape for r in rows) else 0
                    if z["deliveries_per_s"]:
                        per_rate.append((rate, cap / z["deliveries_per_s"], False, z["ok"]))
            if per_rate:
                worst = min(x[1] for x in per_rate)
                out.append(f"[{shape}] per-reading/bare deliveries/s by rate: "
                           + ", ".join(f"{rate}/s {x:.2f}{'' if ok_a else '*'}" for rate, x, ok_a, _ in per_rate)
                           + f" (* per-reading failed or was skipped there); highest rate with p99 <= 500 ms and no "
                             f"loss: per-reading {p}/s, bare {b}/s; >= 0.85x at every rate: "
                           + ("HOLDS" if worst >= 0.85 else "NOT MET")
                           + ("; server CPU per reading, per-reading/bare: "
                              + ", ".join(f"{rate}/s {x:.2f}x" for rate, x in cpu_ratio) if cpu_ratio else ""))
    slow = report.get("slow")
    if slow and slow.get("without"):
        ratio = slow.get("p99_ratio")
        told = slow.get("slow_consumers_total")
        transport = slow["transport_after"]
        out.append(f"slow consumer: the other {slow['subscribers']}' p99 {slow['without']['latency_ms_p99']} ms without, "
                   f"{slow['with']['latency_ms_p99']} ms with ({ratio}x; goal <= 1.2x: "
                   f"{'HOLDS' if ratio is not None and ratio <= 1.2 else 'NOT MET'}); told slow_consumer: "
                   + (f"yes (after {slow['told_after_s']}s); its TCP connection "
                      f"{'still open' if transport['server_side_state'] == 'ESTABLISHED' else 'closed'} "
                      f"{transport['seconds_after_told']}s later ({transport['server_send_queue_bytes']} B queued); "
                      if told else f"NO, within {slow['with']['window_s']:.0f}s (phase with it "
                                   f"{'cut short: per-reading overloaded' if slow['with']['aborted'] else 'ended'}); ")
                   + f"server RSS {slow['rss_before_mb']} MB before, at most {slow['rss_max_with_mb']} MB with it")
    memory = report.get("memory")
    if memory and memory.get("kb_per_connection") is not None:
        kb = memory["kb_per_connection"]
        out.append(f"memory: {memory['reached']} idle subscribers (target {memory['target']}), "
                   f"{kb} KB of server RSS per connection; goal <= 80 KB: {'HOLDS' if kb <= 80 else 'NOT MET'}"
                   + ("" if memory["reached"] >= 10000 else "; 10,000 NOT reached"))
    return out


def run(opts=None, log=print):
    opts = dict(DEFAULTS, **(opts or {}))
    only = set(opts["only"].split(","))
    fanout.raise_fd_limit(min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 4 * opts["subscribers"] + 1024))
    report = {"options": {k: v for k, v in opts.items()}, "cpus": os.cpu_count()}
    started = time.monotonic()
    if "sweep" in only:
        report["sweep"] = run_sweep(opts, log)
    if "slow" in only:
        report["slow"] = run_slow(opts, log, opts["slow_rate"])
    if "memory" in only:
        report["memory"] = run_memory(opts, log)
    report["verdicts"] = verdicts(report)
    report["duration_s"] = round(time.monotonic() - started, 1)
    return report


def format_report(report):
    lines = []
    sweep = report.get("sweep")
    if sweep:
        lines.append(table(sweep["rows"]))
        for s in sweep["skipped"]:
            lines.append(f"  {s['mode']} ({s['shape']}) failed at {s['failed_at']}/s: not run at "
                         f"{', '.join(str(x) for x in s['skipped'])}/s")
        rows = sweep["rows"]
        if any("first_attempt" in r for r in rows):
            lines.append(f"  ok*: the phase failed while other processes took more than "
                         f"{report['options']['retry_busy']:.0f}% of a core, and was run once more (shown); the "
                         f"first attempt is in the JSON")
        others = [r["other_cpu_pct"] for r in rows if r.get("other_cpu_pct") is not None]
        if others:
            lines.append(f"  other processes on the machine: {min(others):.0f}-{max(others):.0f}% of a core "
                         f"during phases; {report['cpus']} CPU(s)")
    slow = report.get("slow")
    if slow and slow.get("without"):
        lines.append("")
        lines.append(table([slow["without"], slow["with"]]))
        transport = slow["transport_after"]
        lines.append(f"  slow client (SO_RCVBUF {slow['slow_rcvbuf']} B{', pongs' if slow['pongs'] else ''}): told "
                     f"slow_consumer after {slow['told_after_s'] if slow['told_after_s'] is not None else '(never) '}s "
                     f"(~{slow['events_before_told']} events); "
                     f"slow_consumers_total {slow['slow_consumers_total']}; Socket.IO clients connected after: "
                     f"{slow['connected_clients_after']} (of {slow['subscribers']} normal); its TCP connection "
                     f"{transport['seconds_after_told']}s later: server side {transport['server_side_state']} with "
                     f"{transport['server_send_queue_bytes']} B queued, client side {slow['slow_tcp_state']}")
        if slow["server_log_lines"]:
            lines.append(f"  server log: {slow['server_log_lines'][0][:200]}")
        lines.append(f"  server RSS: {slow['rss_before_mb']} MB before, max {slow['rss_max_with_mb']} MB with, "
                     f"{slow['rss_after_mb']} MB after")
    memory = report.get("memory")
    if memory:
        lines.append("")
        lines.append(f"memory: ulimit -n {memory['ulimit_n']}, MAX_CONNECTIONS {memory.get('max_connections')}")
        for step in memory["steps"]:
            lines.append(f"  {step['connections']:>6} connections: server RSS {step['rss_mb']:>7.1f} MB, "
                         f"{step['server_fds']} fds, idle server CPU {step['idle_cpu_pct']:.0f}% of a core, "
                         f"{step['connect_s']}s to connect the step")
        if memory.get("error"):
            lines.append(f"  stopped: {memory['error']}")
    lines.append("")
    lines.extend(report.get("verdicts", []))
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"shorter: {', '.join(f'--{k.replace(chr(95), chr(45))} {v}' for k, v in QUICK.items())}")
    parser.add_argument("-k", "--subscribers", type=int, help=f"per mode (default {DEFAULTS['subscribers']})")
    parser.add_argument("--rates", help=f"readings/s, comma-separated (default {DEFAULTS['rates']})")
    parser.add_argument("--shapes", help="single,batch20 (default both)")
    parser.add_argument("--modes", help=f"comma-separated of {', '.join(MODES)} (default all)")
    parser.add_argument("--seconds", type=float, help=f"paced sending per phase (default {DEFAULTS['seconds']})")
    parser.add_argument("--drain", type=float, help=f"seconds after the last POST for every final value "
                                                    f"(default {DEFAULTS['drain']})")
    parser.add_argument("--max-lag", type=float, help="cut a phase short when more than this many seconds of "
                                                      f"POSTs are outstanding (default {DEFAULTS['max_lag']})")
    parser.add_argument("--sensors", type=int, help=f"distinct sensor ids (default {DEFAULTS['sensors']})")
    parser.add_argument("--interval-ms", type=int, help="coalesced frame interval (default 250)")
    parser.add_argument("--procs", type=int, help="subscriber processes per mode (default 1)")
    parser.add_argument("--recovery-s", type=float, help="SESSION_RECOVERY_S for CityPulse (default: the "
                                                         "server's own, 120)")
    parser.add_argument("--slow-rate", type=float, help="readings/s of the slow-consumer run (default 10: about "
                                                        "what per-reading mode holds with 1000 subscribers here)")
    parser.add_argument("--slow-seconds", type=float, help=f"the phase without the slow client "
                                                           f"(default {DEFAULTS['slow_seconds']})")
    parser.add_argument("--slow-max-seconds", type=float, help="the phase with it, at most (it ends 8 s after the "
                                                               f"server logged slow_consumer; default {DEFAULTS['slow_max_seconds']})")
    parser.add_argument("--no-slow-pongs", dest="slow_pongs", action="store_false", default=None,
                        help="the slow client does not even answer pings (engine.io's ping timeout ends it)")
    parser.add_argument("--memory-connections", type=int,
                        help=f"idle subscribers for RSS per connection (default {DEFAULTS['memory_connections']})")
    parser.add_argument("--memory-procs", type=int, help="their processes (default 4)")
    parser.add_argument("--only", help="sweep,slow,memory (default all three)")
    parser.add_argument("--retry-busy", type=float, help="repeat a failed phase once when other processes took more "
                                                         "than this %% of a core meanwhile (0: never; default 50)")
    parser.add_argument("--max-retries", type=int, help="at most this many such repeats per run (default 8)")
    parser.add_argument("--json", help="also write the report to this file")
    args = parser.parse_args(argv)
    opts = dict(DEFAULTS)
    if args.quick:
        opts.update(QUICK)
    for key in DEFAULTS:
        value = getattr(args, key, None)
        if value is not None:
            opts[key] = value
    bad = [m for m in opts["modes"].split(",") if m not in MODES] + [
        s for s in opts["shapes"].split(",") if s not in SHAPES] + [
        x for x in opts["only"].split(",") if x not in ("sweep", "slow", "memory")]
    if bad:
        parser.error(f"unknown: {bad}")
    if opts["subscribers"] < 2:
        parser.error("--subscribers must be at least 2")
    return args, opts


def main(argv=None):
    args, opts = parse_args(argv)
    try:
        report = run(opts)
    except RuntimeError as exc:
        print(f"stream benchmark failed: {exc}", file=sys.stderr)
        return 1
    print()
    print(format_report(report))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
