"""Missed-alert replay: what `subscribe_alerts` with `since` sends before live delivery."""
from datetime import datetime

from bson import ObjectId
from flask import current_app

from src.db import get_db
from src.errors import ApiError
from src.realtime import broadcast, seam
from src.schemas.alerts import alert_wire
from src.domain import isoformat_z
from src.models import alerts


def resolve_since(since):
    """(time, alert ObjectId or None) from an alert id or an aware datetime.

    An alert id resumes from that alert's creation: if it escalated since, the escalation is
    news and is replayed too (a repeat is better than a gap).
    """
    if isinstance(since, tuple):
        return since
    if isinstance(since, datetime):
        return since, None
    alert = alerts.get(get_db(), since)
    if alert is None:
        raise ApiError(f"No alert with id {since}", status=404, error="not_found")
    return alert["created_at"], ObjectId(since)


def replay_missed(sid, modules, severities, since):
    """Replay alerts raised after `since` to `sid`, oldest first, without duplicating live ones.

    The caller has already opened the seam guard and joined the alert rooms.
    """
    after_time, after_id = resolve_since(since)
    limit = current_app.config["ALERT_REPLAY_MAX"]
    missed, truncated = alerts.raised_after(get_db(), after_time, after_id, modules or None, severities or None,
                                            limit)
    by_id = {str(a["_id"]): a for a in missed}
    fresh = seam.guards.claim_for_replay(sid, list(by_id))
    for alert_id in fresh:
        broadcast.emit_replayed_alert(sid, alert_wire(by_id[alert_id]))
    result = {"replayed": len(fresh), "truncated": truncated}
    if truncated and missed:
        result["oldest_replayed_at"] = isoformat_z(missed[0]["raised_at"])
    return result
