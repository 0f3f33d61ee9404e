"""Start CityPulse.

    python run.py                   serve HTTP + Socket.IO on eventlet, and run the scheduler
    python run.py --scheduler-only  run only the scheduled jobs (emits through the Redis queue)
"""
import os
import sys
import warnings

# eventlet must patch the standard library before anything else imports it. This is the
# one setting read outside src/config.py, because config can't be imported before the patch.
if os.environ.get("SOCKETIO_ASYNC_MODE", "eventlet") == "eventlet":
    # The user chose eventlet (measured fastest here for fan-out); its deprecation banner is noise.
    warnings.filterwarnings("ignore", message=".*Eventlet is deprecated.*")
    import eventlet

    eventlet.monkey_patch()

import atexit  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402

from src import create_app  # noqa: E402
from src.extensions import socketio  # noqa: E402
from src.schedulers import start_scheduler, stop_scheduler  # noqa: E402


def serve(app):
    """Serve HTTP and Socket.IO on HOST:PORT."""
    config = app.config
    options = {"host": config["HOST"], "port": config["PORT"], "allow_unsafe_werkzeug": True}
    if config["SOCKETIO_ASYNC_MODE"] == "eventlet":
        # eventlet.wsgi caps concurrent connections at 1024 unless max_size says otherwise.
        options = {"host": config["HOST"], "port": config["PORT"], "max_size": config["MAX_CONNECTIONS"],
                   "log_output": False}
    app.logger.info("CityPulse %s (%s, %s) on http://%s:%s", config["VERSION"], config["ENV_NAME"],
                    config["SOCKETIO_ASYNC_MODE"], config["HOST"], config["PORT"])
    socketio.run(app, **options)


def run_scheduler_only(app):
    """Run the jobs without serving; events reach clients through the Redis message queue."""
    if not app.config["REDIS_URL"]:
        app.logger.warning("--scheduler-only without REDIS_URL: emitted events reach no client")
    while True:
        time.sleep(3600)


def main(argv):
    """Build the app from APP_ENV, start background work, then serve (or just run jobs)."""
    app = create_app()
    # SIGTERM (docker stop) exits through atexit, which releases the scheduler lock at once.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    start_scheduler(app)
    atexit.register(stop_scheduler, app)
    if "--scheduler-only" in argv:
        run_scheduler_only(app)
    else:
        serve(app)


if __name__ == "__main__":
    main(sys.argv[1:])
