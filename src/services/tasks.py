"""Background tasks: submit, read, cancel, and fetch results. Workers live in task_worker.py."""
from flask import Response, current_app
from marshmallow import ValidationError

from src.db import get_db
from src.errors import ApiError
from src.realtime import broadcast
from src.models import tasks
from src.redis_client import attempt
from src.schemas.tasks import task_wire
from src.domain import now_utc
from src.services import task_types


def announce(task, **overrides):
    """`task_status`: the task as GET /api/tasks/<id> shows it; `overrides` (a retry's message and error)
    describe this change without being stored."""
    broadcast.emit_task_status(task["owner_id"], task_wire(dict(task, **overrides)))


def wake_key(app=None):
    return f"{(app or current_app).config['RATELIMIT_KEY_PREFIX']}:tasks:wake"


def submit(user, task_type, data, priority):
    """Validate the data against the type's schema, queue the task, announce it."""
    spec = task_types.REGISTRY.get(task_type)
    if spec is None:
        raise ValidationError({"task_type": [f"Unknown task type; one of: {', '.join(sorted(task_types.REGISTRY))}."]})
    try:
        spec.schema().load(data)
    except ValidationError as exc:
        raise ValidationError({"data": exc.messages})
    # Stored as submitted (JSON), so the task shows what the user asked; workers load it again.
    task = tasks.insert(get_db(), task_type, data, priority, user["_id"],
                        current_app.config["TASK_MAX_ATTEMPTS"])
    announce(task)
    # Wake a sleeping worker now; MongoDB stays the truth, so with Redis down workers find it by polling.
    attempt(lambda client: client.lpush(wake_key(), str(task["_id"])))
    return task


def visible_task(task_id, user):
    """The task if `user` owns it or is an admin; otherwise 404 (never 403, which would leak existence)."""
    task = tasks.get(get_db(), task_id)
    if task is None or (user["role"] != "admin" and task["owner_id"] != str(user["_id"])):
        raise ApiError("Task not found", status=404)
    return task


def list_tasks(user, limit=50, offset=0, sort="-created_at", status=None, task_type=None, owner=None):
    """The caller's tasks; admins see everyone's, or one owner's with `owner`."""
    owner_id = (owner if user["role"] == "admin" else str(user["_id"]))
    return tasks.list_page(get_db(), owner_id=owner_id, status=status, task_type=task_type, limit=limit,
                           offset=offset, sort=sort)


def cancel(task_id, user):
    """Cancel a queued task, or ask a running one to stop at its next progress point."""
    task = visible_task(task_id, user)
    updated, how = tasks.cancel(get_db(), task["_id"])
    if updated is None:
        raise ApiError(f"Task is {task['status']}; it cannot be cancelled", status=409, error="invalid_state")
    if how == "cancelled":
        announce(updated)
    return updated


def result_response(task_id, user):
    """The result: JSON for most types, the exported file (GridFS) for data_export."""
    task = visible_task(task_id, user)
    if task["status"] != "completed":
        raise ApiError(f"Task is {task['status']}; no result yet", status=409, error="not_ready")
    result = task.get("result") or {}
    if task["task_type"] == "data_export":
        content, meta = task_types.read_export(get_db(), result)
        return Response(content, mimetype=meta["content_type"], headers={
            "Content-Disposition": f'attachment; filename="{meta["filename"]}"'})
    return current_app.response_class(current_app.json.dumps({"id": str(task["_id"]), "result": result}),
                                      mimetype="application/json")


def requeue_expired(now=None):
    """Return tasks of dead workers to the queue, announcing each."""
    changed = tasks.requeue_expired(get_db(), now or now_utc())
    for task in changed:
        announce(task, message="requeued: worker lost")
    return len(changed)
