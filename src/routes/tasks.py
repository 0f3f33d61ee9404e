"""/api/tasks: submit background work, watch it, cancel it, fetch its result."""
from src.routes.blueprint import Blueprint

from src import auth
from src.auth import auth_required, roles_required
from src.schemas.tasks import SubmitSchema, SubmittedSchema, TaskArgs, TaskPageSchema, TaskSchema
from src.services import tasks

blp = Blueprint("tasks", __name__, url_prefix="/api/tasks", description="Background tasks")


@blp.route("/submit", methods=["POST"])
@roles_required("operator", "admin")
@blp.arguments(SubmitSchema)
@blp.response(202, SubmittedSchema)
def submit(body):
    """Queue a task (priority 1-10, default 5); its status arrives as task_status events."""
    return tasks.submit(auth.current_user(), body["task_type"], body["data"], body["priority"])


@blp.route("")
@auth_required
@blp.arguments(TaskArgs, location="query", as_kwargs=True)
@blp.response(200, TaskPageSchema)
def list_tasks(**args):
    """The caller's tasks (admins: everyone's, or one owner's)."""
    return tasks.list_tasks(auth.current_user(), **args)


@blp.route("/<task_id>")
@auth_required
@blp.response(200, TaskSchema)
def get_task(task_id):
    """One task: status, progress, attempts, result or error."""
    return tasks.visible_task(task_id, auth.current_user())


@blp.route("/<task_id>/cancel", methods=["POST"])
@auth_required
@blp.response(200, TaskSchema)
def cancel_task(task_id):
    """Cancel a queued task, or ask a running one to stop at its next progress point."""
    return tasks.cancel(task_id, auth.current_user())


@blp.route("/<task_id>/result")
@auth_required
@blp.response(200)
def task_result(task_id):
    """The result: JSON, or the exported file for data_export."""
    return tasks.result_response(task_id, auth.current_user())
