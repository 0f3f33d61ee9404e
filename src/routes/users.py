"""/api/users: account administration (admin only)."""
from flask import g

from src.auth import roles_required
from src.routes.blueprint import Blueprint
from src.schemas.auth import UserArgs, UserPageSchema, UserSchema, UserUpdateSchema
from src.schemas.common import MessageSchema
from src.services import accounts

blp = Blueprint("users", __name__, url_prefix="/api/users", description="Account administration (admin)")


@blp.route("")
@roles_required("admin")
@blp.arguments(UserArgs, location="query", as_kwargs=True)
@blp.response(200, UserPageSchema)
def list_users(**args):
    """Every account, newest first; filter by role or active."""
    return accounts.list_users(**args)


@blp.route("/<user_id>", methods=["PATCH"])
@roles_required("admin")
@blp.arguments(UserUpdateSchema)
@blp.response(200, UserSchema)
def update_user(changes, user_id):
    """Change a user's role, active flag, email or name; the new role applies to live tokens within seconds."""
    return accounts.update_user(g.token_claims, user_id, changes)


@blp.route("/<user_id>/revoke-sessions", methods=["POST"])
@roles_required("admin")
@blp.response(200, MessageSchema)
def revoke_sessions(user_id):
    """Sign a user out everywhere: every token issued before now stops working, sockets included."""
    return accounts.revoke_sessions(user_id)
