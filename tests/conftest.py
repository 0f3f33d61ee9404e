"""Shared fixtures: an app per test, authenticated clients, a real Redis, live servers."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import pytest
import requests

from src import create_app
from src.config import TestingConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ADMIN = {"email": "admin@smartcity.com", "password": "admin123"}
# In CI (or when asked) a missing redis-server is a failure, not a skip.
REDIS_REQUIRED = os.environ.get("CI") == "true" or os.environ.get("REQUIRE_REDIS") == "1"


def make_config(**overrides):
    """A TestingConfig subclass with overrides and, on real MongoDB, a database of its own."""
    attrs = dict(overrides)
    if TestingConfig.MONGO_URI and "MONGO_DB_NAME" not in attrs:
        attrs["MONGO_DB_NAME"] = f"citypulse_test_{uuid.uuid4().hex[:12]}"
    return type("TestConfig", (TestingConfig,), attrs)


def drop_database(app):
    if app.config["MONGO_URI"] and app.config["MONGO_DB_NAME"].startswith("citypulse_test_"):
        app.extensions["mongo_client"].drop_database(app.config["MONGO_DB_NAME"])


@pytest.fixture(autouse=True)
def fresh_outage_state():
    """Outage state is per process; each test starts with every dependency up."""
    from src import outages, redis_client

    for outage in (outages.redis, outages.mongodb):
        outage.reset()
    redis_client._skip_until = 0.0
    yield


@pytest.fixture
def app_factory():
    """Build apps with config overrides; databases are dropped afterwards."""
    apps = []

    def build(**overrides):
        app = create_app(make_config(**overrides))
        apps.append(app)
        return app

    yield build
    for app in apps:
        drop_database(app)


@pytest.fixture
def app(app_factory):
    return app_factory()


@pytest.fixture
def client(app):
    return app.test_client()


def login(client, password=ADMIN["password"], **identifier):
    identifier = identifier or {"email": ADMIN["email"]}
    response = client.post("/api/auth/login", json=dict(identifier, password=password))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def admin_tokens(client):
    return login(client)


@pytest.fixture
def admin_headers(admin_tokens):
    return bearer(admin_tokens["access_token"])


@pytest.fixture
def make_user(client, admin_headers):
    """Register a user with `role` through the API; return (user, tokens)."""

    def make(role="viewer", password="s3cret-pass", **fields):
        email = fields.pop("email", f"{role}-{uuid.uuid4().hex[:8]}@example.com")
        response = client.post("/api/auth/register", headers=admin_headers,
                               json=dict(fields, email=email, password=password, role=role))
        assert response.status_code == 201, response.get_json()
        return response.get_json(), login(client, email=email, password=password)

    return make


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url():
    """A throwaway redis-server on a free port; skipped (or failed in CI) when there is none."""
    binary = shutil.which("redis-server")
    if binary is None:
        if REDIS_REQUIRED:
            pytest.fail("redis-server is required in CI but is not installed (.ci/run installs it)")
        pytest.skip("redis-server not installed: the Redis tests need a real server "
                    "(apt-get install redis-server, or run .ci/run)")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="citypulse-redis-")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", workdir],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    import redis

    deadline = time.time() + 10
    while True:
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.exceptions.ConnectionError:
            if time.time() > deadline:
                proc.kill()
                pytest.fail("redis-server did not start")
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(5)
    shutil.rmtree(workdir, ignore_errors=True)


class RedisProcess:
    """A redis-server of the test's own, to kill and bring back on the same port (empty, like a restart)."""

    def __init__(self):
        self.binary = shutil.which("redis-server")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tempfile.mkdtemp(prefix="citypulse-redis-outage-")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", self.dir],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                redis.Redis.from_url(self.url).ping()
                return self
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self):
        self.proc.kill()
        self.proc.wait(5)

    def keys(self, pattern):
        import redis

        return redis.Redis.from_url(self.url).keys(pattern)


@pytest.fixture
def redis_process():
    if shutil.which("redis-server") is None:
        if REDIS_REQUIRED:
            pytest.fail("redis-server is required in CI")
        pytest.skip("redis-server not installed")
    process = RedisProcess().start()
    yield process
    if process.proc.poll() is None:
        os.kill(process.proc.pid, signal.SIGCONT)  # a stopped (hung) server must not outlive the test
        process.kill()
    shutil.rmtree(process.dir, ignore_errors=True)


@pytest.fixture
def redis_db(redis_url):
    """The Redis URL, emptied before the test."""
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    return redis_url


class LiveServer:
    """A real `python run.py` process (eventlet unless told otherwise) on a free port."""

    def __init__(self, env):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "COV_"))}
        full_env.update({"APP_ENV": "development", "HOST": "127.0.0.1", "PORT": str(self.port),
                         "SCHEDULER_ENABLED": "false", "BCRYPT_ROUNDS": "4", "LOG_LEVEL": "WARNING",
                         "JWT_SECRET_KEY": "live-test-secret-key-that-is-long-enough",
                         # Tests connect one user hundreds of times; the connect limit's own test lowers it.
                         "SOCKET_CONNECTS_BURST": "100000"})
        if os.environ.get("TEST_MONGO_URI"):
            full_env["MONGO_URI"] = os.environ["TEST_MONGO_URI"]
            full_env["MONGO_DB_NAME"] = f"citypulse_test_{uuid.uuid4().hex[:12]}"
        full_env.update(env)
        self.log = tempfile.NamedTemporaryFile(prefix="citypulse-live-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "run.py")], cwd=ROOT,
                                     env=full_env, stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"live server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if requests.get(self.url + "/api/health/live", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        output = self.output()
        self.stop()
        raise RuntimeError(f"live server did not become ready:\n{output}")

    def output(self):
        with open(self.log.name, encoding="utf-8", errors="replace") as fh:
            return fh.read()

    def login(self, email=ADMIN["email"], password=ADMIN["password"]):
        response = requests.post(self.url + "/api/auth/login", json={"email": email, "password": password},
                                 timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        os.unlink(self.log.name)


@pytest.fixture
def live_server():
    """Start live servers with extra environment; all are stopped after the test."""
    servers = []

    def start(**env):
        server = LiveServer({k: str(v) for k, v in env.items()})
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


# In CI (or when asked) a missing node / socket.io-client is a failure, not a skip.
NODE_REQUIRED = os.environ.get("CI") == "true" or os.environ.get("REQUIRE_NODE") == "1"


@pytest.fixture
def js_client_factory():
    """Start official socket.io-client drivers (tests/js_client.py); all are closed after the test.

    Skipped when node or tests/js/node_modules/socket.io-client is missing (`make js-deps` installs it);
    a failure instead in CI or with REQUIRE_NODE=1.
    """
    from tests.js_client import JsClient, missing_requirement

    reason = missing_requirement()
    if reason:
        if NODE_REQUIRED:
            pytest.fail(f"{reason} (required in CI / with REQUIRE_NODE=1)")
        pytest.skip(reason)
    clients = []

    def make():
        client = JsClient()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def js_client(js_client_factory):
    """One official socket.io-client driver: js_client.connect(url, auth={"token": ...})."""
    return js_client_factory()


# For live-server test modules: each defines its own module-scoped `server` fixture.

@pytest.fixture(scope="module")
def admin(server):
    """A REST client of the module's live server, signed in as the default admin."""
    from tests.socket_helpers import Api

    return Api(server)


@pytest.fixture
def connect(server):
    """Connect python-socketio recording clients to the module's live server; all disconnected after."""
    from tests.socket_helpers import RecordingClient

    clients = []

    def make(token=None, **kwargs):
        client = RecordingClient(server.url, token=token, **kwargs).connect()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.disconnect()
