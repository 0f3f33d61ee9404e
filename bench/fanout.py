"""Socket.IO fan-out benchmark: CityPulse against the bare Flask-SocketIO/eventlet stack.

For each mode the benchmark starts a server as a subprocess on 127.0.0.1 (a free port):

- `bare`: `bench/bare_server.py`, Flask + Flask-SocketIO on eventlet with nothing else;
- `citypulse`: `python run.py` (development profile, embedded database, no scheduler, no rate
  limits) with connection state recovery off (`SESSION_RECOVERY_S=0`), subscribers
  connecting with `auth={"token": ...}`;
- `citypulse-recovery`: the same with recovery on (`SESSION_RECOVERY_S=120`, the default) and
  subscribers that read offsets (`auth={"token": ..., "recovery": true}`): every broadcast is
  also logged with an offset and reaches them through the twin rooms, offset as last argument.

It connects K subscribers per mode over WebSocket into room `traffic_monitoring`, then drives M
`traffic_update` events per mode through the server's HTTP API, and measures

    delivered events/s = K * M / (time from the first request until every subscriber has all M)

All servers stay up side by side and the M events are sent in `--rounds` bursts that alternate
between the modes (the order rotates every round), so a noisy neighbour slows them alike; the
time of a mode is the sum of its bursts, each timed from its first request until every
subscriber has that burst's last event.

Subscribers live in `--procs` processes per mode (asyncio + aiohttp, one event loop each) that
only count deliveries; at the end every subscriber must have exactly M (a grace second catches
duplicates), and in `citypulse-recovery` every delivery must carry an offset (none elsewhere).
CPU time of the server, of the subscriber processes and of everything else on the machine over
the same windows is reported, to show which side limited the figure.

    .venv/bin/python bench/fanout.py                        # all three modes, 1000 x 200
    .venv/bin/python bench/fanout.py --mode citypulse --mode citypulse-recovery -k 200 -m 50
    .venv/bin/python bench/fanout.py --mode citypulse -k 200 -m 50 --client socketio

Needs aiohttp (bench/requirements.txt). Everything stops by itself: every phase has a timeout,
subscriber processes exit when the driver goes away, servers are terminated at the end.
"""
import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
ROOM = "traffic_monitoring"
EVENT = "traffic_update"
ADMIN = {"email": "admin@smartcity.com", "password": "admin123"}
MODES = ("bare", "citypulse", "citypulse-recovery")
# What a CityPulse mode changes: the server's environment, and what subscribers add to their auth.
CITYPULSE_MODES = {
    "citypulse": {"env": {"SESSION_RECOVERY_S": "0"}, "auth": {}},
    "citypulse-recovery": {"env": {"SESSION_RECOVERY_S": "120"}, "auth": {"recovery": True}},
}
CLIENT_KINDS = ("raw", "socketio")
# Variables that would point the server at external services: the benchmark measures the
# default single-process setup (embedded database, in-process rate limits and revocation).
STRIPPED_ENV = ("MONGO_URI", "REDIS_URL", "MONGO_DB_NAME")

DEFAULTS = {
    "subscribers": 1000, "events": 200, "rounds": 5, "batch": 100, "size": 235, "procs": 1, "client": "raw",
    "connect_concurrency": 50, "connect_timeout": 180.0, "timeout": 300.0, "grace": 1.0,
}


# --------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------

def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent():
    """preexec_fn: the server gets SIGTERM if the benchmark process dies (Linux only)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Server:
    """A benchmark target: `bare_server.py` or `run.py` on a free 127.0.0.1 port."""

    def __init__(self, mode, connections, start_timeout=60.0):
        self.mode = mode
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k not in STRIPPED_ENV}
        max_conn = str(max(10000, connections + 100))
        if mode == "bare":
            cmd = [sys.executable, os.path.join(BENCH, "bare_server.py"), "--host", "127.0.0.1",
                   "--port", str(self.port), "--max-size", max_conn]
            self.health = self.url + "/health"
        else:
            cmd = [sys.executable, os.path.join(ROOT, "run.py")]
            env.update(CITYPULSE_MODES[mode]["env"])
            env.update({
                "APP_ENV": "development", "HOST": "127.0.0.1", "PORT": str(self.port),
                "SCHEDULER_ENABLED": "false", "SIMULATION_ENABLED": "false", "RATELIMIT_ENABLED": "false",
                "LOG_LEVEL": "WARNING", "BCRYPT_ROUNDS": "4", "MAX_CONNECTIONS": max_conn,
                "SOCKETIO_ASYNC_MODE": "eventlet",
                # Every subscriber is the same user: lift the per-user connection limit (a rate limit).
                "SOCKET_CONNECTS_BURST": str(max(100000, 2 * connections)),
            })
            self.health = self.url + "/api/health"
        self._launch(cmd, env, f"citypulse-bench-{mode}-", start_timeout)

    def _launch(self, cmd, env, log_prefix, start_timeout):
        """Start the server process, its output in a temporary log, and wait until it answers health."""
        self.log = tempfile.NamedTemporaryFile(prefix=log_prefix, suffix=".log", delete=False)
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        self._wait_ready(start_timeout)

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.mode} server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if requests.get(self.health, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.mode} server not ready after {timeout:.0f}s:\n{self.output()}")

    def cpu_seconds(self):
        """user + system CPU time of the server process so far."""
        with open(f"/proc/{self.proc.pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        return round(int(line.split()[1]) / 1024, 1)
        except OSError:
            pass
        return None

    def output(self, tail=4000):
        try:
            with open(self.log.name, encoding="utf-8", errors="replace") as fh:
                return fh.read()[-tail:]
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        try:
            os.unlink(self.log.name)
        except OSError:
            pass


# --------------------------------------------------------------------------------------------
# Subscribers (run inside subscriber processes)
# --------------------------------------------------------------------------------------------

async def _next_packet(ws, timeout):
    """The next Socket.IO packet during the handshake (engine.io pings answered on the way)."""
    import aiohttp

    while True:
        msg = await ws.receive(timeout=timeout)
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"unexpected websocket message {msg.type!r} during handshake")
        if msg.data == "2":
            await ws.send_str("3")
            continue
        return msg.data


async def handshake(session, ws_url, auth, join, timeout, on_early=None):
    """Open a raw WebSocket, CONNECT with `auth`, and (unless `join` is None) send `join` = (event,
    payload) and wait for its ok ack; events arriving before the ack go to `on_early`. Returns the socket."""
    ws = await asyncio.wait_for(session.ws_connect(ws_url, autoping=True, max_msg_size=0, compress=0), timeout)
    opened = await _next_packet(ws, timeout)
    if not opened.startswith("0"):
        raise ConnectionError(f"no Engine.IO open packet: {opened[:80]!r}")
    await ws.send_str("40" + (json.dumps(auth) if auth is not None else ""))
    while True:
        packet = await _next_packet(ws, timeout)
        if packet.startswith("44"):
            raise ConnectionError(f"connection refused: {packet[2:200]}")
        if packet.startswith("40"):
            break
    if join is None:
        return ws
    event, payload = join
    await ws.send_str("421" + json.dumps([event, payload]))
    while True:
        packet = await _next_packet(ws, timeout)
        if packet.startswith("431"):
            ack = json.loads(packet[3:])
            if not (ack and isinstance(ack[0], dict) and ack[0].get("ok")):
                raise ConnectionError(f"{event} refused: {ack!r}")
            return ws
        if packet.startswith("42") and on_early is not None:
            on_early(packet)  # cannot happen before the join, but count it if it does


class RawClient:
    """The leanest subscriber: Engine.IO v4 / Socket.IO v5 over one aiohttp WebSocket.

    Connects to the default namespace with `auth`, sends one event with an ack id and waits
    for the ack, then counts text frames that start with `42["traffic_update"` (no JSON parsing),
    answering Engine.IO pings. A frame that carries an offset (`42["traffic_update",{...},"<offset>"]`,
    recovery twin rooms) starts the same way and is counted the same.
    """

    def __init__(self, session, url, auth, join, on_event):
        self.session, self.auth, self.join, self.on_event = session, auth, join, on_event
        self.ws_url = url.replace("http://", "ws://", 1) + "/socket.io/?EIO=4&transport=websocket"
        self.ws, self.reader = None, None

    async def connect(self, timeout):
        self.ws = await handshake(self.session, self.ws_url, self.auth, self.join, timeout, self._count)
        self.reader = asyncio.get_running_loop().create_task(self._read())

    def _count(self, data, prefix=f'42["{EVENT}"'):
        if data.startswith(prefix):
            self.on_event(data)

    async def _read(self):
        import aiohttp

        ws, on_event, prefix = self.ws, self.on_event, f'42["{EVENT}"'
        while True:
            msg = await ws.receive()
            if msg.type == aiohttp.WSMsgType.TEXT:
                data = msg.data
                if data.startswith(prefix):
                    on_event(data)
                elif data == "2":
                    await ws.send_str("3")
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED,
                              aiohttp.WSMsgType.ERROR):
                return

    async def close(self):
        if self.ws is not None and not self.ws.closed:
            await self.ws.close()
        if self.reader is not None:
            self.reader.cancel()


class SioClient:
    """python-socketio's AsyncClient (WebSocket transport only, sharing one aiohttp session)."""

    def __init__(self, session, url, auth, join, on_event):
        import socketio

        self.url, self.auth, self.join = url, auth, join
        self.sio = socketio.AsyncClient(reconnection=False, handle_sigint=False, http_session=session)

        async def handler(data, *offset):  # an offset arrives as a second argument (recovery twin rooms)
            on_event(data, offset)

        self.sio.on(EVENT, handler)

    async def connect(self, timeout):
        await self.sio.connect(self.url, auth=self.auth, transports=["websocket"], wait_timeout=timeout)
        event, payload = self.join
        ack = await self.sio.call(event, payload, timeout=timeout)
        if not (isinstance(ack, dict) and ack.get("ok")):
            raise ConnectionError(f"join refused: {ack!r}")

    async def close(self):
        if self.sio.connected:
            await self.sio.disconnect()


def _cpu_now():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def driver_link(conn, idle_limit):
    """(receive, watchdog task) for a subscriber process, inside its event loop: `receive()` awaits
    the driver's next message; the process exits on its own when the driver is gone or has been
    silent for `idle_limit` seconds (longer than any phase)."""
    loop = asyncio.get_running_loop()
    parent = os.getppid()
    heard = {"at": time.monotonic()}

    async def watchdog():
        while True:
            await asyncio.sleep(1)
            if os.getppid() != parent or time.monotonic() - heard["at"] > idle_limit:
                os._exit(3)

    async def receive():
        message = await loop.run_in_executor(None, conn.recv)
        heard["at"] = time.monotonic()
        return message

    return receive, loop.create_task(watchdog())


def subscriber_main(conn, cfg):
    """Entry point of one subscriber process; talks to the driver over `conn`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver handles Ctrl-C and tells us to stop
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
    """Connect this process's share of subscribers, then count deliveries burst by burst.

    Messages from the driver: ("go", target) -> reply ("armed",), wait until every client has
    `target` events in all, reply ("done", done_at, cpu_seconds, reached, payload_bytes);
    ("finish",) -> wait `grace` seconds (late duplicates would land here), reply ("final", counts,
    deliveries that carried an offset);
    ("stop",) -> disconnect and exit.
    """
    import aiohttp

    receive, watch = driver_link(conn, cfg["connect_timeout"] + cfg["timeout"] + 60)
    n = cfg["clients"]
    counts = [0] * n
    state = {"target": None, "remaining": 0, "done_at": None, "cpu_done": None, "payload_bytes": None,
             "with_offset": 0}
    all_done = asyncio.Event()
    raw = cfg["client"] == "raw"
    prefix_len = len(f'42["{EVENT}",')

    def make_on_event(i):
        def on_event(data, offset=()):
            c = counts[i] = counts[i] + 1
            # An offset is a last string argument: the raw frame then ends with `"]`, not `}]`.
            has_offset = data[-2] == '"' if raw else bool(offset)
            if has_offset:
                state["with_offset"] += 1
            if state["payload_bytes"] is None:
                # Raw frame: strip `42["traffic_update",`, the offset (`,"<offset>"`) and the closing
                # `]`; socketio: re-encode the payload.
                if raw:
                    end = data.rindex(',"') if has_offset else len(data) - 1
                    state["payload_bytes"] = end - prefix_len
                else:
                    state["payload_bytes"] = len(json.dumps(data, separators=(",", ":")))
            if c == state["target"]:
                state["remaining"] -= 1
                if state["remaining"] == 0:
                    state["done_at"] = time.monotonic()
                    state["cpu_done"] = _cpu_now()
                    all_done.set()
        return on_event

    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
    client_class = RawClient if raw else SioClient
    clients = [client_class(session, cfg["url"], cfg["auth"], tuple(cfg["join"]), make_on_event(i))
               for i in range(n)]
    gate = asyncio.Semaphore(cfg["connect_concurrency"])

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

    try:
        t_connect = time.monotonic()
        errors = await asyncio.wait_for(asyncio.gather(*(connect(c) for c in clients)),
                                        cfg["connect_timeout"])
        failed = [e for e in errors if e]
        conn.send(("ready", n - len(failed), failed[:3], round(time.monotonic() - t_connect, 2)))
        if failed:
            return
        while True:
            message = await receive()
            if message[0] == "go":
                target = message[1]
                all_done.clear()
                state.update(target=target, done_at=None, cpu_done=None,
                             remaining=sum(1 for c in counts if c < target))
                cpu0 = _cpu_now()
                if state["remaining"] == 0:
                    state["done_at"], state["cpu_done"] = time.monotonic(), cpu0
                    all_done.set()
                conn.send(("armed",))
                try:
                    await asyncio.wait_for(all_done.wait(), cfg["timeout"])
                except asyncio.TimeoutError:
                    pass
                cpu_end = state["cpu_done"] if state["cpu_done"] is not None else _cpu_now()
                reached = sum(1 for c in counts if c >= target)
                conn.send(("done", state["done_at"], cpu_end - cpu0, reached, state["payload_bytes"]))
            elif message[0] == "finish":
                await asyncio.sleep(cfg["grace"])
                conn.send(("final", list(counts), state["with_offset"]))
            else:  # "stop"
                return
    finally:
        try:
            await asyncio.wait_for(asyncio.gather(*(c.close() for c in clients), return_exceptions=True), 30)
        except asyncio.TimeoutError:
            pass
        await session.close()
        watch.cancel()


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------

def raise_fd_limit(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft != resource.RLIM_INFINITY and soft < needed:
        raise RuntimeError(f"ulimit -n is {soft}; {needed} file descriptors are needed (raise the hard limit)")


def machine_busy_seconds():
    """CPU seconds all cores spent busy (not idle/iowait) since boot, from /proc/stat."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except OSError:
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def login(url):
    response = requests.post(url + "/api/auth/login", json=ADMIN, timeout=30)
    if response.status_code != 200:
        raise RuntimeError(f"login failed: {response.status_code} {response.text[:300]}")
    return response.json()["access_token"]


def make_driver(mode, url, token, size):
    """A function sending one batch of `n` events; raises when the server does not accept it."""
    http = requests.Session()
    if mode == "bare":
        def send(n, seq):
            response = http.post(url + "/emit", params={"n": n, "size": size}, timeout=120)
            if response.status_code != 200:
                raise RuntimeError(f"/emit answered {response.status_code}: {response.text[:300]}")
    else:
        headers = {"Authorization": f"Bearer {token}"}

        def send(n, seq):
            batch = [{"sensor_id": f"BENCH-{(seq + i) % 1000:03d}", "vehicle_count": 10, "average_speed": 30.0,
                      "congestion_level": 20.0} for i in range(n)]
            response = http.post(url + "/api/traffic/data", json=batch, headers=headers, timeout=120)
            if response.status_code != 201 or response.json().get("ingested") != n:
                raise RuntimeError(f"/api/traffic/data answered {response.status_code}: {response.text[:300]}")
    return send


def _recv(conns, timeout, what):
    """One message from every connection, within `timeout` seconds overall."""
    deadline = time.monotonic() + timeout
    out = []
    for conn in conns:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not conn.poll(remaining):
            raise RuntimeError(f"subscriber processes did not report {what} within {timeout:.0f}s")
        message = conn.recv()
        if message[0] == "error":
            raise RuntimeError(f"a subscriber process failed: {message[1]}")
        out.append(message)
    return out


class Target:
    """One mode under test: its server, its subscriber processes, its driver and its tallies."""

    def __init__(self, mode, opts, log):
        self.mode, self.opts, self.log = mode, opts, log
        self.k, self.procs = opts["subscribers"], max(1, min(opts["procs"], opts["subscribers"]))
        self.workers, self.conns, self.server = [], [], None
        self.delivered_per_client = 0
        self.bursts = []
        self.payload_bytes = None
        self.with_offset = None

    def start(self):
        self.log(f"[{self.mode}] starting server ...")
        self.server = Server(self.mode, self.k)
        citypulse = CITYPULSE_MODES.get(self.mode)
        token = login(self.server.url) if citypulse else None
        auth = dict(citypulse["auth"], token=token) if citypulse else None
        join = ("join_room", {"room": ROOM}) if citypulse else ("join", {"room": ROOM})
        ctx = multiprocessing.get_context("fork")
        for share in split(self.k, self.procs):
            cfg = {"url": self.server.url, "auth": auth, "join": join,
                   "clients": share, "client": self.opts["client"],
                   "connect_concurrency": max(5, self.opts["connect_concurrency"] // self.procs),
                   "connect_timeout": self.opts["connect_timeout"], "timeout": self.opts["timeout"],
                   "grace": self.opts["grace"]}
            parent_end, child_end = ctx.Pipe()
            worker = ctx.Process(target=subscriber_main, args=(child_end, cfg), daemon=True)
            worker.start()
            child_end.close()
            self.workers.append(worker)
            self.conns.append(parent_end)
        self.log(f"[{self.mode}] connecting {self.k} subscribers from {self.procs} process(es) "
                 f"({self.opts['client']} client) ...")
        ready = _recv(self.conns, self.opts["connect_timeout"] + 30, "their connections")
        connected = sum(r[1] for r in ready)
        if connected != self.k:
            errors = [e for r in ready for e in r[2]]
            raise RuntimeError(f"{self.mode}: only {connected}/{self.k} subscribers connected; e.g. {errors[:3]}")
        self.log(f"[{self.mode}] {self.k} connected in {max(r[3] for r in ready):.1f}s")
        self.send = make_driver(self.mode, self.server.url, token, self.opts["size"])

    def burst(self, events):
        """Send `events` events; return once every subscriber has them all. One measurement."""
        target = self.delivered_per_client + events
        for conn in self.conns:
            conn.send(("go", target))
        _recv(self.conns, 30, "that they are armed")
        cpu0, busy0, driver0 = self.server.cpu_seconds(), machine_busy_seconds(), _cpu_now()
        t0 = time.monotonic()
        sent = 0
        while sent < events:
            n = min(self.opts["batch"], events - sent)
            self.send(n, self.delivered_per_client + sent)
            sent += n
        t_sent = time.monotonic()
        done = _recv(self.conns, self.opts["timeout"] + 30, "completion")
        server_cpu = self.server.cpu_seconds() - cpu0  # the server idles once it has delivered everything
        busy1, driver_cpu, t_recv = machine_busy_seconds(), _cpu_now() - driver0, time.monotonic()
        self.delivered_per_client = target
        reached = sum(d[3] for d in done)
        if any(d[1] is None for d in done) or reached != self.k:
            raise RuntimeError(f"{self.mode}: only {reached}/{self.k} subscribers had {target} events "
                               f"within {self.opts['timeout']:.0f}s")
        self.payload_bytes = self.payload_bytes or next((d[4] for d in done if d[4]), None)
        client_cpu = sum(d[2] for d in done)
        other = None
        if busy0 is not None and busy1 is not None:
            # Whatever else ran on the machine meanwhile (another test suite, a browser...).
            other = max(0.0, (busy1 - busy0) - server_cpu - client_cpu - driver_cpu)
        burst = {"events": events, "seconds": max(d[1] for d in done) - t0, "send_seconds": t_sent - t0,
                 "server_cpu": server_cpu, "client_cpu": client_cpu, "driver_cpu": driver_cpu,
                 "other_cpu": other, "window": t_recv - t0}
        self.bursts.append(burst)
        return burst

    def finish(self):
        """Check that every subscriber got exactly the events sent, no fewer and no more."""
        for conn in self.conns:
            conn.send(("finish",))
        finals = _recv(self.conns, self.opts["grace"] + 30, "their final counts")
        counts = [c for f in finals for c in f[1]]
        expected = self.delivered_per_client
        wrong = [c for c in counts if c != expected]
        if wrong:
            raise RuntimeError(f"{self.mode}: {len(wrong)}/{self.k} subscribers did not get exactly {expected} "
                               f"events ({sum(c < expected for c in counts)} short, "
                               f"{sum(c > expected for c in counts)} extra)")
        # Offsets only where subscribers read them: all deliveries of citypulse-recovery, none elsewhere.
        self.with_offset = sum(f[2] for f in finals)
        wanted = sum(counts) if self.mode == "citypulse-recovery" else 0
        if self.with_offset != wanted:
            raise RuntimeError(f"{self.mode}: {self.with_offset} of {sum(counts)} deliveries carried an offset, "
                               f"expected {wanted}")
        return self.summary()

    def summary(self):
        k, m = self.k, sum(b["events"] for b in self.bursts)
        seconds = sum(b["seconds"] for b in self.bursts)
        window = sum(b["window"] for b in self.bursts)
        server_cpu = sum(b["server_cpu"] for b in self.bursts)
        others = [b["other_cpu"] for b in self.bursts if b["other_cpu"] is not None]
        return {
            "mode": self.mode, "subscribers": k, "events": m, "bursts": len(self.bursts), "batch": self.opts["batch"],
            "client": self.opts["client"], "client_processes": self.procs, "deliveries": k * m,
            "seconds": round(seconds, 3), "deliveries_per_s": round(k * m / seconds, 1),
            "send_seconds": round(sum(b["send_seconds"] for b in self.bursts), 3),
            "server_cpu_pct": round(100 * server_cpu / seconds, 1),
            "server_cpu_us_per_delivery": round(1e6 * server_cpu / (k * m), 2),
            "client_cpu_pct": round(100 * sum(b["client_cpu"] for b in self.bursts) / seconds, 1),
            "driver_cpu_pct": round(100 * sum(b["driver_cpu"] for b in self.bursts) / seconds, 1),
            "other_cpu_pct": round(100 * sum(others) / window, 1) if others else None,
            "server_rss_mb": self.server.rss_mb() if self.server else None,
            "session_recovery_s": (int(CITYPULSE_MODES[self.mode]["env"]["SESSION_RECOVERY_S"])
                                   if self.mode in CITYPULSE_MODES else None),
            "deliveries_with_offset": self.with_offset,
            "payload_bytes": self.payload_bytes,
            "burst_seconds": [round(b["seconds"], 3) for b in self.bursts],
            "burst_server_cpu_us_per_delivery": [round(1e6 * b["server_cpu"] / (k * b["events"]), 2)
                                                 for b in self.bursts],
        }

    def stop(self):
        for conn in self.conns:
            try:
                conn.send(("stop",))
            except (OSError, ValueError):
                pass
        for worker in self.workers:
            worker.join(40)
            if worker.is_alive():
                worker.terminate()
                worker.join(5)
        for conn in self.conns:
            conn.close()
        if self.server is not None:
            self.server.stop()


def split(total, parts):
    """`total` in `parts` near-equal integer shares."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


# The ratios reported when both modes of a pair ran: (key, numerator mode, denominator mode).
RATIOS = (
    ("citypulse_over_bare", "citypulse", "bare"),
    ("recovery_over_off", "citypulse-recovery", "citypulse"),
)


def run(opts=None, modes=MODES, log=print):
    """Measure `modes` side by side; return {"options", "results", ratios}.

    Every mode's server and subscribers are up at once; the M events per mode are sent in
    `rounds` bursts, alternating modes (the order rotates every round: with two modes it flips),
    so that whatever else the machine does at the time weighs on every mode alike.

    For every pair of RATIOS that ran: `ratio_<key>` (deliveries/s of the first over the second),
    `server_cpu_ratio_<key>` (server CPU per delivery, first over second) and `ratio_<key>_by_round`
    (the throughput ratio of each round). `ratio_by_round` is `ratio_citypulse_over_bare_by_round`
    (its historical name).
    """
    opts = dict(DEFAULTS, **(opts or {}))
    rounds = max(1, min(opts["rounds"], opts["events"]))
    raise_fd_limit(len(modes) * opts["subscribers"] + 512)
    targets = [Target(mode, opts, log) for mode in modes]
    pairs = [(key, a, b) for key, a, b in RATIOS if a in modes and b in modes]
    by_round = {key: [] for key, _, _ in pairs}
    try:
        for target in targets:
            target.start()
        log(f"driving {opts['events']} events per mode in {rounds} burst(s), alternating "
            f"{' / '.join(modes)}, at most {opts['batch']} events per request ...")
        for index, events in enumerate(split(opts["events"], rounds)):
            shift = index % len(targets)
            order = targets[shift:] + targets[:shift]
            seconds = {t.mode: t.burst(events)["seconds"] for t in order}
            for key, a, b in pairs:
                by_round[key].append(round(seconds[b] / seconds[a], 3))  # time ratio b/a = throughput a/b
        results = [t.finish() for t in targets]
    finally:
        for target in targets:
            target.stop()
    by_mode = {r["mode"]: r for r in results}
    report = {"options": opts, "modes": list(modes), "results": results}
    for key, a, b in RATIOS:
        ratio = cost_ratio = None
        if a in by_mode and b in by_mode:
            ratio = round(by_mode[a]["deliveries_per_s"] / by_mode[b]["deliveries_per_s"], 3)
            cost_ratio = round(by_mode[a]["server_cpu_us_per_delivery"] / by_mode[b]["server_cpu_us_per_delivery"], 3)
        report[f"ratio_{key}"] = ratio
        report[f"server_cpu_ratio_{key}"] = cost_ratio
        report[f"ratio_{key}_by_round"] = by_round.get(key, [])
    report["ratio_by_round"] = report["ratio_citypulse_over_bare_by_round"]
    return report


def format_table(report):
    head = ("mode", "subscribers", "events", "seconds", "deliveries/s", "server CPU", "client CPU",
            "other CPU", "server us/delivery", "payload B")
    rows = [head]
    for r in report["results"]:
        rows.append((r["mode"], str(r["subscribers"]), str(r["events"]), f"{r['seconds']:.2f}",
                     f"{r['deliveries_per_s']:,.0f}", f"{r['server_cpu_pct']:.0f}%", f"{r['client_cpu_pct']:.0f}%",
                     "?" if r["other_cpu_pct"] is None else f"{r['other_cpu_pct']:.0f}%",
                     f"{r['server_cpu_us_per_delivery']:.1f}", str(r["payload_bytes"])))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    first = report["results"][0]
    lines.append("")
    lines.append(f"client side: {first['client_processes']} subscriber process(es), {first['client']} client; "
                 f"{os.cpu_count()} CPU(s) on this machine; CPU % is of one core over the measured window; "
                 f"'other' is everything else that ran meanwhile")
    lines.append(f"events sent in {first['bursts']} burst(s) per mode, modes alternating; "
                 f"at most {first['batch']} events per HTTP request")
    if "citypulse-recovery" in report.get("modes", ()):
        lines.append("citypulse: SESSION_RECOVERY_S=0; citypulse-recovery: SESSION_RECOVERY_S=120 and subscribers "
                     "with auth {token, recovery: true}, every delivery carrying an offset (payload B excludes it)")
    for key, a, b in RATIOS:
        if report.get(f"ratio_{key}") is not None:
            lines.append(f"ratio {a}/{b} (same run): {report[f'ratio_{key}']:.3f} of the deliveries/s "
                         f"(by burst: {', '.join(f'{x:.2f}' for x in report[f'ratio_{key}_by_round'])}); "
                         f"{report[f'server_cpu_ratio_{key}']:.3f}x the server CPU per delivery")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Socket.IO fan-out benchmark: CityPulse (recovery off and on) vs the bare stack.")
    parser.add_argument("--mode", action="append", choices=MODES + ("all",),
                        help="a mode to run (repeat for several; default: all of " + ", ".join(MODES) + ")")
    parser.add_argument("-k", "--subscribers", type=int, default=DEFAULTS["subscribers"])
    parser.add_argument("-m", "--events", type=int, default=DEFAULTS["events"])
    parser.add_argument("--rounds", type=int, default=DEFAULTS["rounds"],
                        help="bursts the events are sent in, alternating modes (noise hits them alike)")
    parser.add_argument("--batch", type=int, default=DEFAULTS["batch"],
                        help="events per HTTP request (readings per POST; at most 1000 for citypulse)")
    parser.add_argument("--size", type=int, default=DEFAULTS["size"],
                        help="bare mode: JSON bytes per event (CityPulse's traffic_update is about 235)")
    parser.add_argument("--procs", type=int, default=DEFAULTS["procs"], help="subscriber processes")
    parser.add_argument("--client", choices=CLIENT_KINDS, default=DEFAULTS["client"],
                        help="raw: minimal Socket.IO protocol over aiohttp (leanest); "
                             "socketio: python-socketio AsyncClient")
    parser.add_argument("--timeout", type=float, default=DEFAULTS["timeout"],
                        help="seconds allowed for delivery once sending starts")
    parser.add_argument("--connect-timeout", type=float, default=DEFAULTS["connect_timeout"])
    parser.add_argument("--json", help="also write the report to this file")
    args = parser.parse_args(argv)
    if not 1 <= args.batch <= 1000:
        parser.error("--batch must be 1..1000")
    if args.subscribers < 1 or args.events < 1 or args.rounds < 1:
        parser.error("--subscribers, --events and --rounds must be positive")
    return args


def main(argv=None):
    args = parse_args(argv)
    opts = {key: getattr(args, key) for key in DEFAULTS if hasattr(args, key)}
    modes = MODES if not args.mode or "all" in args.mode else tuple(m for m in MODES if m in args.mode)
    try:
        report = run(opts, modes)
    except RuntimeError as exc:
        print(f"fan-out benchmark failed: {exc}", file=sys.stderr)
        return 1
    print()
    print(format_table(report))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
