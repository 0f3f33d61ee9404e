"""Passwords, JWTs, revocation, and the one decorator that guards views by role."""
import functools
import uuid
from datetime import datetime, timedelta, timezone

import bcrypt
import jwt
from flask import current_app, g, request
from flask_limiter.util import get_remote_address

from src.db import get_db
from src.errors import ApiError
from src.models import revoked_tokens, users
from src.redis_client import get_redis

ALGORITHM = "HS256"
ACCESS, REFRESH = "access", "refresh"


class AuthError(ApiError):
    """A token or credential was refused; `message` is safe to show the client."""

    status = 401


# Passwords

def hash_password(password):
    rounds = current_app.config["BCRYPT_ROUNDS"]
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds)).decode("ascii")


def check_password(password, password_hash):
    try:
        return bcrypt.checkpw(password.encode("utf-8"), password_hash.encode("ascii"))
    except (ValueError, UnicodeError):
        return False


_DUMMY_HASH = None


def burn_password_check(password):
    """Spend a bcrypt check's time so unknown users and wrong passwords look alike."""
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password("citypulse-timing-equaliser")
    check_password(password, _DUMMY_HASH)


# Tokens

def _secret():
    return current_app.config["JWT_SECRET_KEY"]


def encode_token(user, token_type):
    """Sign a token of `token_type` for `user`; return (token, claims)."""
    now = datetime.now(timezone.utc)
    ttl = current_app.config["JWT_ACCESS_TTL_S" if token_type == ACCESS else "JWT_REFRESH_TTL_S"]
    claims = {
        "sub": str(user["_id"]),
        "role": user["role"],
        "type": token_type,
        "jti": uuid.uuid4().hex,
        "iat": int(now.timestamp()),
        "exp": int(now.timestamp()) + ttl,
    }
    return jwt.encode(claims, _secret(), algorithm=ALGORITHM), claims


def issue_tokens(user):
    """The login response body for `user`."""
    access, _ = encode_token(user, ACCESS)
    refresh, _ = encode_token(user, REFRESH)
    return {
        "access_token": access,
        "refresh_token": refresh,
        "token_type": "Bearer",
        "expires_in": current_app.config["JWT_ACCESS_TTL_S"],
        "user": user,
    }


def decode_token(token, expected_type):
    """Verify signature, expiry, type and revocation; return the claims or raise AuthError."""
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
    if is_revoked(claims):
        raise AuthError("Token has been revoked", error="token_revoked")
    return claims


def load_user(claims):
    """The user document behind `claims`; refuses deleted or disabled accounts."""
    user = users.get(get_db(), claims["sub"])
    if user is None or not user.get("active", True):
        raise AuthError("User no longer exists or is disabled", error="user_inactive")
    return user


# Revocation lives in Redis when configured (shared by every process), in MongoDB otherwise.
# Checking it needs no user lookup, so authenticating a request is one key-value read.

def _key(kind, ident):
    return f"{current_app.config['RATELIMIT_KEY_PREFIX']}:{kind}:{ident}"


def revoke(claims):
    """Revoke one token until it would have expired anyway."""
    ttl = max(1, int(claims["exp"] - datetime.now(timezone.utc).timestamp()))
    client = get_redis()
    if client is not None:
        client.set(_key("revoked", claims["jti"]), "1", ex=ttl)
    else:
        revoked_tokens.add(get_db(), claims["jti"], datetime.fromtimestamp(claims["exp"], timezone.utc))


def revoke_user_tokens(user_id, issued_before):
    """Revoke every token of `user_id` issued before `issued_before` (password change, disable)."""
    ttl = current_app.config["JWT_REFRESH_TTL_S"]
    cutoff = int(issued_before.timestamp())
    client = get_redis()
    if client is not None:
        client.set(_key("revoked-user", user_id), cutoff, ex=ttl)
    else:
        revoked_tokens.revoke_user(get_db(), str(user_id), cutoff,
                                   datetime.now(timezone.utc) + timedelta(seconds=ttl))


def is_revoked(claims):
    client = get_redis()
    if client is not None:
        token_mark, user_cutoff = client.mget(_key("revoked", claims["jti"]), _key("revoked-user", claims["sub"]))
        return token_mark is not None or (user_cutoff is not None and claims["iat"] < int(user_cutoff))
    return revoked_tokens.is_revoked(get_db(), claims["jti"], claims["sub"], claims["iat"])


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


def roles_required(*roles):
    """Guard a view: a valid access token, and one of `roles` if any are given."""
    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            claims = authenticate_request()
            if roles and claims["role"] not in roles:
                raise AuthError(f"This action requires role: {' or '.join(roles)}", status=403, error="forbidden")
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


def socket_identity(auth, query_token=None):
    """The claims of a Socket.IO connect's token, from `auth={'token': ...}` or `?token=`; raises AuthError."""
    token = auth.get("token") if isinstance(auth, dict) else None
    return decode_token(token or query_token, ACCESS)
