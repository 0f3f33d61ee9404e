"""Start CityPulse.

    python run.py                   serve HTTP + Socket.IO on eventlet, run the scheduler and task workers
    python run.py --scheduler-only  run only the scheduled jobs (emits through the Redis queue)
    python run.py --worker          run only task workers (emits through the Redis queue)
"""
import os
import sys
import warnings

# eventlet must patch the standard library before anything else imports it. This is the
# one setting read outside src/config.py, because config can't be imported before the patch.
if os.environ.get("SOCKETIO_ASYNC_MODE", "eventlet") == "eventlet":
    # The user chose eventlet (measured fastest here for fan-out); its deprecation banner is noise.
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    import eventlet

    eventlet.monkey_patch()

import atexit  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402

from src import create_app  # noqa: E402
from src import http_server  # noqa: E402
from src.config import ConfigError  # noqa: E402
from src.events import sweeper  # noqa: E402
from src.extensions import socketio  # noqa: E402
from src.realtime import seam  # noqa: E402
from src.schedulers import start_scheduler, stop_scheduler  # noqa: E402
from src.services import watchdog  # noqa: E402
from src.services.task_worker import start_pool  # noqa: E402


def serve(app):
    """Serve HTTP and Socket.IO on HOST:PORT (src/http_server.py: timeouts, a taken port in one line)."""
    http_server.serve(app)


def run_headless(app, role):
    """Run background work without serving; events reach clients through the Redis message queue."""
    if not app.config["REDIS_URL"]:
        app.logger.warning("%s without REDIS_URL: emitted events reach no client", role)
    if not app.config["MONGO_URI"]:
        app.logger.warning("%s without MONGO_URI: the embedded engine lives in this process only, so it "
                           "shares no data with the server", role)
    while True:
        time.sleep(3600)


def main(argv):
    """Build the app from APP_ENV, start background work, then serve (or only work)."""
    try:
        app = create_app()
    except ConfigError as exc:  # one clear line, not a traceback (and no crash-loop noise)
        print(f"citypulse: {exc}", file=sys.stderr)
        sys.exit(2)
    # SIGTERM (docker stop) exits through atexit, which releases the scheduler lock at once.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    watchdog.start(app)
    if "--worker" in argv:
        start_pool(app, size=max(1, app.config["TASK_WORKERS"]))
        run_headless(app, "--worker")
    start_scheduler(app)
    atexit.register(stop_scheduler, app)
    if "--scheduler-only" in argv:
        run_headless(app, "--scheduler-only")
    else:
        start_pool(app)
        sweeper.start_sweeper(app)
        sweeper.start_stream_flusher(app)
        seam.start_listening(socketio.server)
        serve(app)


if __name__ == "__main__":
    main(sys.argv[1:])
