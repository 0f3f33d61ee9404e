"""Passwords, JWTs, revocation, and the one decorator that guards views by role."""
import functools
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import bcrypt
import jwt
from flask import current_app, g, request
from flask_limiter.util import get_remote_address

from src import outages
from src.db import get_db
from src.errors import UNAVAILABLE_ERRORS, ApiError
from src.models import revoked_tokens, users
from src.redis_client import UNAVAILABLE, attempt, get_redis

ALGORITHM = "HS256"
ACCESS, REFRESH = "access", "refresh"


class AuthError(ApiError):
    """A token or credential was refused; `message` is safe to show the client."""

    status = 401


# Passwords. bcrypt is deliberately slow (~250 ms at 12 rounds), so it runs in a real OS thread
# (eventlet's tpool) and never on the event loop, where four parallel wrong-password loops
# used to stall every other request. At most BCRYPT_CONCURRENCY hashes run at once and at most
# BCRYPT_QUEUE_MAX wait; past that the caller gets 503 at once instead of a growing queue.

BCRYPT_MAX_BYTES = 72


class PasswordTooLong(ValueError):
    """bcrypt uses only 72 bytes; longer passwords are refused, not silently truncated."""


def bcrypt_gate(app):
    """This app's bcrypt slots and the count of callers waiting for one."""
    gate = app.extensions.get("bcrypt")
    if gate is None:
        gate = app.extensions["bcrypt"] = {"slots": threading.BoundedSemaphore(app.config["BCRYPT_CONCURRENCY"]),
                                           "waiting": 0}
    return gate


def _run_bcrypt(func, *args):
    app = current_app._get_current_object()
    gate = bcrypt_gate(app)
    if not gate["slots"].acquire(blocking=False):
        if gate["waiting"] >= app.config["BCRYPT_QUEUE_MAX"]:
            raise ApiError("Too many sign-ins are being checked right now; try again in a moment", status=503,
                           error="busy")
        gate["waiting"] += 1
        try:
            gate["slots"].acquire()
        finally:
            gate["waiting"] -= 1
    try:
        if _eventlet_patched():
            from eventlet import tpool

            return tpool.execute(func, *args)
        return func(*args)
    finally:
        gate["slots"].release()


def _eventlet_patched():
    patcher = sys.modules.get("eventlet.patcher")  # never import eventlet just to ask
    return patcher is not None and patcher.is_monkey_patched("thread")


def hash_password(password):
    encoded = password.encode("utf-8")
    if len(encoded) > BCRYPT_MAX_BYTES:
        raise PasswordTooLong(f"passwords are limited to {BCRYPT_MAX_BYTES} bytes")
    salt = bcrypt.gensalt(current_app.config["BCRYPT_ROUNDS"])
    return _run_bcrypt(bcrypt.hashpw, encoded, salt).decode("ascii")


def check_password(password, password_hash):
    try:
        encoded, stored = password.encode("utf-8"), password_hash.encode("ascii")
    except (ValueError, UnicodeError, AttributeError):
        return False
    if len(encoded) > BCRYPT_MAX_BYTES:
        return False
    try:
        return _run_bcrypt(bcrypt.checkpw, encoded, stored)
    except ValueError:  # a malformed stored hash
        return False


_DUMMY_HASH = None


def burn_password_check(password):
    """Spend a bcrypt check's time so unknown users and wrong passwords look alike."""
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password("citypulse-timing-equaliser")
    check_password(password, _DUMMY_HASH)


# Tokens. `iat` has microseconds, so a password change revokes every token issued before it,
# even in the same second. Tokens issued together at sign-in share a session id (`sid`), so
# logging out ends the refresh token too, and every access token refreshed from it.

def _secret():
    return current_app.config["JWT_SECRET_KEY"]


def encode_token(user, token_type, session_id=None):
    """Sign a token of `token_type` for `user` in session `session_id`; return (token, claims)."""
    now = time.time()
    ttl = current_app.config["JWT_ACCESS_TTL_S" if token_type == ACCESS else "JWT_REFRESH_TTL_S"]
    claims = {
        "sub": str(user["_id"]),
        "role": user["role"],
        "type": token_type,
        "jti": uuid.uuid4().hex,
        "sid": session_id or uuid.uuid4().hex,
        "iat": round(now, 6),
        "exp": round(now, 6) + ttl,
    }
    return jwt.encode(claims, _secret(), algorithm=ALGORITHM), claims


def issue_tokens(user):
    """The login response body for `user`: an access and a refresh token of one new session."""
    access, claims = encode_token(user, ACCESS)
    refresh, _ = encode_token(user, REFRESH, claims["sid"])
    return {
        "access_token": access,
        "refresh_token": refresh,
        "token_type": "Bearer",
        "expires_in": current_app.config["JWT_ACCESS_TTL_S"],
        "user": user,
    }


def decode_token(token, expected_type, revocation_optional=False):
    """Verify signature, expiry, type and revocation; return the claims or raise AuthError.

    With `revocation_optional`, a revocation store that cannot be reached is skipped (health
    details during an outage), instead of failing the request with 503."""
    if not token:
        raise AuthError("Authentication token is missing", error="token_missing")
    try:
        # Pinning the algorithm list is what refuses "alg: none" and key-confusion tokens.
        claims = jwt.decode(token, _secret(), algorithms=[ALGORITHM],
                            options={"require": ["sub", "role", "type", "jti", "exp", "iat"]})
    except jwt.ExpiredSignatureError:
        raise AuthError("Token has expired", error="token_expired")
    except (jwt.InvalidTokenError, UnicodeError, TypeError):
        raise AuthError("Token is invalid", error="token_invalid")
    if claims.get("type") != expected_type:
        raise AuthError(f"A {expected_type} token is required", error="wrong_token_type")
    try:
        revoked = is_revoked(claims)
    except UNAVAILABLE_ERRORS:
        if not revocation_optional:
            raise
        revoked = False
    if revoked:
        raise AuthError("Token has been revoked", error="token_revoked")
    return claims


def load_user(claims):
    """The user document behind `claims`; refuses deleted or disabled accounts."""
    user = users.get(get_db(), claims["sub"])
    if user is None or not user.get("active", True):
        raise AuthError("User no longer exists or is disabled", error="user_inactive")
    return user


# The role and active flag of each user, re-read at most every USER_CACHE_S, so a demoted or
# disabled user loses the old rights within seconds without a database read per request.
USER_CACHE_S = 5.0
_user_cache = {}


def current_access(claims):
    """(role, active) of the user behind `claims`, from a cache refreshed every USER_CACHE_S."""
    now = time.monotonic()
    cached = _user_cache.get(claims["sub"])
    if cached is None or cached[0] < now:
        user = users.get(get_db(), claims["sub"])
        access = (user["role"], user.get("active", True)) if user else (None, False)
        if len(_user_cache) > 10000:
            _user_cache.clear()
        cached = _user_cache[claims["sub"]] = (now + USER_CACHE_S, access)
    return cached[1]


def forget_user(user_id):
    """Drop a user's cached role after an admin changed it (other processes catch up within seconds)."""
    _user_cache.pop(str(user_id), None)


# Revocation. MongoDB's `revoked_tokens` is the record; Redis, when configured, is a shared copy
# that answers without a database read. Redis may be down, or come back empty after a restart:
# - every revocation is written to MongoDB, and to Redis when it answers; one that missed Redis
#   is marked `pending_redis` and copied over by `sync_revocations` when Redis is back;
# - Redis answers only while it holds the marker key written after a full load from MongoDB, so
#   a restarted, empty Redis sends checks to MongoDB until `sync_revocations` reloads it.

def _key(kind, ident):
    return f"{current_app.config['RATELIMIT_KEY_PREFIX']}:{kind}:{ident}"


def _redis_set_many(entries):
    """Copy revocation entries to Redis; True if Redis took them."""
    now = datetime.now(timezone.utc)

    def write(client):
        pipe = client.pipeline(transaction=False)
        for entry in entries:
            ttl = max(1, int((entry["expires_at"] - now).total_seconds()))
            pipe.set(_redis_key_of(entry), entry.get("cutoff", "1"), ex=ttl)
        pipe.execute()
        return True

    return attempt(write) is True


def _redis_key_of(entry):
    kind, _, ident = entry["jti"].partition(":")
    if kind == "user":
        return _key("revoked-user", ident)
    if kind == "session":
        return _key("revoked-session", ident)
    return _key("revoked", entry["jti"])


def _revoke(jti, expires_at, **fields):
    entry = dict(fields, jti=jti, expires_at=expires_at)
    synced = _redis_set_many([entry])
    revoked_tokens.put(get_db(), jti, expires_at, pending_redis=not synced, **fields)


def revoke(claims):
    """Revoke one token until it would have expired anyway."""
    _revoke(claims["jti"], datetime.fromtimestamp(claims["exp"], timezone.utc))


def revoke_session(claims):
    """Revoke every token of the sign-in session `claims` belongs to (logout)."""
    expires_at = datetime.now(timezone.utc) + timedelta(seconds=current_app.config["JWT_REFRESH_TTL_S"])
    if claims.get("sid"):
        _revoke(f"session:{claims['sid']}", expires_at)
    revoke(claims)  # the token itself too: tokens issued before session ids existed have no `sid`


def revoke_user_tokens(user_id):
    """Revoke every token of `user_id` issued before now (password change, disable, revoke-sessions)."""
    expires_at = datetime.now(timezone.utc) + timedelta(seconds=current_app.config["JWT_REFRESH_TTL_S"])
    _revoke(f"user:{user_id}", expires_at, user_id=str(user_id), cutoff=round(time.time(), 6))
    forget_user(user_id)


# A process trusts Redis for revocation checks only once it has synced Redis itself since the
# last Redis outage it saw: until then a revocation made during the outage (here or in another
# process) may be missing from Redis, even one that kept its data (AOF). Every process pings
# Redis every 2 s (services.watchdog), so each sees an outage and syncs after it; requests
# meanwhile read MongoDB, and never do the sync themselves.

def _sync_state(app):
    return app.extensions.setdefault("revocation_sync", {"outages_seen": None})


def is_revoked(claims):
    """True if the token, its session, or all of its user's older tokens were revoked."""
    return bool(revoked_among([claims]))


def revoked_among(claims_list):
    """The jtis of these tokens that were revoked: one Redis MGET, or one MongoDB query, for all of them."""
    tokens = {c["jti"]: (c["jti"], c["sub"], c["iat"], c.get("sid")) for c in claims_list}
    if not tokens:
        return set()
    app = current_app._get_current_object()
    state = _sync_state(app)
    if get_redis(app) is not None and state["outages_seen"] == outages.redis.outages_total:
        keys = [_key("revocations", "loaded")]
        for jti, user_id, _, session_id in tokens.values():
            keys += [_key("revoked", jti), _key("revoked-user", user_id), _key("revoked-session", session_id or "-")]
        marks = attempt(lambda client: client.mget(keys))
        if marks is not UNAVAILABLE and marks[0] is not None:
            revoked = set()
            for n, (jti, _, issued_at, _) in enumerate(tokens.values()):
                token_mark, user_cutoff, session_mark = marks[1 + 3 * n:4 + 3 * n]
                if (token_mark is not None or session_mark is not None
                        or (user_cutoff is not None and issued_at < float(user_cutoff))):
                    revoked.add(jti)
            return revoked
        if marks is not UNAVAILABLE:  # Redis answered without the marker: emptied behind our back
            state["outages_seen"] = None
    return revoked_tokens.revoked_among(get_db(), list(tokens.values()))


def sync_revocations(app):
    """Copy to Redis what it lacks (everything after a restart, or the entries that missed it);
    from then on this process trusts Redis for revocation checks. Returns how many were copied."""
    if get_redis(app) is None:
        return 0
    seen = outages.redis.outages_total
    with app.app_context():
        db = get_db()
        loaded = attempt(lambda client: client.exists(_key("revocations", "loaded")))
        if loaded is UNAVAILABLE:
            return 0
        copied = 0
        for batch in (revoked_tokens.pending_redis(db) if loaded else revoked_tokens.unexpired(db)):
            if not _redis_set_many(batch):
                return copied
            revoked_tokens.mark_synced(db, [entry["jti"] for entry in batch])
            copied += len(batch)
        if not loaded and attempt(lambda client: client.set(_key("revocations", "loaded"), "1")) is UNAVAILABLE:
            return copied
        if not outages.redis.is_down:
            _sync_state(app)["outages_seen"] = seen
        return copied


# Request helpers

def bearer_token():
    """The token from `Authorization: Bearer ...`, or None."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authenticate_request():
    """Verify the bearer access token and keep its claims in g.token_claims."""
    g.token_claims = decode_token(bearer_token(), ACCESS)
    return g.token_claims


def current_user():
    """The caller's user document, loaded once per request."""
    if "user" not in g:
        g.user = load_user(g.token_claims)
    return g.user


def authorize(*roles):
    """Authenticate the request and require one of `roles` (any role if none); return the claims.

    The role is the account's current one, not the one the token was issued with."""
    claims = authenticate_request()
    role, active = current_access(claims)
    if not active:
        raise AuthError("User no longer exists or is disabled", error="user_inactive")
    claims = g.token_claims = dict(claims, role=role)
    if roles and role not in roles:
        raise AuthError(f"This action requires role: {' or '.join(roles)}", status=403, error="forbidden")
    return claims


def roles_required(*roles):
    """Guard a view: a valid access token, and one of `roles` if any are given."""
    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            authorize(*roles)
            return view(*args, **kwargs)
        return wrapper
    return decorator


auth_required = roles_required()


def default_rate_limit():
    return current_app.config["RATELIMIT_DEFAULT"]


def rate_limit_key():
    """Rate-limit per user when a valid token is presented, per client IP otherwise."""
    token = bearer_token()
    if token:
        try:
            claims = jwt.decode(token, _secret(), algorithms=[ALGORITHM])
            return f"user:{claims['sub']}"
        except (jwt.InvalidTokenError, KeyError, UnicodeError, TypeError):
            pass
    return f"ip:{get_remote_address()}"


def token_subject(token):
    """The user a correctly signed token names, expired or not (a rate-limit key); None otherwise."""
    if not isinstance(token, str) or not token:
        return None
    try:
        return str(jwt.decode(token, _secret(), algorithms=[ALGORITHM], options={"verify_exp": False})["sub"])
    except (jwt.InvalidTokenError, UnicodeError, TypeError, KeyError):
        return None


def renewal_claims(token, user_id):
    """The claims of a fresh access token that renews a socket session of `user_id`; raises AuthError."""
    claims = decode_token(token, ACCESS)
    if claims["sub"] != user_id:
        raise AuthError("The token belongs to another user", error="forbidden", status=403)
    load_user(claims)  # refuses a disabled account
    return claims


def socket_identity(auth, query_token=None):
    """The claims of a Socket.IO connect's token, from `auth={'token': ...}` or `?token=`; raises AuthError."""
    token = auth.get("token") if isinstance(auth, dict) else None
    return decode_token(token or query_token, ACCESS)
