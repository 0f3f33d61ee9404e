"""Helpers for the browser tests (tests/test_console.py): headless Debian Chromium through Playwright, a
live server with the simulator on, and a TCP proxy in front of it that can drop every connection."""
import os
import re
import shutil
import socket
import threading
import time

import pytest

from tests.conftest import LiveServer, free_port

# In CI (or when asked) a missing chromium or playwright is a failure, not a skip.
BROWSER_REQUIRED = os.environ.get("REQUIRE_BROWSER") == "1"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
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


class ConsoleServer(LiveServer):
    """`python run.py` in development mode with the scheduler on: seeded city, simulators every 2 s,
    one task worker."""

    def __init__(self, **env):
        super().__init__(dict({
            "SCHEDULER_ENABLED": "true", "JWT_SECRET_KEY": SECRET, "SIMULATION_INTERVAL_S": "2",
            "TASK_WORKERS": "1",
            # Every page and test signs in from 127.0.0.1: the per-IP login limit is not under test here.
            "RATELIMIT_LOGIN": "1000 per minute", "RATELIMIT_DEFAULT": "1000 per minute"}, **env))


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
