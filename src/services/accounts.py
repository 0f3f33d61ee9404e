"""Accounts: login, tokens, registration, profile and password changes."""
import hashlib
import logging

from bson import ObjectId
from flask import current_app
from pymongo.errors import DuplicateKeyError

from src import auth
from src.db import get_db
from src.errors import ApiError
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
    access, _ = auth.encode_token(user, auth.ACCESS, claims.get("sid"))
    return {"access_token": access, "token_type": "Bearer",
            "expires_in": current_app.config["JWT_ACCESS_TTL_S"]}


def logout(access_claims, refresh_token=None):
    """End the sign-in session of the access token used: it, its refresh token, and their refreshes.

    A refresh token given in the body is checked first (a bad one fails the call with nothing
    revoked), and its own session ends too.
    """
    refresh_claims = None
    if refresh_token:
        refresh_claims = auth.decode_token(refresh_token, auth.REFRESH)
        if refresh_claims["sub"] != access_claims["sub"]:
            raise auth.AuthError("The refresh token belongs to another user", status=403)
    auth.revoke_session(access_claims)
    if refresh_claims and refresh_claims.get("sid") != access_claims.get("sid"):
        auth.revoke_session(refresh_claims)


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
    """Apply profile changes; a taken username raises DuplicateKeyError."""
    if not changes:
        return user
    return users.update(get_db(), user["_id"], changes)


def change_password(user, current_password, new_password):
    """Check the current password, store the new one, and invalidate older tokens."""
    if not auth.check_password(current_password, user["password_hash"]):
        raise auth.AuthError("Current password is incorrect", status=403, error="invalid_password")
    updated = users.set_password(get_db(), user["_id"], auth.hash_password(new_password))
    auth.revoke_user_tokens(user["_id"])  # every token issued before now; the ones minted below live
    return auth.issue_tokens(updated)


# Administration of accounts (admin only, guarded in the routes).

def list_users(role=None, active=None, limit=50, offset=0, sort="-created_at"):
    """A page of users, newest first."""
    return users.page(get_db(), role=role, active=active, limit=limit, offset=offset, sort=sort)


def update_user(admin_claims, user_id, changes):
    """Change a user's role, active flag, email or name; disabling ends their sessions at once."""
    db = get_db()
    user = _user(user_id)
    if str(user["_id"]) == admin_claims["sub"] and (changes.get("active") is False or
                                                     changes.get("role", "admin") != "admin"):
        raise ApiError("You cannot demote or disable your own account", status=409, error="conflict")
    if "email" in changes:
        changes["email"] = changes["email"].lower()
    updated = users.update(db, user["_id"], changes) if changes else user
    if _was_admin(user) and not _was_admin(updated) and users.count_active_admins(db) == 0:
        # Checked after the change, and undone: two admins demoting each other at once cannot
        # both pass a check made before (one of them is refused, or both are).
        users.update(db, user["_id"], {"role": user["role"], "active": user.get("active", True)})
        raise ApiError("This is the last active admin; make another admin first", status=409, error="conflict")
    if changes.get("active") is False:
        auth.revoke_user_tokens(user["_id"])  # signed out everywhere, sockets included
    elif changes.get("role", user["role"]) != user["role"]:
        # Tokens stay valid but grant the new role: requests re-read it (auth.current_access), and
        # the session sweeper reconnects live sockets so they get the new role's rooms.
        auth.forget_user(user["_id"])
    return updated


def _user(user_id):
    user = users.get(get_db(), user_id)
    if user is None:
        raise ApiError("User not found", status=404)
    return user


def _was_admin(user):
    return user["role"] == "admin" and user.get("active", True)


def revoke_sessions(user_id):
    """Sign a user out everywhere: every token issued before now stops working."""
    auth.revoke_user_tokens(_user(user_id)["_id"])
    return {"message": "Every session of this user has been revoked"}


def ensure_default_admin(app):
    """On first start with no users, create the configured admin."""
    db = get_db(app)
    if users.count(db):
        return None
    config = app.config
    with app.app_context():
        password_hash = auth.hash_password(config["ADMIN_PASSWORD"])
    try:
        # The id follows from the email, so processes that each seed an embedded database agree on
        # who the admin is (a token and a recovered socket session work on any of them).
        admin_id = ObjectId(hashlib.sha256(config["ADMIN_EMAIL"].lower().encode()).hexdigest()[:24])
        admin = users.create(db, config["ADMIN_EMAIL"], config["ADMIN_USERNAME"], password_hash, "admin",
                             "Administrator", user_id=admin_id)
    except DuplicateKeyError:  # another process created it first
        return None
    log.info("created default admin %s", config["ADMIN_EMAIL"])
    return admin
