"""Scheduled jobs as resources: list, pause, resume, run now."""
from datetime import datetime, timezone

from flask import current_app

from src.db import get_db
from src.errors import ApiError
from src.extensions import scheduler
from src.models import job_stats
from src.services import simulation


def _runner():
    runner = current_app.extensions.get("job_runner")
    if runner is None:
        raise ApiError("The scheduler is not running in this process (SCHEDULER_ENABLED=false)", status=409,
                       error="scheduler_disabled")
    return runner


def describe(job_id, spec, stats):
    job = scheduler.get_job(job_id)
    return {
        "id": job_id, "description": spec.description, "interval_s": spec.interval_s,
        "leader_only": spec.leader_only, "paused": bool(stats.get("paused")),
        "next_run_at": job.next_run_time if job else None,
        "last_run_at": stats.get("last_run_at"), "last_duration_ms": stats.get("last_duration_ms"),
        "last_error": stats.get("last_error"), "last_error_at": stats.get("last_error_at"),
        "last_result": stats.get("last_result"), "runs": stats.get("runs", 0), "failures": stats.get("failures", 0),
    }


def list_jobs():
    """Every job with its interval, next/last run, duration, last error and counts."""
    runner = _runner()
    stats = job_stats.all_stats(get_db())
    items = [describe(job_id, spec, stats.get(job_id, {})) for job_id, spec in sorted(runner.specs.items())]
    return {"items": items, "leader": runner.leader.is_leader, "lock_backend": runner.leader.backend,
            "process": runner.leader.owner}


def get_job(job_id):
    runner = _runner()
    if job_id not in runner.specs:
        raise ApiError(f"No job {job_id}", status=404)
    return runner


def pause(job_id):
    """Pause a job in every process (the flag lives in the database)."""
    runner = get_job(job_id)
    job_stats.set_paused(get_db(), job_id, True)
    return describe(job_id, runner.specs[job_id], job_stats.all_stats(get_db()).get(job_id, {}))


def resume(job_id):
    runner = get_job(job_id)
    job_stats.set_paused(get_db(), job_id, False)
    return describe(job_id, runner.specs[job_id], job_stats.all_stats(get_db()).get(job_id, {}))


def run_now(job_id):
    """Run a job once, now, in this process (even when paused or not the leader)."""
    runner = get_job(job_id)
    scheduler.add_job(runner.run, "date", run_date=datetime.now(timezone.utc), args=[job_id],
                      kwargs={"manual": True}, id=f"{job_id}:manual", replace_existing=True, max_instances=1)
    return {"id": job_id, "status": "started"}


def purge_simulated():
    """Delete all simulated data (the simulators keep running if enabled)."""
    return simulation.purge(current_app._get_current_object())
