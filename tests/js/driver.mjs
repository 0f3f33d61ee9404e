// The official socket.io-client, driven by pytest (tests/js_client.py) over stdin/stdout, one JSON object a line.
//
// stdin, one command a line; each gets exactly one reply line {"type":"reply","id":<same id>,"ok":true|false,...}:
//   {"id":1,"cmd":"connect","url":"http://127.0.0.1:PORT","auth":{...}|{"from_stdin":true},"options":{...},
//    "wait":true,"timeout":10000}
//       io(url, {auth, transports:["websocket"], reconnectionDelay:100, reconnectionDelayMax:500, ...options}).
//       With "wait" (default) the reply comes after the first `connect` or `connect_error`:
//       {ok, connected, sid, recovered, error:{message,data}|null}. auth {"from_stdin":true} makes the auth a
//       function: each (re)connect prints {"type":"auth_request","request":n} and waits for
//       {"cmd":"auth_reply","request":n,"auth":{...}} (no reply line; "request" may be left out: oldest first).
//   {"id":2,"cmd":"emit","event":"join_room","args":[{...}],"ack":true,"timeout":5000}
//       ack: socket.timeout(timeout).emit(event, ...args, (err, ...ack)) -> {ok:true, args:[...ack]} or
//       {ok:false, error:"operation has timed out" | "socket has been disconnected"}; without ack -> {ok:true}.
//   {"id":3,"cmd":"close_engine"}   socket.io.engine.close(): disconnect reason "forced close", then the client reconnects itself.
//   {"id":4,"cmd":"state"}          {connected, active, sid, recovered, pid: socket._pid, lastOffset: socket._lastOffset}
//   {"id":5,"cmd":"disconnect"}     socket.disconnect() (no reconnection afterwards).
//   {"id":6,"cmd":"connect_again"}  socket.connect() after a disconnect or a refused connect.
//   {"id":7,"cmd":"exit"}           reply, then exit (end of stdin exits too).
//
// Pushed lines (not replies):
//   {"type":"event","event":name,"args":[...],"recovered":bool,"t":ms}       every server event (socket.onAny)
//   {"type":"lifecycle","event":"connect","sid":...,"recovered":bool,"t":ms}
//   {"type":"lifecycle","event":"disconnect","reason":...,"description":...,"t":ms}
//   {"type":"lifecycle","event":"connect_error","message":...,"data":...,"t":ms}
//   {"type":"lifecycle","event":"reconnect_attempt"|"reconnect"|"reconnect_error"|"reconnect_failed",...}
//   {"type":"auth_request","request":n,"t":ms}
//   {"type":"log","message":...}                                              driver-side problems
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

let socket = null;
let authRequests = 0;
const pendingAuth = new Map(); // request number -> callback

function send(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function reply(id, fields) {
  send({ type: "reply", id, ok: true, ...fields });
}

function errorText(err) {
  return err && err.message ? err.message : String(err);
}

function authFunction(cb) {
  const request = ++authRequests;
  pendingAuth.set(request, cb);
  send({ type: "auth_request", request, t: Date.now() });
}

function answerAuth(msg) {
  let request = msg.request;
  if (request === undefined || request === null) {
    request = pendingAuth.keys().next().value; // oldest outstanding request
  }
  const cb = pendingAuth.get(request);
  if (!cb) {
    send({ type: "log", message: `auth_reply for unknown request ${request}` });
    return;
  }
  pendingAuth.delete(request);
  cb(msg.auth || {});
}

function lifecycle(event, fields) {
  send({ type: "lifecycle", event, ...fields, t: Date.now() });
}

function connect(msg) {
  if (socket) {
    socket.offAny();
    socket.disconnect();
    socket = null;
  }
  const auth = msg.auth && msg.auth.from_stdin ? authFunction : msg.auth || {};
  socket = io(msg.url, {
    auth,
    transports: ["websocket"],
    reconnectionDelay: 100,
    reconnectionDelayMax: 500,
    forceNew: true,
    ...(msg.options || {}),
  });
  const s = socket;
  let pending = msg.wait === false ? null : msg.id;
  let timer = null;
  const settle = (fields) => {
    if (pending === null) return;
    clearTimeout(timer);
    reply(pending, fields);
    pending = null;
  };

  s.onAny((event, ...args) => {
    send({ type: "event", event, args, recovered: s.recovered, t: Date.now() });
  });
  s.on("connect", () => {
    lifecycle("connect", { sid: s.id, recovered: s.recovered });
    settle({ connected: true, sid: s.id, recovered: s.recovered, error: null });
  });
  s.on("disconnect", (reason, details) => {
    const description = details && details.description !== undefined ? errorText(details.description) : null;
    lifecycle("disconnect", { reason, description });
  });
  s.on("connect_error", (err) => {
    const error = { message: errorText(err), data: err && err.data !== undefined ? err.data : null };
    lifecycle("connect_error", error);
    settle({ ok: false, connected: false, sid: null, recovered: false, error });
  });
  s.io.on("reconnect_attempt", (attempt) => lifecycle("reconnect_attempt", { attempt }));
  s.io.on("reconnect", (attempt) => lifecycle("reconnect", { attempt }));
  s.io.on("reconnect_error", (err) => lifecycle("reconnect_error", { message: errorText(err) }));
  s.io.on("reconnect_failed", () => lifecycle("reconnect_failed", {}));

  if (pending === null) {
    reply(msg.id, { connected: s.connected, sid: s.id ?? null, recovered: s.recovered, error: null });
  } else {
    timer = setTimeout(
      () => settle({ ok: false, connected: false, sid: null, recovered: false, error: { message: "timeout", data: null } }),
      msg.timeout ?? 10000,
    );
  }
}

function needSocket(msg) {
  if (!socket) {
    send({ type: "reply", id: msg.id, ok: false, error: "not connected: send a connect command first" });
    return false;
  }
  return true;
}

function emit(msg) {
  const args = msg.args || [];
  if (msg.ack === false) {
    socket.emit(msg.event, ...args);
    reply(msg.id, {});
    return;
  }
  socket.timeout(msg.timeout ?? 5000).emit(msg.event, ...args, (err, ...ackArgs) => {
    if (err) {
      send({ type: "reply", id: msg.id, ok: false, error: errorText(err) });
    } else {
      reply(msg.id, { args: ackArgs });
    }
  });
}

function handle(msg) {
  switch (msg.cmd) {
    case "connect":
      return connect(msg);
    case "auth_reply":
      return answerAuth(msg);
    case "emit":
      if (needSocket(msg)) emit(msg);
      return;
    case "close_engine":
      if (!needSocket(msg)) return;
      if (socket.io.engine) socket.io.engine.close();
      return reply(msg.id, {});
    case "state":
      if (!needSocket(msg)) return;
      return reply(msg.id, {
        connected: socket.connected,
        active: socket.active,
        sid: socket.id ?? null,
        recovered: socket.recovered,
        pid: socket._pid ?? null,
        lastOffset: socket._lastOffset ?? null,
      });
    case "disconnect":
      if (socket) socket.disconnect();
      return reply(msg.id, {});
    case "connect_again":
      if (!needSocket(msg)) return;
      socket.connect();
      return reply(msg.id, {});
    case "exit":
      if (socket) socket.disconnect();
      process.stdout.write(JSON.stringify({ type: "reply", id: msg.id, ok: true }) + "\n", () => process.exit(0));
      return;
    default:
      send({ type: "reply", id: msg.id, ok: false, error: `unknown cmd ${msg.cmd}` });
  }
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on("line", (line) => {
  if (!line.trim()) return;
  let msg;
  try {
    msg = JSON.parse(line);
  } catch (err) {
    send({ type: "log", message: `bad JSON: ${errorText(err)}` });
    return;
  }
  try {
    handle(msg);
  } catch (err) {
    send({ type: "reply", id: msg.id, ok: false, error: errorText(err) });
  }
});
lines.on("close", () => {
  if (socket) socket.disconnect();
  process.exit(0);
});
