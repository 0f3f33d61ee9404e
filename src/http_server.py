"""The HTTP server: eventlet.wsgi with timeouts, or Werkzeug in threading mode.

eventlet.wsgi on its own never times a connection out, so sockets that trickle a header line
now and then (or send nothing) hold a `MAX_CONNECTIONS` slot for ever. `GuardedProtocol` adds,
like nginx's client_header_timeout / keepalive_timeout / client_body_timeout:

- an idle timeout while a connection waits for its first or next request,
- a total deadline for the request line and headers, from their first byte,
- a timeout between body reads (answered 408).

A WebSocket drops the timeouts once its handshake succeeded: engine.io pings it and closes dead
ones itself. Long-polling is unaffected: its wait is in the app, not a socket read.

`dechunk` hands chunked request bodies to the app as bodies of known length, which both
servers need (see there). `patch_websocket` keeps one hostile WebSocket from freezing the
event loop or filling memory (see there).
"""
import io
import json
import socket

from engineio.exceptions import EngineIOError
from werkzeug.exceptions import RequestTimeout
from werkzeug.wrappers import Response

from src.errors import error_body

# eventlet's default backlog of 50 drops connection attempts past it (clients retry after 1 s,
# 3 s, ...) while every slot is busy; let bursts queue in the kernel instead.
LISTEN_BACKLOG = 1024

_stats = {"open_connections": 0, "header_timeouts": 0, "idle_timeouts": 0, "body_timeouts": 0,
          "max_connections": None,
          # WebSocket packets written at once by the sender (`direct_writes`) or handed to the
          # connection's writer greenlet because something was ahead of them (`queued_writes`)
          "direct_writes": 0, "queued_writes": 0}


def stats():
    """Connection counters of this process's eventlet server (max_connections is None when not serving on it)."""
    return dict(_stats)


def serve(app):
    """Serve app on HOST:PORT until the process ends; one line on stderr and exit 1 if it cannot listen."""
    config = app.config
    use_eventlet = config["SOCKETIO_ASYNC_MODE"] == "eventlet"
    sock = _listen(config["HOST"], config["PORT"], use_eventlet)
    host, port = sock.getsockname()[:2]
    app.logger.info("CityPulse %s (%s, %s) listening on http://%s:%s", config["VERSION"], config["ENV_NAME"],
                    config["SOCKETIO_ASYNC_MODE"], host, port)
    site = dechunk(app, config["MAX_CONTENT_LENGTH"])
    if use_eventlet:
        import eventlet.wsgi

        patch_websocket()
        patch_engineio_socket()
        _stats["max_connections"] = config["MAX_CONNECTIONS"]
        protocol = make_protocol(config["HTTP_HEADER_TIMEOUT_S"], config["HTTP_IDLE_TIMEOUT_S"],
                                 config["HTTP_BODY_TIMEOUT_S"], config["SOCKET_SEND_BUFFER_BYTES"])
        # max_size: eventlet caps connections at 1024 otherwise. debug=False: eventlet's own 500s
        # would carry a traceback to the client. log_output=False: no access log, as before.
        eventlet.wsgi.server(sock, site, max_size=config["MAX_CONNECTIONS"], protocol=protocol,
                             log_output=False, debug=False)
    else:
        from werkzeug.serving import make_server

        # The debugging escape hatch: Werkzeug's threaded server (no timeouts) on the socket
        # bound above, so a taken port fails the same way.
        server = make_server(host, port, site, threaded=True, fd=sock.fileno())
        sock.close()  # Werkzeug serves on its own duplicate of the descriptor
        server.serve_forever()


def _listen(host, port, use_eventlet):
    """A listening socket on host:port, or SystemExit with one line naming HOST and PORT."""
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        if use_eventlet:
            import eventlet

            # eventlet.listen sets SO_REUSEPORT by default: a second server on a taken port would
            # then bind quietly and the kernel would split connections between the two.
            return eventlet.listen(address, family, backlog=LISTEN_BACKLOG, reuse_port=False)
        return socket.create_server(address, family=family, backlog=LISTEN_BACKLOG)
    except OSError as exc:
        raise SystemExit(f"CityPulse cannot listen on HOST={host} PORT={port}: {exc.strerror or exc}; "
                         "stop whatever holds it or set PORT (or HOST) to a free address") from None


def dechunk(app, limit):
    """WSGI middleware: a chunked request body reaches the app as a body of known length."""

    def site(environ, start_response):
        if environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
            # Werkzeug reads a body of unknown length as empty unless the server sets
            # wsgi.input_terminated (eventlet doesn't), and with the flag it cuts the body at
            # MAX_CONTENT_LENGTH instead of answering 413. So, like nginx in front, read it here
            # (both servers decode the chunks) and pass it on with a Content-Length; past the
            # limit, limit + 1 bytes is enough for Werkzeug to answer 413 in the app's JSON shape.
            try:
                body = environ["wsgi.input"].read(None if limit is None else limit + 1)
            except BodyTimeout as exc:
                return _error(exc.code, **exc.data)(environ, start_response)
            except (OSError, ValueError):  # a malformed chunk, or the client left mid-body
                return _error(400, "The chunked request body is malformed or incomplete")(environ, start_response)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            del environ["HTTP_TRANSFER_ENCODING"]
        return app(environ, start_response)

    return site


def _error(status, message, error=None):
    """A response in the app's JSON error shape, for answers given before the app runs."""
    return Response(json.dumps(error_body(status, message, error)), status, mimetype="application/json")


class BodyTimeout(RequestTimeout, EngineIOError):
    """The request body stalled past HTTP_BODY_TIMEOUT_S; the connection is closed after the answer.

    As a RequestTimeout, Flask's error handlers answer 408 in the JSON shape; as an EngineIOError,
    engine.io's long-polling POST drops the session quietly instead of logging a traceback.
    """

    data = {"error": "request_timeout", "message": "The request body stalled; it must arrive without long pauses"}


class _TimedInput:
    """wsgi.input that counts a body read timeout, marks the connection to close and raises BodyTimeout."""

    def __init__(self, body, handler):
        self._body = body
        self._handler = handler

    def _guard(self, read, *args):
        try:
            return read(*args)
        except socket.timeout:
            _stats["body_timeouts"] += 1
            self._handler.close_connection = 1  # the stream is mid-body: never reuse it
            raise BodyTimeout() from None

    def read(self, *args):
        return self._guard(self._body.read, *args)

    def readline(self, *args):
        return self._guard(self._body.readline, *args)

    def readlines(self, *args):
        return self._guard(self._body.readlines, *args)

    def __iter__(self):
        return iter(self.read, b"")

    def __getattr__(self, name):
        return getattr(self._body, name)


def apply_mask(data, mask, length=None, offset=0):
    """XOR the first `length` bytes of data with the 4-byte WebSocket mask, starting at mask[offset % 4].

    Same contract as eventlet's RFC6455WebSocket._apply_mask (bytes out; data may be bytes,
    bytearray or memoryview; mask 4 ints as a tuple, list or bytes), but as a few big-integer
    operations in C instead of one Python step per byte: 0.24 ms instead of 30 ms for 60 kB.
    """
    if length is None:
        length = len(data)
    if length <= 0:
        return b""
    chunk = bytes(data[:length])
    if len(chunk) < length:  # eventlet's loop raises IndexError past the data; so do we
        raise IndexError("mask length exceeds the data")
    shift = offset % 4
    key = bytes(mask[shift:4]) + bytes(mask[:shift])
    key = (key * (length // 4 + 1))[:length]
    return (int.from_bytes(chunk, "big") ^ int.from_bytes(key, "big")).to_bytes(length, "big")


# A WebSocket message may arrive in fragments (continuation frames); no client of ours fragments
# at all, so this many is plenty, and it bounds the list eventlet keeps per message.
WEBSOCKET_MAX_FRAGMENTS = 1024


def patch_websocket():
    """Keep one hostile WebSocket from freezing or exhausting the server; idempotent.

    eventlet's WebSocket code (engine.io builds its WebSockets with it) lets a single
    unauthenticated connection take the whole process down. On eventlet's classes:

    - Its RFC6455WebSocket unmasks each received chunk one byte at a time in Python (about
      0.5 s of CPU per MB), and a green socket's recv returns at once, without yielding to the
      hub, while data is waiting. So a client sending big frames non-stop held the only event
      loop: /api/health/live took as long as the flood lasted. `_apply_mask` becomes
      `apply_mask` above (same results, C speed), and `_recv_frame` yields to the hub before
      each frame, so a client that always has another frame ready takes turns with the other
      greenlets (HTTP requests, pings, emits, the handshake sweeper that closes it).
    - Once the server closed a WebSocket (engine.io's writer sent the Close frame, as when the
      handshake sweeper drops a client that never authenticated), eventlet still read on as long
      as frames kept coming, so a flooder outlived every close (measured: swept every 2.5 s, to
      no effect). `_recv_frame` now ends the connection there instead.
    - eventlet caps each frame at max_frame_length (engine.io's max_http_buffer_size) but not a
      message made of continuation frames: endless fragments grew memory by 1.2 GB in 10 s,
      and engine.io only checks the size once a message is complete. `_recv_frame` now fails
      the connection (close code 1009, as for a frame too big) once a message passes
      max_frame_length bytes or WEBSOCKET_MAX_FRAGMENTS frames.
    - eventlet also accepts the pre-RFC 6455 drafts (hixie-75/76), whose unterminated message
      it buffers without limit, searching it all again on every read: one such socket froze
      the loop. No browser has spoken them since 2012; they are now refused with 400.
    """
    from eventlet import sleep
    from eventlet.websocket import (BadRequest, ConnectionClosedError, FailedConnectionError, RFC6455WebSocket,
                                    WebSocketWSGI)

    if "_citypulse_originals" in vars(RFC6455WebSocket):
        return
    recv_frame = RFC6455WebSocket._recv_frame

    def _recv_frame(self, message=None):
        sleep(0)  # a turn for every other greenlet before this connection reads on
        if self.websocket_closed:  # our Close frame went out: nothing more to read
            raise ConnectionClosedError()
        seen = len(message.data) if message is not None else 0
        frame = recv_frame(self, message)
        if frame.opcode & 8:  # a control frame (at most 125 bytes), handled on its own
            return frame
        if frame is not message:  # the first frame of a message
            seen = 0
        # Counted as it grows (chunks this frame added), so many fragments cost no rescans.
        frame.citypulse_bytes = getattr(frame, "citypulse_bytes", 0) + sum(map(len, frame.data[seen:]))
        frame.citypulse_frames = getattr(frame, "citypulse_frames", 0) + 1
        if frame.citypulse_bytes > self.max_frame_length or frame.citypulse_frames > WEBSOCKET_MAX_FRAGMENTS:
            raise FailedConnectionError(1009, "Fragmented message is above the length limit")
        return frame

    def _refuse_legacy_request(self, environ):
        raise BadRequest()

    RFC6455WebSocket._citypulse_originals = {"_apply_mask": RFC6455WebSocket._apply_mask,
                                             "_recv_frame": recv_frame,
                                             "_handle_legacy_request": WebSocketWSGI._handle_legacy_request}
    RFC6455WebSocket._apply_mask = staticmethod(apply_mask)
    RFC6455WebSocket._recv_frame = _recv_frame
    WebSocketWSGI._handle_legacy_request = _refuse_legacy_request


WRITE_BATCH = 16  # packets an engine.io writer takes from its queue at a time
class RawFrame(bytes):
    """The unsent end of a WebSocket frame written in part: its writer sends it as it is."""


class _RawPacket:
    """Queued for a writer in place of an engine.io packet; `encode` gives the raw bytes back."""

    def __init__(self, data):
        self.data = RawFrame(data)

    def encode(self):
        return self.data


def patch_engineio_socket():
    """Make engine.io's per-connection WebSocket writer cheap and bounded. Idempotent.

    - engine.io queues every packet and wakes the connection's writer greenlet to write it. A
      reading sent to 1000 dashboards thus costs 1000 queue wake-ups and greenlet switches (about
      50-150 µs of CPU each, when readings arrive one at a time). When nothing is queued or being
      written for a connection, `send` now writes the WebSocket frame itself, without blocking,
      and the frame is built once per packet for every recipient (per connection only with
      permessage-deflate, whose compressor has per-connection state). What the kernel does not
      take is queued, so order is kept and a slow reader still fills its queue.
    - engine.io's writer takes every queued packet at once, then blocks writing them to a client
      that does not read: the backlog then sits in the writer, unbounded and invisible. Taking at
      most WRITE_BATCH at a time leaves it in the queue, where SOCKET_MAX_BACKLOG bounds it.
    """
    from engineio import exceptions as eio_exceptions
    from engineio.socket import Socket

    if getattr(Socket, "_citypulse_originals", None):
        return
    originals = {"poll": Socket.poll, "send": Socket.send, "_websocket_handler": Socket._websocket_handler}

    def poll(self):
        queue_empty = self.server.get_queue_empty_exception()
        while True:
            try:
                packets = [self.queue.get(timeout=self.server.ping_interval + self.server.ping_timeout)]
                self.queue.task_done()
                break
            except queue_empty:
                # engine.io ends the connection when nothing was queued for a ping period, which
                # used to mean a dead peer. With direct writes an idle queue is the normal case
                # (pings go out directly too); a dead peer is closed by the ping check instead.
                if self.closed:
                    raise eio_exceptions.QueueEmpty()
        if packets == [None]:
            return []
        while len(packets) < WRITE_BATCH:
            try:
                pkt = self.queue.get(block=False)
            except queue_empty:
                break
            self.queue.task_done()
            if pkt is None:
                self.queue.put(None)
                break
            packets.append(pkt)
        return packets

    def websocket_handler(self, ws):
        send = ws.send

        def send_raw_or_packed(message, **kw):
            if type(message) is RawFrame:
                return ws._send(message)
            return send(message, **kw)

        ws.send = send_raw_or_packed
        # Only a plain TCP socket: an SSL socket must retry a partial write with the same buffer.
        fd = getattr(ws.socket, "fd", None)
        self._citypulse_ws = ws if hasattr(fd, "send") and not hasattr(fd, "do_handshake") else None
        try:
            return originals["_websocket_handler"](self, ws)
        finally:
            self._citypulse_ws = None

    def send(self, pkt):
        ws = self.__dict__.get("_citypulse_ws")
        # Writable now only if nothing is ahead of this packet: nothing queued, no frame being
        # written (the writer holds the lock while it writes; it takes packets off the queue only
        # in its own turn and writes them before it yields), and the connection is WebSocket-only.
        if (ws is None or self.queue.qsize() or ws._sendlock.locked() or not self.upgraded or self.upgrading
                or self.closed or ws.websocket_closed):
            _stats["queued_writes"] += 1
            return originals["send"](self, pkt)
        if not self.check_ping_timeout():
            return
        if ws.extensions.get("permessage-deflate"):
            frame = ws._pack_message(pkt.encode())
        else:
            frame = pkt.__dict__.get("_citypulse_frame")
            if frame is None:
                frame = pkt._citypulse_frame = ws._pack_message(pkt.encode())
        try:
            sent = ws.socket.fd.send(frame)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:  # the peer is gone: the writer fails the same way and ends the connection
            _stats["queued_writes"] += 1
            return originals["send"](self, pkt)
        _stats["direct_writes"] += 1
        if sent < len(frame):
            self.queue.put(_RawPacket(frame[sent:]))

    Socket._citypulse_originals = originals
    Socket.poll = poll
    Socket.send = send
    Socket._websocket_handler = websocket_handler


def abort_websocket(eio_socket):
    """Shut down a WebSocket's TCP connection at once, even while its writer is blocked writing to a
    client that stopped reading (closing the engine.io socket alone waits for that write for ever)."""
    ws = getattr(eio_socket, "_citypulse_ws", None)
    if ws is not None:
        try:
            ws.socket.shutdown(socket.SHUT_RDWR)
        except OSError:  # already closed
            pass


def make_protocol(header_s, idle_s, body_s, send_buffer=0):
    """An eventlet.wsgi protocol class with these timeouts, in seconds."""
    from eventlet.wsgi import HttpProtocol  # here, so threading mode never imports eventlet

    return type("CityPulseProtocol", (GuardedProtocol, HttpProtocol),
                {"header_timeout": header_s, "idle_timeout": idle_s, "body_timeout": body_s,
                 "send_buffer": send_buffer})


class GuardedProtocol:
    """Mixed into eventlet's HttpProtocol: an idle timeout, a header deadline and a body read timeout."""

    header_timeout = idle_timeout = body_timeout = None  # set by make_protocol
    send_buffer = 0
    _deadline = None

    def __init__(self, conn_state, server):
        _stats["open_connections"] += 1
        try:
            super().__init__(conn_state, server)  # serves every request of the connection
        finally:
            _stats["open_connections"] -= 1

    def handle_one_request(self):
        """One request; a header deadline that fires closes the connection without an answer."""
        import eventlet

        self._deadline = None
        try:
            super().handle_one_request()
        except eventlet.Timeout as exc:
            if exc is not self._deadline:
                raise
            _stats["header_timeouts"] += 1
            self.close_connection = 1
        finally:
            self._cancel_deadline()

    def _read_request_line(self):
        """Wait up to idle_timeout for a request's first byte, then start the header deadline."""
        import eventlet

        if self.rfile.closed:
            return super()._read_request_line()
        try:
            self.connection.settimeout(self.idle_timeout)
            if not self.rfile.peek(1):  # the client closed
                return ""
        except socket.timeout:
            _stats["idle_timeouts"] += 1
            return ""  # eventlet closes quietly on an empty request line
        except OSError:  # reset by the peer
            return ""
        # A total deadline, not a per-read timeout: a header line every few seconds would reset the
        # latter for ever. Blocking reads meanwhile; parse_request cancels it.
        self.connection.settimeout(None)
        self._deadline = eventlet.Timeout(self.header_timeout)
        return super()._read_request_line()

    def parse_request(self):
        """Read the headers within the deadline, then time out body reads (and response writes)."""
        try:
            ok = super().parse_request()
        finally:
            self._cancel_deadline()
        if ok:
            self.connection.settimeout(self.body_timeout)
        return ok

    def get_environ(self):
        """eventlet's environ, with body reads guarded and no timeouts once a WebSocket took over."""
        env = super().get_environ()
        env["wsgi.input"] = _TimedInput(env["eventlet.input"], self)  # eventlet.input stays raw for eventlet
        set_idle = env["eventlet.set_idle"]

        def switching_protocols():
            # eventlet.websocket calls this once its handshake succeeded. From here the socket
            # speaks WebSocket, whose liveness engine.io owns (a ping every 25 s, dead peers
            # closed), so no HTTP timeout may apply; a failed handshake keeps them.
            self.connection.settimeout(None)
            if self.send_buffer:
                # A fixed kernel send buffer (the OS grows it to megabytes per connection): less
                # memory per connection, and a client that stops reading shows as a backlog soon.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)
            set_idle()

        env["eventlet.set_idle"] = switching_protocols
        return env

    def _cancel_deadline(self):
        # Kept after cancelling: handle_one_request tells its own deadline from other Timeouts.
        if self._deadline is not None:
            self._deadline.cancel()
