"""nginx.conf and nginx-tls.conf, run by a real nginx in front of live servers.

Balancing (spread and stickiness), failover between backends, nginx's own errors, and HTTPS.
Each config is copied with the files it includes and rewritten only where a test must differ
from a container: backend addresses, listen ports, certificate paths, pid/log/temp paths, and
an X-Upstream header that tells which backend answered.
"""
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import socketio

from tests.conftest import ROOT, bearer, free_port
from tests.socket_helpers import Api, RecordingClient

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
# 20 clients of one /24, plus one far along it: ip_hash sees a single client in all of them.
SOURCES = [f"127.0.0.{i}" for i in range(1, 21)] + ["127.0.0.200"]
TRAFFIC = {"sensor_id": "T-failover", "vehicle_count": 40, "average_speed": 25.0, "congestion_level": 20.0}


def start_together(*starters):
    """Call the server starters at once (each waits ~2 s for its server); their servers in order."""
    with ThreadPoolExecutor(len(starters)) as pool:
        return [future.result() for future in [pool.submit(start) for start in starters]]


def assert_live_updates(client, api, sensor_id):
    """A connected client joins traffic_monitoring and receives a reading posted through `api`."""
    try:
        assert client.call("join_room", {"room": "traffic_monitoring"})["ok"]
        api.traffic(sensor_id)
        assert client.wait_for("traffic_update", where=lambda p: p["sensor_id"] == sensor_id)
    finally:
        client.disconnect()


def addr(backend):
    """How nginx's $upstream_addr names a backend (a LiveServer or a bare port)."""
    return f"127.0.0.1:{getattr(backend, 'port', backend)}"


class Nginx:
    """A real nginx running one of the repo's entry configs, rewritten for a test."""

    def __init__(self, entry, backends, certificate=None):
        self.workdir = tempfile.mkdtemp(prefix="citypulse-nginx-")
        self.proc = None
        self.http_port = free_port()
        self.https_port = free_port() if certificate else None
        self.url = f"http://127.0.0.1:{self.http_port}"
        try:
            self.conf = self._render(entry, backends, certificate)
            check = subprocess.run([NGINX, "-t", "-c", self.conf, "-p", self.workdir], capture_output=True, text=True)
            assert check.returncode == 0, check.stderr
            self.proc = subprocess.Popen([NGINX, "-c", self.conf, "-p", self.workdir, "-g", "daemon off;"],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self._wait_listening()
        except BaseException:
            self.stop()
            raise

    def _render(self, entry, backends, certificate):
        """Copy `entry` and the files under nginx/ into the workdir, rewritten; the entry's path."""
        # Relative includes resolve against the entry file's directory, so keep the layout.
        shutil.copytree(os.path.join(ROOT, "nginx"), os.path.join(self.workdir, "nginx"))
        shutil.copy(os.path.join(ROOT, entry), self.workdir)
        files = [os.path.join(self.workdir, entry)] + [
            os.path.join(self.workdir, "nginx", name) for name in os.listdir(os.path.join(self.workdir, "nginx"))]

        def servers(match):
            return "\n".join(f"{match[1]}server {addr(backend)}{match[2]};" for backend in backends)

        rewrites = [
            # (pattern, replacement, how many matches the repo's files must have in all)
            (r"^(\s*)server backend:5000(.*);$", servers, 1),
            (r"^(\s*)resolver .*;$", "", 1),
            (r"\blisten 80;", f"listen 127.0.0.1:{self.http_port};", 1),
            (r"^worker_processes auto;$", f"worker_processes 1;\npid {self.workdir}/nginx.pid;\n"
                                          f"error_log {self.workdir}/error.log;", 1),
            (r"^http \{$", f"http {{\n    access_log off;\n    client_body_temp_path {self.workdir}/body;\n"
                           f"    proxy_temp_path {self.workdir}/proxy;\n"
                           f"    add_header X-Upstream $upstream_addr always;", 1),
        ]
        if certificate:
            rewrites += [
                (r"\blisten 443 ssl;", f"listen 127.0.0.1:{self.https_port} ssl;", 1),
                (r"/etc/nginx/tls/fullchain\.pem", certificate["cert"], 1),
                (r"/etc/nginx/tls/privkey\.pem", certificate["key"], 1),
            ]
        found = Counter()
        for path in files:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
            for pattern, replacement, _ in rewrites:
                text, n = re.subn(pattern, replacement, text, flags=re.M)
                found[pattern] += n
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
        for pattern, _, expected in rewrites:
            assert found[pattern] == expected, f"{entry}: {pattern!r} matched {found[pattern]} times, not {expected}"
        return files[0]

    def _wait_listening(self, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.http_port), timeout=1).close()
                return
            except OSError:
                assert self.proc.poll() is None, f"nginx exited with {self.proc.returncode}"
                time.sleep(0.05)
        raise AssertionError("nginx did not start listening")

    def fetch(self, path, source="127.0.0.1", method="GET", headers=None, body=None):
        """One request over a fresh connection from `source`; (status, X-Upstream, body)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=10, source_address=(source, 0))
        headers = dict(headers or {})
        if body is not None:
            body = json.dumps(body)
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.getheader("X-Upstream"), response.read()
        finally:
            conn.close()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        shutil.rmtree(self.workdir, ignore_errors=True)


@pytest.fixture
def nginx():
    """Start nginx with an entry config in front of backends; stopped after the test."""
    if NGINX is None:
        pytest.skip("nginx not installed (apt-get install nginx); the nginx configs are tested where it is")
    started = []

    def start(entry, backends, certificate=None):
        proxy = Nginx(entry, backends, certificate)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


def without_mongodb(**env):
    """Environment of a live server whose MongoDB is unreachable (nothing listens on a fresh free port):
    it serves, and answers 503 where it needs the database."""
    return dict(env, MONGO_URI=f"mongodb://127.0.0.1:{free_port()}/citypulse", MONGO_TIMEOUT_MS="200")


@pytest.mark.live
def test_rest_and_websocket_through_nginx(live_server, nginx):
    server = live_server(RATELIMIT_ENABLED="false")
    proxy = nginx("nginx.conf", [server])
    assert requests.get(proxy.url + "/api/health", timeout=5).json()["status"] == "healthy"
    missing = requests.get(proxy.url + "/elsewhere", timeout=5)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    # The console and the docs' vendored files reach the app too.
    console = requests.get(proxy.url + "/", timeout=5)
    assert console.status_code == 200 and "text/html" in console.headers["Content-Type"]
    assert requests.get(proxy.url + "/static/swagger-ui/swagger-ui.css", timeout=5).status_code == 200
    assert requests.get(proxy.url + "/console/city.json", timeout=5).status_code in (200, 401)
    api = Api(server)
    client = RecordingClient(proxy.url, token=api.token)
    assert_live_updates(client.connect(), api, "T-nginx")  # WebSocket only: needs the Upgrade headers


@pytest.mark.live
def test_clients_of_one_24_spread_over_backends_and_each_stays_on_one(live_server, nginx):
    backends = start_together(*[lambda: live_server(RATELIMIT_ENABLED="false")] * 2)
    proxy = nginx("nginx.conf", backends)
    chosen = {}
    for source in SOURCES:
        seen = {proxy.fetch("/api/health", source)[1] for _ in range(3)}
        assert len(seen) == 1, f"{source} was sent to more than one backend: {seen}"
        chosen[source] = seen.pop()
    spread = Counter(chosen.values())
    # ip_hash keys on 127.0.0 for all of them, so one backend got every client.
    assert set(spread) == {addr(b) for b in backends}, f"{len(SOURCES)} clients of one /24: {dict(spread)}"


@pytest.mark.live
def test_socketio_long_polling_session_stays_on_its_backend(live_server, nginx):
    # Every poll and post of a polling session must reach the process that holds the session.
    backends = start_together(*[lambda: live_server(RATELIMIT_ENABLED="false")] * 2)
    proxy = nginx("nginx.conf", backends)
    # Each backend has its own embedded database, so log in where 127.0.0.1 is sent.
    home = next(b for b in backends if addr(b) == proxy.fetch("/api/health")[1])
    client = socketio.Client(reconnection=False, request_timeout=10)
    client.connect(proxy.url, auth={"token": Api(home).token}, transports=["polling"], wait_timeout=10)
    try:
        assert client.transport() == "polling"
        for _ in range(5):
            assert client.call("join_room", {"room": "traffic_monitoring"}, timeout=10)["ok"]
    finally:
        client.disconnect()


@pytest.mark.live
def test_only_idempotent_requests_fail_over_from_a_backend_without_mongodb(live_server, nginx):
    good, bad = start_together(lambda: live_server(RATELIMIT_ENABLED="false"),
                               lambda: live_server(**without_mongodb(RATELIMIT_ENABLED="false")))
    proxy = nginx("nginx.conf", [good, bad])
    headers = bearer(good.login()["access_token"])  # both backends share the signing key
    # Which clients hash to the backend without MongoDB: any answer names it, and /api/health/live
    # reads no database (so nothing fails over yet).
    to_bad = [source for source in SOURCES if proxy.fetch("/api/health/live", source)[1] == addr(bad)]
    assert to_bad, "no client was sent to the second backend"
    source = to_bad[0]

    # A POST that reached a backend is never resent: its 503 comes back, from that backend alone.
    status, upstream, body = proxy.fetch("/api/traffic/data", source, "POST", headers, TRAFFIC)
    assert (status, upstream) == (503, addr(bad)), body
    assert json.loads(body)["error"] == "database_unavailable"

    # A GET is resent to the other backend; after max_fails=3 failures the backend without MongoDB
    # gets no requests at all for fail_timeout.
    answers = [proxy.fetch("/api/traffic/data", source, headers=headers) for _ in range(5)]
    assert [status for status, _, _ in answers] == [200] * 5, answers
    # (The POST's 503, passed through, did not count as a failure.)
    retried = f"{addr(bad)}, {addr(good)}"
    assert [upstream for _, upstream, _ in answers] == [retried] * 3 + [addr(good)] * 2


@pytest.mark.live
def test_no_backend_to_answer_gives_the_json_error_shape(nginx):
    dead = [free_port(), free_port()]  # nothing listens there
    proxy = nginx("nginx.conf", dead)
    for path in ("/api/health", "/socket.io/?EIO=4&transport=polling"):
        status, _, body = proxy.fetch(path)
        assert status == 503, body
        assert json.loads(body)["error"] == "service_unavailable"


@pytest.fixture
def certificate(tmp_path):
    """A throwaway self-signed certificate for 127.0.0.1 and localhost."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not installed (apt-get install openssl)")
    cert, key = str(tmp_path / "fullchain.pem"), str(tmp_path / "privkey.pem")
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"], check=True, capture_output=True)
    os.chmod(tmp_path, 0o755)  # nginx's workers run unprivileged; the master reads the files
    return {"cert": cert, "key": key}


@pytest.mark.live
def test_https_rest_and_wss_while_plain_http_redirects(live_server, nginx, certificate):
    server = live_server(RATELIMIT_ENABLED="false")
    proxy = nginx("nginx-tls.conf", [server], certificate)
    base = f"https://127.0.0.1:{proxy.https_port}"

    health = requests.get(base + "/api/health", verify=certificate["cert"], timeout=5)
    assert health.status_code == 200 and health.json()["status"] == "healthy"
    assert "max-age=63072000" in health.headers["Strict-Transport-Security"]
    missing = requests.get(base + "/elsewhere", verify=certificate["cert"], timeout=5)
    assert missing.status_code == 404 and "Strict-Transport-Security" in missing.headers  # `always`

    redirect = requests.get(proxy.url + "/api/health?x=1", allow_redirects=False, timeout=5)
    assert redirect.status_code == 301
    assert redirect.headers["Location"] == "https://127.0.0.1/api/health?x=1"

    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        context = ssl.create_default_context(cafile=certificate["cert"])
        context.minimum_version = context.maximum_version = version
        with socket.create_connection(("127.0.0.1", proxy.https_port), timeout=5) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.version() == version.name.replace("_", ".")

    api = Api(server)
    client = RecordingClient(base, token=api.token)
    session = requests.Session()
    session.verify = certificate["cert"]  # engine.io passes it on to the WebSocket as its CA
    client.sio.eio.http = session
    assert_live_updates(client.connect(), api, "T-wss")  # WebSocket only, over TLS: wss://


@pytest.mark.live
@pytest.mark.parametrize("reads_offsets", [True, False])
def test_official_client_recovers_on_another_process_when_its_own_dies(live_server, nginx, redis_db, js_client,
                                                                       reads_offsets):
    """Two processes behind nginx share Redis; the client's process is killed; it recovers on the other.

    A first session without `recovery: true` has no offset and no position its dead process saved:
    it gets a fresh session (and re-joins), never a replay that could repeat what it saw."""
    backends = start_together(*[lambda: live_server(RATELIMIT_ENABLED="false", REDIS_URL=redis_db)] * 2)
    proxy = nginx("nginx.conf", backends)
    own = next(b for b in backends if addr(b) == proxy.fetch("/api/health", "127.0.0.1")[1])
    other = next(b for b in backends if b is not own)
    api = Api(other)
    # `recovery: true` says the client reads offsets from its first connection; without it, a first
    # session is recovered only after a transport close its own process saw (docs/events.md).
    js_client.connect(proxy.url, auth=dict({"token": api.token}, **({"recovery": True} if reads_offsets else {})))
    js_client.wait_for("connected")
    assert js_client.emit("join_room", {"room": "traffic_monitoring"})["ok"] is True
    api.traffic("T-csr-1")
    js_client.wait_for(lambda r: r.get("event") == "traffic_update" and r["args"][0]["sensor_id"] == "T-csr-1")
    mark = js_client.mark()
    own.proc.kill()  # SIGKILL: no disconnect handler, no goodbye
    js_client.wait_for("disconnect", after=mark)
    missed = [api.traffic(f"T-csr-{n}")["sensor_id"] for n in (2, 3, 4)]
    hello = js_client.wait_for("connected", after=mark, timeout=20)[0]["args"][0]
    if not reads_offsets:
        assert hello["recovered"] is False and "traffic_monitoring" not in hello["joined"]
        assert js_client.events("traffic_update", after=mark) == []
        return
    assert hello["recovered"] is True and js_client.state()["recovered"] is True
    api.traffic("T-csr-5")
    js_client.wait_for(lambda r: r.get("event") == "traffic_update" and r["args"][0]["sensor_id"] == "T-csr-5",
                       after=mark)
    got = [r["args"][0]["sensor_id"] for r in js_client.events("traffic_update", after=mark)]
    assert got == missed + ["T-csr-5"], got
