"""/api/auth: login, refresh, logout, profile, password, registration."""
from flask import current_app, g
from flask.views import MethodView
from flask_limiter.util import get_remote_address
from src.routes.blueprint import Blueprint

from src import auth
from src.errors import ApiError
from src.extensions import limiter
from src.schemas.auth import (AccessTokenSchema, ChangePasswordSchema, LoginSchema, LogoutSchema, ProfileUpdateSchema,
                              RefreshSchema, RegisterSchema, TokenSchema, UserSchema)
from src.schemas.common import MessageSchema
from src.services import accounts

blp = Blueprint("auth", __name__, url_prefix="/api/auth", description="Accounts and tokens")


def _login_limit():
    return current_app.config["RATELIMIT_LOGIN"]


@blp.route("/login", methods=["POST"])
@limiter.limit(_login_limit, key_func=get_remote_address)
@blp.arguments(LoginSchema)
@blp.response(200, TokenSchema)
@blp.doc(security=[])
def login(body):
    """Exchange email or username and password for an access and a refresh token."""
    return accounts.login(body.get("email"), body.get("username"), body["password"])


@blp.route("/refresh", methods=["POST"])
@blp.arguments(RefreshSchema)
@blp.response(200, AccessTokenSchema)
@blp.doc(security=[])
def refresh(body):
    """A new access token from a refresh token (in the body, or as the bearer token)."""
    return accounts.refresh(body.get("refresh_token") or auth.bearer_token())


@blp.route("/logout", methods=["POST"])
@auth.auth_required
@blp.arguments(LogoutSchema)
@blp.response(200, MessageSchema)
def logout(body):
    """End the sign-in session of the token used (its refresh token too), and the given refresh token's."""
    accounts.logout(g.token_claims, body.get("refresh_token"))
    return {"message": "Logged out"}


@blp.route("/profile")
class Profile(MethodView):
    @auth.auth_required
    @blp.response(200, UserSchema)
    def get(self):
        """The caller's profile."""
        return auth.current_user()

    @auth.auth_required
    @blp.arguments(ProfileUpdateSchema)
    @blp.response(200, UserSchema)
    def put(self, changes):
        """Update the caller's username or full name (an admin changes emails)."""
        return accounts.update_profile(auth.current_user(), changes)


@blp.route("/change-password", methods=["POST"])
@auth.auth_required
@blp.arguments(ChangePasswordSchema)
@blp.response(200, TokenSchema)
def change_password(body):
    """Change the caller's password; every older token stops working, fresh ones are returned."""
    return accounts.change_password(auth.current_user(), body["current_password"], body["new_password"])


@blp.route("/register", methods=["POST"])
@blp.arguments(RegisterSchema)
@blp.response(201, UserSchema)
def register(body):
    """Create a user (admin only; or a viewer self-registering when allowed)."""
    if auth.bearer_token() or not current_app.config["ALLOW_SELF_REGISTRATION"]:
        auth.authorize("admin")
    elif body["role"] != "viewer":
        raise ApiError("Self-registration creates viewers only", status=403, error="forbidden")
    return accounts.register(body)
