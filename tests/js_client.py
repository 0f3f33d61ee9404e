"""The official socket.io-client (npm, pinned in tests/js/package.json), driven from pytest.

`JsClient` runs `node tests/js/driver.mjs` and talks to it in JSON lines (the protocol is described at the
top of driver.mjs). Everything the driver pushes (server events, lifecycle events) is kept in arrival order
as dicts:

    {"type": "event", "event": "traffic_update", "args": [...], "recovered": False, "t": 1700000000000}
    {"type": "lifecycle", "event": "connect", "sid": "...", "recovered": False, "t": ...}
    {"type": "lifecycle", "event": "disconnect", "reason": "transport close", "description": ..., "t": ...}
    {"type": "lifecycle", "event": "connect_error", "message": "...", "data": {...}, "t": ...}

Server events can never be named connect/disconnect/connect_error (reserved), so `wait_for("connect")` and
`wait_for("traffic_update")` look at one list without ambiguity.
"""
import json
import os
import queue
import shutil
import subprocess
import threading
import time

JS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "js")
DRIVER = os.path.join(JS_DIR, "driver.mjs")
CLIENT_PACKAGE = os.path.join(JS_DIR, "node_modules", "socket.io-client")


def missing_requirement():
    """Why the official client cannot run here (None when it can)."""
    if shutil.which("node") is None:
        return "node is not installed: the official socket.io-client tests need Node.js (v18+)"
    if not os.path.isdir(CLIENT_PACKAGE):
        return ("tests/js/node_modules/socket.io-client is missing: run `make js-deps` "
                "(npm ci --prefix tests/js), which `make test` does")
    return None


class JsError(AssertionError):
    """The driver answered a command with ok: false, or did not answer in time."""

    def __init__(self, message, reply=None):
        super().__init__(message)
        self.reply = reply


class JsClient:
    """One official socket.io-client Socket in a Node process of its own."""

    def __init__(self, node=None):
        self._proc = subprocess.Popen([node or shutil.which("node") or "node", DRIVER], cwd=JS_DIR,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, encoding="utf-8", bufsize=1)
        self._records = []
        self._replies = {}
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()
        self._next_id = 0
        self._stderr = []
        self.auth_provider = None
        self.auth_requests = 0
        self._auth_queue = queue.Queue()
        self._threads = [threading.Thread(target=target, name=f"js-client-{name}", daemon=True)
                         for name, target in (("stdout", self._read_stdout), ("stderr", self._read_stderr),
                                              ("auth", self._answer_auth))]
        for thread in self._threads:
            thread.start()

    # Plumbing

    def _read_stdout(self):
        for line in self._proc.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                self._stderr.append(f"(stdout, not JSON) {line}")
                continue
            kind = msg.get("type")
            if kind == "auth_request":
                self._auth_queue.put(msg)
            with self._cond:
                if kind == "reply":
                    self._replies[msg.get("id")] = msg
                elif kind in ("event", "lifecycle"):
                    self._records.append(msg)
                elif kind == "log":
                    self._stderr.append(f"(driver) {msg.get('message')}")
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()
        self._auth_queue.put(None)

    def _read_stderr(self):
        for line in self._proc.stderr:
            self._stderr.append(line.rstrip("\n"))

    def _answer_auth(self):
        # A thread of its own: the provider may log in over REST (slow) without holding up event reading.
        while True:
            request = self._auth_queue.get()
            if request is None:
                return
            self.auth_requests += 1
            try:
                auth = self.auth_provider() if self.auth_provider else {}
            except Exception as exc:  # the driver would wait for ever otherwise
                self._stderr.append(f"(auth_provider raised) {exc!r}")
                auth = {}
            self._write({"cmd": "auth_reply", "request": request.get("request"), "auth": auth})

    def _write(self, msg):
        with self._write_lock:
            try:
                self._proc.stdin.write(json.dumps(msg) + "\n")
                self._proc.stdin.flush()
            except (BrokenPipeError, ValueError, OSError) as exc:
                raise JsError(f"driver is gone ({exc!r}):\n{self.stderr()}") from exc

    def command(self, cmd, reply_timeout=15, **fields):
        """Send one command (`fields` are its JSON fields) and return its reply dict (ok true or false)."""
        with self._cond:
            self._next_id += 1
            command_id = self._next_id
        self._write(dict(fields, id=command_id, cmd=cmd))
        deadline = time.time() + reply_timeout
        with self._cond:
            while command_id not in self._replies:
                remaining = deadline - time.time()
                if self._proc.poll() is not None:
                    raise JsError(f"driver exited ({self._proc.returncode}) before answering {cmd}:\n"
                                  f"{self.stderr()}")
                if remaining <= 0:
                    raise JsError(f"no reply to {cmd} within {reply_timeout}s:\n{self.stderr()}")
                self._cond.wait(min(remaining, 0.5))
            return self._replies.pop(command_id)

    def stderr(self):
        return "\n".join(self._stderr)

    # Commands

    def connect(self, url, auth=None, auth_provider=None, options=None, wait=True, timeout=10):
        """io(url, {auth, transports: ["websocket"], reconnectionDelay: 100, reconnectionDelayMax: 500, ...options}).

        `auth_provider` (a callable returning a fresh auth dict) is asked on every (re)connect, like a
        dashboard's `auth: (cb) => cb({token: currentToken()})`. Returns the reply: {ok, connected, sid,
        recovered, error: {message, data} | None}; a refused connect is ok False, not an exception.
        """
        if auth_provider is not None:
            self.auth_provider = auth_provider
            auth = {"from_stdin": True}
        return self.command("connect", reply_timeout=timeout + 5, url=url, auth=auth or {}, options=options or {},
                            wait=wait, timeout=int(timeout * 1000))

    def emit(self, event, *args, ack=True, timeout=5):
        """Emit; with `ack` wait for the acknowledgement and return it (one value, None, or a list for several)."""
        reply = self.command("emit", reply_timeout=timeout + 5, event=event, args=list(args), ack=ack,
                             timeout=int(timeout * 1000))
        if not reply.get("ok"):
            raise JsError(f"emit {event!r} failed: {reply.get('error')}", reply)
        if not ack:
            return None
        ack_args = reply.get("args", [])
        if not ack_args:
            return None
        return ack_args[0] if len(ack_args) == 1 else ack_args

    def close_engine(self):
        """Close the underlying transport; the client reconnects by itself (disconnect reason "forced close")."""
        return self._checked("close_engine")

    def state(self):
        """{connected, active, sid, recovered, pid, lastOffset} of the Socket (pid/lastOffset: recovery state)."""
        return self._checked("state")

    def disconnect(self):
        return self._checked("disconnect")

    def connect_again(self):
        """socket.connect() on the same Socket (after a refused connect or a disconnect)."""
        return self._checked("connect_again")

    def _checked(self, cmd, **fields):
        reply = self.command(cmd, **fields)
        if not reply.get("ok"):
            raise JsError(f"{cmd} failed: {reply.get('error')}", reply)
        return reply

    # Records

    def mark(self):
        """A position in the record list, for `wait_for(..., after=mark)` and `events(after=mark)`."""
        with self._cond:
            return len(self._records)

    def records(self, after=0):
        with self._cond:
            return list(self._records[after:])

    def events(self, name=None, after=0):
        """Server events (type "event"), optionally only those named `name`."""
        return [r for r in self.records(after) if r["type"] == "event" and (name is None or r["event"] == name)]

    def payloads(self, name, after=0):
        """The first argument of each `name` event."""
        return [r["args"][0] if r["args"] else None for r in self.events(name, after)]

    def lifecycle(self, name=None, after=0):
        """connect / disconnect / connect_error / reconnect_* records, optionally only `name`."""
        return [r for r in self.records(after) if r["type"] == "lifecycle" and (name is None or r["event"] == name)]

    def wait_for(self, predicate_or_event, timeout=10, count=1, after=0):
        """Wait until `count` records match (an event/lifecycle name, or a predicate on the record dict).

        Returns the matching records so far (at least `count`).
        """
        if callable(predicate_or_event):
            match = predicate_or_event
        else:
            def match(record):
                return record.get("event") == predicate_or_event
        deadline = time.time() + timeout
        with self._cond:
            while True:
                found = [r for r in self._records[after:] if match(r)]
                if len(found) >= count:
                    return found
                remaining = deadline - time.time()
                if remaining <= 0 or self._proc.poll() is not None:
                    seen = [(r["type"], r["event"]) for r in self._records[after:]]
                    raise AssertionError(f"waited {timeout}s for {count} of {predicate_or_event!r}; got "
                                         f"{len(found)}. Seen: {seen}\n{self.stderr()}")
                self._cond.wait(min(remaining, 0.5))

    # Shutdown

    def close(self):
        if self._proc.poll() is None:
            try:
                self.command("exit", reply_timeout=5)
            except JsError:
                pass
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        for thread in self._threads:  # they end at EOF, now that the process is gone
            thread.join(5)
        for stream in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
            try:
                stream.close()
            except (OSError, ValueError):
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
