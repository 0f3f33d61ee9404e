"""A MongoDB that answers the handshake and then never answers anything else.

pymongo's monitor sees a healthy primary (so server selection succeeds), but every command sent
on an application connection waits for ever: the "MongoDB that stops answering" failure. Speaks
just enough of the wire protocol: OP_MSG (2013) and legacy OP_QUERY (2004) for the handshake.
"""
import socket
import struct
import threading
from datetime import datetime, timezone

import bson

OP_REPLY, OP_QUERY, OP_MSG = 1, 2004, 2013
HANDSHAKES = {"hello", "ismaster", "isMaster"}


def hello_reply():
    return {"ismaster": True, "isWritablePrimary": True, "helloOk": True, "maxBsonObjectSize": 16 * 1024 * 1024,
            "maxMessageSizeBytes": 48_000_000, "maxWriteBatchSize": 100_000,
            "localTime": datetime.now(timezone.utc), "logicalSessionTimeoutMinutes": 30, "connectionId": 1,
            "minWireVersion": 0, "maxWireVersion": 21, "readOnly": False, "ok": 1.0}


class SilentMongo:
    """Listens on 127.0.0.1:<port>; answers handshakes only. `commands` counts the unanswered ones."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.uri = f"mongodb://127.0.0.1:{self.port}/?directConnection=true"
        self.commands = []
        self._stop = threading.Event()
        self._conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            while not self._stop.is_set():
                header = _read(conn, 16)
                length, request_id, _, opcode = struct.unpack("<iiii", header)
                body = _read(conn, length - 16)
                command, reply_opcode = _parse(opcode, body)
                if next(iter(command), None) in HANDSHAKES:
                    conn.sendall(_reply(reply_opcode, request_id, hello_reply()))
                else:
                    self.commands.append(next(iter(command), None))  # and never answer
        except (OSError, ConnectionError, struct.error):
            pass

    def stop(self):
        self._stop.set()
        self.sock.close()
        for conn in self._conns:
            try:
                conn.close()
            except OSError:
                pass


def _read(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _parse(opcode, body):
    if opcode == OP_MSG:  # flagBits, then section kind 0 with one document
        doc_len = struct.unpack("<i", body[5:9])[0]
        return bson.decode(body[5:5 + doc_len]), OP_MSG
    if opcode == OP_QUERY:  # flags, cstring collection, skip, return, query document
        end = body.index(b"\x00", 4)
        start = end + 1 + 8
        doc_len = struct.unpack("<i", body[start:start + 4])[0]
        return bson.decode(body[start:start + doc_len]), OP_REPLY
    return {}, OP_MSG


def _reply(opcode, request_id, doc):
    payload = bson.encode(doc)
    if opcode == OP_MSG:
        body = struct.pack("<i", 0) + b"\x00" + payload
    else:
        body = struct.pack("<iqii", 0, 0, 0, 1) + payload
    return struct.pack("<iiii", 16 + len(body), 1, request_id, opcode) + body
