// The one Socket.IO connection (official client, vendored): token renewal, recovery and the connection state.
// See docs/events.md "Staying connected"; this follows examples/dashboard.js.
import {io} from "/static/vendor/socket.io-client-4.8.1/socket.io.esm.min.js";
import {endSession, freshAccessToken, renewAccessToken, sessionMessage, setRole} from "./api.js";

const FINAL_ERRORS = new Set(["token_missing", "token_invalid", "token_expired", "token_revoked", "wrong_token_type",
                              "user_inactive"]);
const RECOVERED_SHOWN_MS = 5000;

// onState(state, detail): "connecting" | "live" | "reconnecting" | "recovered" | "offline".
// onFresh(): a new server-side session (first connect, or a reconnect that could not be recovered):
// subscribe again. A recovered session keeps its rooms, subscriptions and gets what it missed.
export function openSocket({onState, onFresh, onConnected}) {
  let recoveredTimer = null;
  // `auth` as a function: every (re)connect asks for a fresh token. `recovery: true` makes even the first
  // session recoverable exactly once (offsets from the start; see docs/events.md).
  const socket = io({
    transports: ["websocket", "polling"],
    tryAllTransports: true,
    auth: (cb) => freshAccessToken().then((token) => cb({token, recovery: true}), () => cb({})),
  });
  onState("connecting");

  socket.on("connect", () => {
    clearTimeout(recoveredTimer);
    if (socket.recovered) {
      onState("recovered");
      recoveredTimer = setTimeout(() => socket.connected && onState("live"), RECOVERED_SHOWN_MS);
      return;
    }
    onState("live");
    onFresh();
  });
  socket.on("connected", (info) => {
    setRole(info.user.role);
    onConnected(info);
  });
  socket.on("disconnect", (reason) => {
    clearTimeout(recoveredTimer);
    onState(socket.active ? "reconnecting" : "offline", reason);
  });
  socket.on("connect_error", (error) => {
    const code = error.data && error.data.error;
    if (FINAL_ERRORS.has(code)) {
      endSession(sessionMessage(code, error.message));
      return;
    }
    onState("reconnecting", error.message);
    // The client retries lost connections by itself; a connect the server refused (rate limited,
    // database down) it leaves to us.
    if (!socket.active) setTimeout(() => socket.connect(), 2000 + Math.random() * 2000);
  });
  socket.on("token_expiring", () => renewAccessToken()
    .then((token) => socket.emitWithAck("reauthenticate", {token}))
    // If renewal fails the server closes the transport at expiry; the reconnect then signs in again or ends.
    .catch(() => {}));
  socket.on("session_ended", ({reason, message}) => endSession(sessionMessage(reason, message)));
  return socket;
}

// emitWithAck that throws the server's {ok: false, message} as an Error.
export async function call(socket, event, payload) {
  const ack = await socket.timeout(10000).emitWithAck(event, payload);
  if (!ack || !ack.ok) throw new Error((ack && ack.message) || `${event} failed`);
  return ack;
}
