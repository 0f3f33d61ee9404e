"""Extension instances, created bare. `create_app` binds them to an app.

Importing this module connects to nothing and starts no thread.
"""
from apscheduler.schedulers.background import BackgroundScheduler
from flask_limiter import Limiter
from flask_smorest import Api
from flask_socketio import SocketIO

from src.auth import default_rate_limit, rate_limit_key

api = Api()
socketio = SocketIO()
# The default limit is read per request so each app (and each test app) uses its own config.
limiter = Limiter(key_func=rate_limit_key, default_limits=[default_rate_limit])
# Created unstarted; src.schedulers decides whether this process runs jobs.
scheduler = BackgroundScheduler(timezone="UTC")
