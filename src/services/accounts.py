"""Accounts: login, tokens, registration, profile and password changes."""
import logging
from datetime import datetime, timezone

from flask import current_app
from pymongo.errors import DuplicateKeyError

from src import auth
from src.db import get_db
from src.models import users

log = logging.getLogger(__name__)

INVALID_CREDENTIALS = "Invalid email/username or password"


def login(email=None, username=None, password=""):
    """Return the token response, or raise AuthError with one message for every failure."""
    db = get_db()
    user = users.find_by_email(db, email) if email else users.find_by_username(db, username)
    if user is None:
        auth.burn_password_check(password)
        raise auth.AuthError(INVALID_CREDENTIALS, error="invalid_credentials")
    if not auth.check_password(password, user["password_hash"]):
        raise auth.AuthError(INVALID_CREDENTIALS, error="invalid_credentials")
    if not user.get("active", True):
        raise auth.AuthError("This account is disabled", status=403, error="account_disabled")
    users.record_login(db, user["_id"])
    return auth.issue_tokens(user)


def refresh(refresh_token):
    """A new access token for a valid, unrevoked refresh token."""
    claims = auth.decode_token(refresh_token, auth.REFRESH)
    user = auth.load_user(claims)
    access, _ = auth.encode_token(user, auth.ACCESS)
    return {"access_token": access, "token_type": "Bearer",
            "expires_in": current_app.config["JWT_ACCESS_TTL_S"]}


def logout(access_claims, refresh_token=None):
    """Revoke the access token used for this call, and the refresh token if given and ours.

    The refresh token is checked first, so a bad one fails the call with nothing revoked.
    """
    refresh_claims = None
    if refresh_token:
        refresh_claims = auth.decode_token(refresh_token, auth.REFRESH)
        if refresh_claims["sub"] != access_claims["sub"]:
            raise auth.AuthError("The refresh token belongs to another user", status=403)
    auth.revoke(access_claims)
    if refresh_claims:
        auth.revoke(refresh_claims)


def default_username(email):
    """The email's local part, made unique with a numeric suffix when it is taken."""
    base = "".join(c for c in email.split("@")[0] if c.isalnum() or c in "_.-")[:28].ljust(3, "_")
    candidate, n = base, 1
    while users.find_by_username(get_db(), candidate) is not None:
        n += 1
        candidate = f"{base}{n}"
    return candidate


def register(data):
    """Create a user from validated registration data; duplicates raise DuplicateKeyError."""
    email = data["email"].lower()
    return users.create(
        get_db(), email, data.get("username") or default_username(email),
        auth.hash_password(data["password"]), data["role"], data.get("full_name"),
    )


def update_profile(user, changes):
    """Apply profile changes; a taken email or username raises DuplicateKeyError."""
    if "email" in changes:
        changes["email"] = changes["email"].lower()
    if not changes:
        return user
    return users.update(get_db(), user["_id"], changes)


def change_password(user, current_password, new_password):
    """Check the current password, store the new one, and invalidate older tokens."""
    if not auth.check_password(current_password, user["password_hash"]):
        raise auth.AuthError("Current password is incorrect", status=403, error="invalid_password")
    updated = users.set_password(get_db(), user["_id"], auth.hash_password(new_password))
    # Whole seconds, because token `iat` is whole seconds: the tokens minted below stay valid.
    auth.revoke_user_tokens(user["_id"], datetime.now(timezone.utc).replace(microsecond=0))
    return auth.issue_tokens(updated)


def ensure_default_admin(app):
    """On first start with no users, create the configured admin."""
    db = get_db(app)
    if users.count(db):
        return None
    config = app.config
    with app.app_context():
        password_hash = auth.hash_password(config["ADMIN_PASSWORD"])
    try:
        admin = users.create(db, config["ADMIN_EMAIL"], config["ADMIN_USERNAME"], password_hash, "admin",
                             "Administrator")
    except DuplicateKeyError:  # another process created it first
        return None
    log.info("created default admin %s", config["ADMIN_EMAIL"])
    return admin
