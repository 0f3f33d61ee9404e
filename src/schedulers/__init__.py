"""APScheduler 3.x jobs: simulators, rollups, housekeeping; exactly one leader runs them.

Every process that starts the scheduler schedules the same jobs, but a job body runs only in
the process holding the leader lock (Redis when configured, a MongoDB document otherwise; see
`leader.py`). If the leader dies, its lock expires and another process takes over within two
lock periods. Jobs run with max_instances=1 and coalesce=True, and a job that raises is logged
and counted, then runs again at its next time.
"""
import logging
import time
from datetime import datetime, timedelta, timezone

from src import outages
from src.db import get_db
from src.errors import UNAVAILABLE_ERRORS
from src.extensions import scheduler
from src.models import job_stats, rollups
from src.schedulers.leader import LeaderLock
from src.services import housekeeping, simulation

log = logging.getLogger(__name__)


class JobSpec:
    """A scheduled job: id, interval, function(now), and whether only the leader runs it."""

    def __init__(self, job_id, interval_s, func, leader_only=True, description=""):
        self.job_id, self.interval_s, self.func = job_id, interval_s, func
        self.leader_only, self.description = leader_only, description


def rollup_readings(now):
    """Aggregate raw readings received since the last run into readings_hourly."""
    # The one job body kept here: it picks the database and keeps the watermark out of last_result.
    result = rollups.refresh(get_db(), now=now)
    return {"buckets": result["buckets"], "readings": result["readings"], "complete": result["complete"]}


def job_specs(app):
    """Every job this deployment schedules, from config; each calls its service function directly."""
    config = app.config
    specs = [
        JobSpec("rollup_readings", config["ROLLUP_INTERVAL_S"], rollup_readings,
                description="aggregate new raw readings into readings_hourly"),
        JobSpec("retention", config["HOUSEKEEPING_INTERVAL_S"], housekeeping.apply_retention,
                description="delete raw readings and old records past retention"),
        JobSpec("stale_sensors", config["STALE_CHECK_INTERVAL_S"], housekeeping.flag_stale_sensors,
                description="raise sensor_offline alerts for silent sensors"),
        JobSpec("system_update", config["SYSTEM_UPDATE_INTERVAL_S"], housekeeping.emit_system_update,
                description="emit system_update to the system room"),
        JobSpec("publish_metrics", config["SYSTEM_UPDATE_INTERVAL_S"], housekeeping.publish_process_metrics,
                leader_only=False, description="share this process's realtime metrics with the leader"),
    ]
    if config["SIMULATION_ENABLED"]:
        for module, interval in config["SIMULATION_INTERVALS"].items():
            specs.append(JobSpec(f"simulate_{module}", interval, getattr(simulation, f"tick_{module}"),
                                 description=f"simulated {module} readings through the ingest pipeline"))
    return specs


class JobRunner:
    """Runs job bodies inside an app context, gated by leadership and pause flags, with stats."""

    def __init__(self, app, leader):
        self.app = app
        self.leader = leader
        self.specs = {}

    def run(self, job_id, manual=False):
        """Run one job now (the APScheduler callback); never raises."""
        spec = self.specs[job_id]
        with self.app.app_context():
            if spec.leader_only and not manual and not self.leader.is_leader:
                return "skipped: not leader"
            db = get_db()
            started = time.perf_counter()
            now = datetime.now(timezone.utc)
            try:
                if not manual and job_stats.is_paused(db, job_id):
                    return "skipped: paused"
                result = spec.func(now)
            except UNAVAILABLE_ERRORS as exc:  # an outage, logged once by outages, not once per run
                outages.mongodb.failed(exc)
                return "failed"
            except Exception as exc:  # a failing job must never kill the scheduler
                log.exception("job %s failed", job_id)
                self._record(db, job_id, now, started, error=f"{exc.__class__.__name__}: {exc}")
                return "failed"
            self._record(db, job_id, now, started, result=result)
            return "ok"

    def _record(self, db, job_id, now, started, error=None, result=None):
        duration_ms = round((time.perf_counter() - started) * 1000, 2)
        try:
            job_stats.record_run(db, job_id, now, duration_ms, error, result)
        except UNAVAILABLE_ERRORS as exc:
            outages.mongodb.failed(exc)
        except Exception:
            log.exception("could not record the run of job %s", job_id)


def init_scheduler(app):
    """Register the jobs on the (unstarted) scheduler; returns the runner."""
    leader = LeaderLock.for_app(app)
    runner = JobRunner(app, leader)
    app.extensions["job_runner"] = runner
    # The first runs start within seconds (after the leader heartbeat), not one interval later,
    # so a fresh server shows a living city at once.
    first_run = datetime.now(timezone.utc) + timedelta(seconds=1)
    for spec in job_specs(app):
        runner.specs[spec.job_id] = spec
        scheduler.add_job(runner.run, "interval", seconds=spec.interval_s, id=spec.job_id, args=[spec.job_id],
                          max_instances=1, coalesce=True, replace_existing=True, next_run_time=first_run,
                          misfire_grace_time=max(1, int(spec.interval_s)))
    # Leadership is renewed on its own timer, independent of how long jobs take.
    scheduler.add_job(leader.heartbeat, "interval", seconds=max(1.0, leader.ttl_s / 3), id="leader_heartbeat",
                      max_instances=1, coalesce=True, replace_existing=True, next_run_time=datetime.now(timezone.utc))
    return runner


def start_scheduler(app):
    """Schedule the jobs and start the scheduler thread (called by run.py, never on import)."""
    if not app.config["SCHEDULER_ENABLED"]:
        log.info("scheduler disabled (SCHEDULER_ENABLED=false)")
        return None
    runner = init_scheduler(app)
    with app.app_context():
        if app.config["SIMULATION_ENABLED"]:
            try:
                simulation.ensure_registered(app)
            except UNAVAILABLE_ERRORS as exc:  # the waste simulator registers its bins on its first run
                outages.mongodb.failed(exc)
    scheduler.start()
    log.info("scheduler started with %d jobs (%s)", len(runner.specs), runner.leader.backend)
    return runner


def stop_scheduler(app):
    runner = app.extensions.get("job_runner")
    if scheduler.running:
        scheduler.shutdown(wait=False)
    if runner:
        runner.leader.release()


def status(app):
    """The scheduler section of /api/health."""
    runner = app.extensions.get("job_runner")
    return {"enabled": app.config["SCHEDULER_ENABLED"], "running": bool(scheduler.running and runner),
            "leader": bool(runner and runner.leader.is_leader),
            "lock_backend": runner.leader.backend if runner else None,
            "jobs": len(runner.specs) if runner else 0}
