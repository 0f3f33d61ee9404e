// A live CityPulse dashboard with the official Socket.IO client, for a whole shift.
//   npm install socket.io-client@4.8.1 && node dashboard.js http://localhost:5000
// It signs in, renews its access token before it expires, and survives reconnects: after a short
// disconnect the server restores its rooms and alert subscription and replays what it missed.
const { io } = require("socket.io-client");

const BASE = process.argv[2] || "http://localhost:5000";
const EMAIL = process.env.CITYPULSE_EMAIL || "admin@smartcity.com";
const PASSWORD = process.env.CITYPULSE_PASSWORD || "admin123";
let refreshToken = null;

async function post(path, body) {
  const response = await fetch(BASE + path, {method: "POST", headers: {"content-type": "application/json"},
                                             body: JSON.stringify(body)});
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

async function freshAccessToken() {  // the refresh token lasts days; an access token minutes
  if (refreshToken) {
    try { return (await post("/api/auth/refresh", {refresh_token: refreshToken})).access_token; } catch (e) { /* sign in */ }
  }
  const tokens = await post("/api/auth/login", {email: EMAIL, password: PASSWORD});
  refreshToken = tokens.refresh_token;
  return tokens.access_token;
}

// `auth` as a function: every (re)connect asks for a fresh token.
const socket = io(BASE, {transports: ["websocket"],
                         auth: (cb) => freshAccessToken().then((token) => cb({token}), () => cb({}))});

socket.on("connect", () => {
  if (socket.recovered) return;  // rooms, subscription and missed events came back by themselves
  socket.emitWithAck("join_room", {room: "traffic_monitoring"})
    .then(() => socket.emitWithAck("subscribe_alerts", {severity_levels: ["high", "critical"]}))
    .catch((error) => console.error(`subscribing failed: ${error.message}`));  // the next connect retries
});
socket.on("token_expiring", () => freshAccessToken()
  .then((token) => socket.emitWithAck("reauthenticate", {token}))  // same session, new expiry: nothing missed
  .catch((error) => console.error(`renewal failed: ${error.message}`)));  // at expiry: reconnect, then recover
// The client retries lost connections by itself; a refused connect (e.g. rate-limited) it leaves to us.
socket.on("connect_error", () => { if (!socket.active) setTimeout(() => socket.connect(), 2000); });
socket.on("session_ended", ({reason}) => { console.error(`session ended: ${reason}`); process.exit(1); });
socket.onAny((event, payload) => console.log(JSON.stringify({event, payload, recovered: socket.recovered})));
