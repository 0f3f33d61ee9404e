// REST client and the sign-in session: tokens live in sessionStorage (this tab only, kept across reloads).
// The access token is renewed from the refresh token before it expires; a refused refresh ends the session.
const STORE = "citypulse.session";
const RENEW_BEFORE_S = 30;

export class ApiError extends Error {
  constructor(status, body) {
    super(body.message || `HTTP ${status}`);
    this.status = status;
    this.error = body.error || "http_error";
    this.errors = body.errors || null;
  }
}

let session = readStore();
let refreshing = null;
const endListeners = [];

function readStore() {
  try { return JSON.parse(sessionStorage.getItem(STORE)); } catch { return null; }
}

function writeStore() {
  if (session) sessionStorage.setItem(STORE, JSON.stringify(session));
  else sessionStorage.removeItem(STORE);
}

export const currentUser = () => (session ? session.user : null);

export function setRole(role) {  // the server re-reads roles on every request; follow it when it changes
  if (session && session.user.role !== role) {
    session.user.role = role;
    writeStore();
  }
}

export const onSessionEnd = (listener) => endListeners.push(listener);

// The session is over (revoked, expired, signed out elsewhere): forget it and tell the page once.
export function endSession(message) {
  if (!session) return;
  session = null;
  writeStore();
  for (const listener of endListeners) listener(message);
}

async function send(method, path, body, token, raw = false) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
  } catch {
    throw new ApiError(0, {error: "network_error", message: "The server cannot be reached"});
  }
  if (raw && response.ok) return response;
  const type = response.headers.get("Content-Type") || "";
  const data = type.includes("application/json") ? await response.json() : null;
  if (!response.ok) throw new ApiError(response.status, data || {message: `HTTP ${response.status}`});
  return data;
}

export async function signIn(identifier, password) {
  const who = identifier.includes("@") ? {email: identifier} : {username: identifier};
  const tokens = await send("POST", "/api/auth/login", {...who, password});
  session = {access_token: tokens.access_token, refresh_token: tokens.refresh_token, user: tokens.user};
  writeStore();
  return session.user;
}

export async function signOut() {
  if (!session) return;
  const {access_token, refresh_token} = session;
  session = null;
  writeStore();
  // Ends the sign-in session on the server too; if that fails the tokens are at least gone from here.
  await send("POST", "/api/auth/logout", {refresh_token}, access_token).catch(() => {});
}

// Whether a token is close to its expiry: within RENEW_BEFORE_S, or a quarter of its life if shorter.
function dueForRenewal(token) {
  try {
    const claims = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return claims.exp - Date.now() / 1000 < Math.min(RENEW_BEFORE_S, (claims.exp - claims.iat) / 4);
  } catch {
    return true;
  }
}

const SESSION_MESSAGES = {
  token_revoked: "Your session was ended (signed out elsewhere, or your password changed). Please sign in again.",
  token_expired: "Your session expired. Please sign in again.",
  user_inactive: "Your account has been disabled.",
};

export const sessionMessage = (error, fallback) => SESSION_MESSAGES[error] || fallback || "Please sign in again.";

function renew() {
  if (!session) return Promise.reject(new ApiError(401, {error: "signed_out", message: "Signed out"}));
  refreshing ||= send("POST", "/api/auth/refresh", {refresh_token: session.refresh_token})
    .then((tokens) => {
      if (session) { session.access_token = tokens.access_token; writeStore(); }
      return tokens.access_token;
    })
    .catch((error) => {
      if (error.status === 401 || error.status === 403) endSession(sessionMessage(error.error, error.message));
      throw error;
    })
    .finally(() => { refreshing = null; });
  return refreshing;
}

// An access token that is not about to expire (for REST and for each socket (re)connect).
export async function freshAccessToken() {
  if (!session) throw new ApiError(401, {error: "signed_out", message: "Signed out"});
  return dueForRenewal(session.access_token) ? renew() : session.access_token;
}

// The socket's token_expiring asks for a new token even though the current one is still valid.
export const renewAccessToken = () => renew();

export async function api(method, path, body, raw = false) {
  const token = await freshAccessToken();
  try {
    return await send(method, path, body, token, raw);
  } catch (error) {
    if (error.status === 401 && error.error === "token_expired") return send(method, path, body, await renew(), raw);
    if (error.status === 401) endSession(sessionMessage(error.error, error.message));
    throw error;
  }
}

export const get = (path) => api("GET", path);
export const post = (path, body = {}) => api("POST", path, body);
export const patch = (path, body) => api("PATCH", path, body);

// A file download that needs the bearer token (an <a href> can't send it): fetched, then saved from a blob.
export async function download(path, fallbackName) {
  const response = await api("GET", path, undefined, true);
  const disposition = response.headers.get("Content-Disposition") || "";
  const name = (disposition.match(/filename="([^"]+)"/) || [])[1] || fallbackName;
  const url = URL.createObjectURL(await response.blob());
  const link = Object.assign(document.createElement("a"), {href: url, download: name});
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
