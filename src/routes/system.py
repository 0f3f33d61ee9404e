"""/api/system: scheduled jobs (admin)."""
from src.routes.blueprint import Blueprint

from src.auth import roles_required
from src.schemas.system import JobListSchema, JobRunSchema, JobSchema, PurgeSchema
from src.services import jobs

blp = Blueprint("system", __name__, url_prefix="/api/system", description="Jobs and system administration")


@blp.route("/jobs")
@roles_required("admin")
@blp.response(200, JobListSchema)
def list_jobs():
    """Every scheduled job: interval, next and last run, duration, last error, run and failure counts."""
    return jobs.list_jobs()


@blp.route("/jobs/<job_id>/pause", methods=["POST"])
@roles_required("admin")
@blp.response(200, JobSchema)
def pause_job(job_id):
    """Pause a job (in every process)."""
    return jobs.pause(job_id)


@blp.route("/jobs/<job_id>/resume", methods=["POST"])
@roles_required("admin")
@blp.response(200, JobSchema)
def resume_job(job_id):
    """Resume a paused job."""
    return jobs.resume(job_id)


@blp.route("/jobs/<job_id>/run", methods=["POST"])
@roles_required("admin")
@blp.response(202, JobRunSchema)
def run_job(job_id):
    """Run a job once now, in this process."""
    return jobs.run_now(job_id)


@blp.route("/simulated-data", methods=["DELETE"])
@roles_required("admin")
@blp.response(200, PurgeSchema)
def purge_simulated_data():
    """Delete everything tagged source=simulator (readings, alerts, rollups, incidents)."""
    return jobs.purge_simulated()
