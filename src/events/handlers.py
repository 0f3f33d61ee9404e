"""Socket.IO handlers for the default namespace."""
from flask import request
from flask_socketio import ConnectionRefusedError

from src import auth
from src.extensions import socketio


@socketio.on("connect")
def on_connect(auth_payload=None):
    """Refuse connections without a valid, unrevoked access token."""
    try:
        claims = auth.socket_identity(auth_payload, request.args.get("token"))
    except auth.AuthError as exc:
        raise ConnectionRefusedError({"message": exc.message, "error": exc.error})
    return True
