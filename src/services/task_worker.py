"""Task workers: claim, run with a renewed lease, report progress, retry with backoff.

In the server process a small pool of (green) threads runs them; `python run.py --worker`
runs the same pool in its own process. Workers poll MongoDB; with Redis they also block on a
wake-up list so a new task starts at once.
"""
import logging
import os
import socket
import threading
import time
import uuid

from marshmallow import ValidationError

from src import outages
from src.db import get_db
from src.errors import UNAVAILABLE_ERRORS, ApiError
from src.models import tasks as task_model
from src.redis_client import get_blocking_redis, report_failure, skipping
from src.services import task_types
from src.services.tasks import announce, requeue_expired, wake_key

log = logging.getLogger(__name__)
PROGRESS_EMIT_INTERVAL_S = 0.5
# The task's own data or range is the problem; another attempt would fail the same way.
PERMANENT_ERRORS = (ValidationError, ApiError)  # RangeTooLarge is an ApiError
REQUEUE_EVERY_S = 5.0


def cooperative_yield():
    """Let other green threads run (a no-op without eventlet)."""
    time.sleep(0)


class TaskContext:
    """What a handler sees: progress reporting, cancellation, lease renewal, the database."""

    def __init__(self, worker, task):
        self.worker, self.task = worker, task
        self.task_id = task["_id"]
        self.db = get_db()
        self.owner = {"_id": task["owner_id"], "email": None, "username": None}
        self._last_emit = 0.0
        self._last_renew = time.monotonic()

    def progress(self, pct, message=None):
        """Record progress (emitted at most every 500 ms); raises TaskCancelled if cancel was asked."""
        pct = max(0, min(100, int(pct)))
        task = task_model.renew_lease(self.db, self.task_id, self.worker.worker_id, self.worker.lease_s,
                                      progress=pct, message=message)
        self._last_renew = time.monotonic()
        if task is None:
            raise task_types.TaskCancelled("lease lost")
        if task.get("cancel_requested"):
            raise task_types.TaskCancelled("cancelled by request")
        now = time.monotonic()
        if now - self._last_emit >= PROGRESS_EMIT_INTERVAL_S:
            self._last_emit = now
            announce(task)
        cooperative_yield()

    def yield_fn(self):
        """Passed to CPU-heavy code: yield to the event loop, and keep the lease alive."""
        cooperative_yield()
        if time.monotonic() - self._last_renew > self.worker.lease_s / 3:
            task_model.renew_lease(self.db, self.task_id, self.worker.worker_id, self.worker.lease_s)
            self._last_renew = time.monotonic()


class TaskWorker:
    def __init__(self, app, name=None):
        self.app = app
        config = app.config
        self.worker_id = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.lease_s = config["TASK_LEASE_S"]
        self.poll_s = config["TASK_POLL_S"]
        self.backoff_s = config["TASK_RETRY_BACKOFF_S"]
        self._last_requeue = 0.0

    def run_once(self):
        """Claim and run one task; False when there was nothing to do."""
        with self.app.app_context():
            if time.monotonic() - self._last_requeue > REQUEUE_EVERY_S:
                self._last_requeue = time.monotonic()
                requeue_expired()
            task = task_model.claim(get_db(), self.worker_id, self.lease_s)
            if task is None:
                return False
            self.execute(task)
            return True

    def execute(self, task):
        db = get_db()
        announce(task)
        spec = task_types.REGISTRY.get(task["task_type"])
        ctx = TaskContext(self, task)
        heartbeat = _LeaseHeartbeat(self, task["_id"])
        heartbeat.start()
        try:
            if spec is None:
                raise ValueError(f"unknown task type {task['task_type']}")
            result = spec.handler(spec.schema().load(task["data"]), ctx)
        except PERMANENT_ERRORS as exc:  # retrying cannot help: fail now, with the reason
            done = task_model.finish(db, task["_id"], self.worker_id, "failed",
                                     error=f"{exc.__class__.__name__}: {exc}")
            if done:
                announce(done)
            return
        except task_types.TaskCancelled:
            done = task_model.finish(db, task["_id"], self.worker_id, "cancelled")
            if done:
                announce(done)
            return
        except Exception as exc:  # every failure is retried until max_attempts, then recorded
            self._failed(task, exc)
            return
        finally:
            heartbeat.stop()
        done = task_model.finish(db, task["_id"], self.worker_id, "completed", result=result)
        if done:
            announce(done)

    def _failed(self, task, exc):
        db = get_db()
        error = f"{exc.__class__.__name__}: {exc}"
        log.warning("task %s (%s) attempt %d failed: %s", task["_id"], task["task_type"], task["attempts"], error)
        if task["attempts"] < task["max_attempts"]:
            delay = self.backoff_s * 2 ** (task["attempts"] - 1)
            queued = task_model.retry_later(db, task["_id"], self.worker_id, error, delay)
            if queued:
                announce(queued, message=f"retrying in {delay:g} s", error=error)
        else:
            failed = task_model.finish(db, task["_id"], self.worker_id, "failed", error=error)
            if failed:
                announce(failed)

    def run_forever(self, stop):
        """Loop until `stop` is set: run tasks, sleep (or wait for a Redis wake-up) when idle."""
        block_s = max(1, int(self.poll_s))
        # BLPOP waits up to block_s for an answer: the shared client's short read timeout would cut
        # every idle wait short as an outage, so the wait has a client (and connection) of its own.
        client = get_blocking_redis(self.app, block_s)
        key = wake_key(self.app)
        while not stop.is_set():
            try:
                if self.run_once():
                    continue
            except UNAVAILABLE_ERRORS as exc:
                outages.mongodb.failed(exc)
            except Exception:
                log.exception("worker %s loop error", self.worker_id)
            if client is not None and not skipping():  # during an outage: poll; probes see the recovery
                try:
                    client.blpop([key], timeout=block_s)
                    outages.redis.recovered()
                    continue
                except Exception as exc:  # Redis gone: poll MongoDB until it is back
                    report_failure(exc)
            stop.wait(self.poll_s)


class _LeaseHeartbeat:
    """Renews the lease while a handler runs, in case it reports progress rarely."""

    def __init__(self, worker, task_id):
        self.worker, self.task_id = worker, task_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"lease-{task_id}")

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()

    def _run(self):
        while not self._stop.wait(self.worker.lease_s / 3):
            with self.worker.app.app_context():
                task_model.renew_lease(get_db(), self.task_id, self.worker.worker_id, self.worker.lease_s)


class WorkerPool:
    """N workers on threads (green threads under eventlet)."""

    def __init__(self, app, size):
        self.app, self.size = app, size
        self.stop_event = threading.Event()
        self.threads = []
        self.workers = []

    def start(self):
        for i in range(self.size):
            worker = TaskWorker(self.app)
            self.workers.append(worker)
            thread = threading.Thread(target=worker.run_forever, args=(self.stop_event,), daemon=True,
                                      name=f"task-worker-{i}")
            thread.start()
            self.threads.append(thread)
        log.info("started %d task workers", self.size)
        return self

    def stop(self, timeout=5):
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout)


def start_pool(app, size=None):
    size = app.config["TASK_WORKERS"] if size is None else size
    if size <= 0:
        return None
    pool = WorkerPool(app, size).start()
    app.extensions["task_pool"] = pool
    return pool
