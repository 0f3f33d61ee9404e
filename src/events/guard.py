"""The boundary between the Socket.IO wire and our handlers.

python-socketio dispatches a client EVENT named `connect` or `disconnect` to the real connect
and disconnect handlers: a client could wipe its own session record while staying in its rooms,
or re-run authentication outside the event budget. And a malformed packet raised inside the
library, which logged a traceback per packet. This module, installed once per server:
- routes every event whose name is not a registered client event (reserved names included)
  to the catch-all handler, which refuses it like any unknown event, within the event budget;
- records whether the client asked for an ack (python-socketio hides it from handlers);
- turns a packet the library cannot parse into a counted fault and a closed connection
  (as the Node server does), never a traceback;
- adds the session's `pid` to the CONNECT reply (connection state recovery; python-socketio
  sends only `sid`).
"""
import threading

from socketio import packet

from src.events import sweeper
from src.realtime import broadcast, sessions

# Names registered with handlers.client_event; nothing else reaches a handler by name.
CLIENT_EVENTS = set()
UNKNOWN_EVENT = "*"
BINARY_PACKETS = (str(packet.BINARY_EVENT), str(packet.BINARY_ACK))
# Set around each event: did the client ask for an ack?
event_context = threading.local()


def install(server, max_backlog=512):
    """Wrap the server's event dispatch, packet decoding and sending (idempotent)."""
    if getattr(server, "_citypulse_guarded", False):
        return
    _guard_events(server)
    _guard_packets(server)
    _announce_pid(server)
    _bound_backlog(server, max_backlog)
    server._citypulse_guarded = True


def _guard_events(server):
    original = server._handle_event_internal

    def dispatch(srv, sid, eio_sid, data, namespace, id):
        event_context.ack_requested = id is not None
        try:
            name = data[0] if data else None
            if isinstance(name, str) and name in CLIENT_EVENTS:
                return original(srv, sid, eio_sid, data, namespace, id)
            catch_all = srv.handlers.get(namespace, {}).get(UNKNOWN_EVENT)
            if catch_all is None:
                return None
            shown = name if isinstance(name, str) else repr(name)
            result = catch_all(shown[:64], sid, *data[1:2])
            if id is not None:
                srv._send_packet(eio_sid, srv.packet_class(packet.ACK, namespace=namespace, id=id, data=[result]))
            return None
        finally:
            event_context.ack_requested = False

    server._handle_event_internal = dispatch


def _guard_packets(server):
    original = server.eio.handlers["message"]

    def receive(eio_sid, data):
        if not isinstance(data, str) or data[:1] in BINARY_PACKETS:
            # Our events are JSON. A binary packet may announce up to a billion attachments that
            # python-socketio then buffers without bound, outside any event budget.
            sessions.record_fault(server.manager.sid_from_eio_sid(eio_sid, "/"), "binary_packet", eio_sid)
            sweeper.close_transport(server, eio_sid)
            return None
        try:
            return original(eio_sid, data)
        except Exception:  # the library could not decode what the client sent
            sid = server.manager.sid_from_eio_sid(eio_sid, "/")
            sessions.record_fault(sid, "malformed_packet", eio_sid)
            sweeper.close_transport(server, eio_sid)
            return None

    server.eio.on("message", receive)


def _announce_pid(server):
    original = server._send_packet

    def send_packet(eio_sid, pkt):
        if pkt.packet_type == packet.CONNECT and isinstance(pkt.data, dict) and "sid" in pkt.data:
            sid = pkt.data["sid"]
            pid = sessions.pending_pids.pop(sid, None)
            if pid is not None:
                pkt.data = dict(pkt.data, pid=pid)
            result = original(eio_sid, pkt)
            sessions.finish_recovery(sid)  # missed packets and rooms after the CONNECT reply
            return result
        return original(eio_sid, pkt)

    server._send_packet = send_packet


SLOW_CONSUMER_GRACE_S = 2.0  # time to read the `slow_consumer` event before the connection closes
_slow = set()  # engine.io sids told they are slow, until their connection is closed


def _bound_backlog(server, max_backlog):
    """A connection's outbound queue holds at most `max_backlog` packets: past it the client gets
    `slow_consumer` and is disconnected, instead of growing the server's memory without bound."""
    original = server._send_eio_packet

    def send_eio_packet(eio_sid, pkt):
        socket = server.eio.sockets.get(eio_sid)
        if socket is None or socket.queue.qsize() < max_backlog:
            return original(eio_sid, pkt)
        if eio_sid not in _slow:
            _slow.add(eio_sid)
            sid = server.manager.sid_from_eio_sid(eio_sid, "/")
            sessions.record_fault(sid, "slow_consumer", eio_sid)
            sessions.slow_consumers_total += 1
            broadcast.emit_slow_consumer(eio_sid, {
                "reason": "backlog", "backlog": socket.queue.qsize(), "limit": max_backlog,
                "message": "You are not reading fast enough; subscribe_stream sends coalesced frames instead"},
                original)
            server.start_background_task(_close_later, server, eio_sid)
        return None

    server._send_eio_packet = send_eio_packet


def _close_later(server, eio_sid):
    server.sleep(SLOW_CONSUMER_GRACE_S)
    sweeper.close_transport(server, eio_sid, shut_down=True)
    _slow.discard(eio_sid)
