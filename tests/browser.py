"""Helpers for the browser tests (tests/test_console.py): headless Debian Chromium through Playwright, a
live server with the simulator on, and a TCP proxy in front of it that can drop every connection."""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import pytest
import requests

from tests.conftest import ADMIN, ROOT

# In CI (or when asked) a missing chromium or playwright is a failure, not a skip.
BROWSER_REQUIRED = os.environ.get("REQUIRE_BROWSER") == "1"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
# Browser tests listen on these ports only (a live server and the proxy in front of it).
PORTS = range(5600, 5700)
SECRET = "browser-test-secret-key-that-is-long-enough"


def chromium_path():
    return shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)


def missing_browser():
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -r requirements-dev.txt)"
    if chromium_path() is None:
        return "chromium is not installed (apt-get install chromium; .ci/run installs it)"
    return None


def require_browser():
    reason = missing_browser()
    if reason:
        if BROWSER_REQUIRED:
            pytest.fail(f"{reason} (required with REQUIRE_BROWSER=1)")
        pytest.skip(reason)


def launch():
    """(playwright, browser): the system Chromium, never a downloaded one."""
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
    return playwright, browser


_taken = set()


def free_port():
    """A free port in PORTS (each handed out once per test run)."""
    for port in PORTS:
        if port in _taken:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _taken.add(port)
        return port
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


class ConsoleServer:
    """`python run.py` in development mode: seeded city, simulators every 2 s, one task worker."""

    def __init__(self, **env):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "COV_"))}
        full_env.update({
            "APP_ENV": "development", "HOST": "127.0.0.1", "PORT": str(self.port), "LOG_LEVEL": "WARNING",
            "BCRYPT_ROUNDS": "4", "JWT_SECRET_KEY": SECRET, "SIMULATION_INTERVAL_S": "2", "TASK_WORKERS": "1",
            # Every page and test signs in from 127.0.0.1: the per-IP login limit is not under test here.
            "RATELIMIT_LOGIN": "1000 per minute", "RATELIMIT_DEFAULT": "1000 per minute",
            "SOCKET_CONNECTS_BURST": "100000"})
        if os.environ.get("TEST_MONGO_URI"):
            full_env["MONGO_URI"] = os.environ["TEST_MONGO_URI"]
            full_env["MONGO_DB_NAME"] = f"citypulse_test_{uuid.uuid4().hex[:12]}"
        full_env.update(env)
        self.log = tempfile.NamedTemporaryFile(prefix="citypulse-console-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "run.py")], cwd=ROOT, env=full_env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if requests.get(self.url + "/api/health/live", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("server did not become ready")

    def output(self):
        with open(self.log.name, encoding="utf-8", errors="replace") as fh:
            return fh.read()

    def login(self, email=ADMIN["email"], password=ADMIN["password"]):
        response = requests.post(self.url + "/api/auth/login", json={"email": email, "password": password}, timeout=10)
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


class TcpProxy:
    """Forwards its port to the server's. `cut(seconds)` drops every open connection (the browser's
    transport dies, as behind a flaky network or an nginx reload) and refuses new ones for a while."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.refuse_until = 0.0
        self.sockets = set()
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if time.time() < self.refuse_until:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                self._close(sock)

    def _close(self, sock):
        with self.lock:
            self.sockets.discard(sock)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def cut(self, seconds):
        self.refuse_until = time.time() + seconds
        with self.lock:
            open_sockets = list(self.sockets)
        for sock in open_sockets:
            self._close(sock)

    def close(self):
        self.closed = True
        self.cut(0)
        self.listener.close()


class PageLog:
    """What a page did: every request URL, console errors and uncaught exceptions."""

    def __init__(self, page, origin):
        self.origin = origin
        self.requests = []
        self.errors = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def foreign_requests(self):
        """Requests that left the page's origin (http(s) or ws(s) to another host or port)."""
        host = re.sub(r"^https?://", "", self.origin)
        own = re.compile(rf"^(https?|wss?)://{re.escape(host)}(/|$)")
        return [url for url in self.requests if not own.match(url) and not url.startswith(("data:", "blob:"))]

    def unexpected_errors(self, allowed=()):
        return [error for error in self.errors if not any(re.search(pattern, error) for pattern in allowed)]
