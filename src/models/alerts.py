"""The `alerts` collection.

One *open* (active or acknowledged) alert per (sensor, rule): `open_key` is set only while an
alert is open and carries a unique sparse index, so dedup is a single atomic upsert on either
engine. `raised_at` is when the alert was created or last escalated; replay follows it.
"""

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from src.domain import SEVERITY_RANK, now_utc
from src.models import query

OPEN_STATUSES = ("active", "acknowledged")
STATUSES = ("active", "acknowledged", "resolved")
# Raised by the stale-sensor job rather than by a rule document.
OFFLINE_RULE_ID = "system.sensor_offline"



oid = query.object_id


def open_key(sensor_id, rule_id):
    return f"{sensor_id}|{rule_id}"


def raise_or_bump(db, *, module, sensor_id, rule_id, alert_type, severity, message, value, threshold,
                  district=None, location=None, extra=None, now=None):
    """Open an alert, or bump the open one for (sensor, rule).

    Returns (alert, change) where change is "created", "escalated", "deescalated" or "repeated".
    """
    now = now or now_utc()
    key = open_key(sensor_id, rule_id)
    rank = SEVERITY_RANK[severity]
    insert_fields = {
        "module": module, "sensor_id": sensor_id, "rule_id": rule_id, "type": alert_type,
        "status": "active", "created_at": now, "raised_at": now, "severity": severity, "severity_rank": rank,
        "district": district, "location": location, "first_value": value,
    }
    if extra:
        insert_fields.update(extra)
    update = {
        "$setOnInsert": insert_fields,
        "$set": {"last_seen": now, "value": value, "threshold": threshold, "message": message},
        "$inc": {"count": 1},
    }
    for _ in range(3):  # two processes may race to insert; the loser retries as a bump
        try:
            before = db.alerts.find_one_and_update({"open_key": key}, update, upsert=True,
                                                   return_document=ReturnDocument.BEFORE)
            break
        except DuplicateKeyError:
            continue
    else:
        raise RuntimeError(f"could not raise alert {key}")
    if before is None:
        return db.alerts.find_one({"open_key": key}), "created"
    if before["severity_rank"] == rank:
        after = dict(before, last_seen=now, value=value, threshold=threshold, message=message,
                     count=before.get("count", 0) + 1)
        return after, "repeated"
    change = "escalated" if rank > before["severity_rank"] else "deescalated"
    fields = {"severity": severity, "severity_rank": rank}
    if change == "escalated":
        # News to subscribers of the higher severity, and back on the operators' active list.
        fields.update(raised_at=now, status="active")
    # Conditional, so concurrent changes cannot undo each other: an escalation applies only while the
    # alert is still below our severity (the highest always wins), a de-escalation only while the
    # alert is still at the severity we saw.
    guard = {"$lt": rank} if change == "escalated" else before["severity_rank"]
    after = db.alerts.find_one_and_update(
        {"_id": before["_id"], "severity_rank": guard},
        {"$set": fields, "$push": {"severity_history": {"from": before["severity"], "to": severity, "at": now}}},
        return_document=ReturnDocument.AFTER)
    if after is None:
        return db.alerts.find_one({"_id": before["_id"]}), "repeated"
    return after, change


def resolve_open(db, sensor_id, rule_id, by="system", note=None, now=None):
    """Resolve the open alert for (sensor, rule), if any; returns it or None."""
    return _resolve({"open_key": open_key(sensor_id, rule_id)}, db, by, note, now)


def _resolve(query, db, by, note, now):
    now = now or now_utc()
    changes = {"status": "resolved", "resolved_at": now, "resolved_by": by}
    if note is not None:
        changes["note"] = note
    return db.alerts.find_one_and_update(
        dict(query, status={"$in": list(OPEN_STATUSES)}),
        {"$set": changes, "$unset": {"open_key": ""}}, return_document=ReturnDocument.AFTER)


def resolve_open_for_rule(db, rule_id, by="system", note=None, limit=10000):
    """Resolve every open alert of a rule (it was disabled or deleted); returns them."""
    resolved = []
    for doc in db.alerts.find({"rule_id": rule_id, "open_key": {"$exists": True}}, {"_id": 1}).limit(limit):
        alert = _resolve({"_id": doc["_id"]}, db, by, note, None)
        if alert:
            resolved.append(alert)
    return resolved


def resolve(db, alert_id, by, note=None):
    """Resolve an open alert by id; None if it is missing or already resolved."""
    return _resolve({"_id": oid(alert_id)}, db, by, note, None)


def acknowledge(db, alert_id, by, note=None):
    """Acknowledge an active alert; None if it is missing or not active."""
    changes = {"status": "acknowledged", "acknowledged_at": now_utc(), "acknowledged_by": by}
    if note is not None:
        changes["note"] = note
    return db.alerts.find_one_and_update({"_id": oid(alert_id), "status": "active"}, {"$set": changes},
                                         return_document=ReturnDocument.AFTER)


def insert_event_alert(db, alert):
    """Store a one-off alert that has no open/resolve cycle (e.g. an emergency dispatch)."""
    now = alert.get("created_at") or now_utc()
    doc = dict(alert, created_at=now, raised_at=now, last_seen=now, count=1,
               severity_rank=SEVERITY_RANK[alert["severity"]])
    doc.setdefault("status", "active")
    db.alerts.insert_one(doc)
    return doc


def get(db, alert_id):
    return query.by_id(db.alerts, alert_id)


def _filter(module=None, severity=None, status=None, sensor_id=None, district=None, start=None, end=None,
            alert_type=None):
    return query.within(query.matching(module=module, severity=severity, status=status, sensor_id=sensor_id,
                                       district=district, type=alert_type), "created_at", start, end)


def find_page(db, limit=50, offset=0, sort="-created_at", **filters):
    """A page of alerts matching the filters: {items, total}."""
    return query.page(db.alerts, _filter(**filters), sort, limit, offset)


def raised_after(db, after_time, after_id=None, modules=None, severities=None, limit=500):
    """Alerts raised after (after_time, after_id), newest `limit` of them, returned oldest first."""
    criteria = _filter(module=modules, severity=severities)
    if after_id is not None:
        criteria["$or"] = [{"raised_at": {"$gt": after_time}}, {"raised_at": after_time, "_id": {"$gt": after_id}}]
    else:
        criteria["raised_at"] = {"$gt": after_time}
    newest = list(db.alerts.find(criteria).sort([("raised_at", -1), ("_id", -1)]).limit(limit + 1))
    truncated = len(newest) > limit
    return list(reversed(newest[:limit])), truncated


def count_open_by_severity(db, module=None):
    criteria = {"status": {"$in": list(OPEN_STATUSES)}}
    if module:
        criteria["module"] = module
    counts = {s: 0 for s in SEVERITY_RANK}
    for severity in SEVERITY_RANK:
        counts[severity] = db.alerts.count_documents(dict(criteria, severity=severity))
    return counts


def open_keys(db, limit=100000):
    """The open_key of every open alert, to warm the in-process index."""
    return [d["open_key"] for d in db.alerts.find({"open_key": {"$exists": True}}, {"open_key": 1}).limit(limit)]


def delete_by_source(db, source):
    return db.alerts.delete_many({"source": source}).deleted_count


def delete_resolved_before(db, cutoff):
    return db.alerts.delete_many({"status": "resolved", "resolved_at": {"$lt": cutoff}}).deleted_count


def count_created(db, start, end, module=None, severity=None):
    """Alerts created in [start, end), of one module (a name) or several (a list)."""
    criteria = {"created_at": {"$gte": start, "$lt": end}}
    if module:
        criteria["module"] = {"$in": list(module)} if isinstance(module, (list, tuple)) else module
    if severity:
        criteria["severity"] = severity
    return db.alerts.count_documents(criteria)


def top_sensors(db, start, end, limit=5, scan_limit=5000):
    """Sensors with the most alerts created in [start, end) (scan bounded by `scan_limit`)."""
    counts = {}
    for doc in db.alerts.find({"created_at": {"$gte": start, "$lt": end}, "sensor_id": {"$ne": None}},
                              {"sensor_id": 1, "module": 1}).limit(scan_limit):
        key = (doc["sensor_id"], doc["module"])
        counts[key] = counts.get(key, 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return [{"sensor_id": s, "module": m, "alerts": n} for (s, m), n in ranked]


def response_times(db, start, end, scan_limit=5000):
    """Mean seconds to acknowledge and to resolve, for alerts created in [start, end)."""
    ack, res = [], []
    for doc in db.alerts.find({"created_at": {"$gte": start, "$lt": end}},
                              {"created_at": 1, "acknowledged_at": 1, "resolved_at": 1}).limit(scan_limit):
        if doc.get("acknowledged_at"):
            ack.append((doc["acknowledged_at"] - doc["created_at"]).total_seconds())
        if doc.get("resolved_at"):
            res.append((doc["resolved_at"] - doc["created_at"]).total_seconds())
    mean = lambda xs: round(sum(xs) / len(xs), 1) if xs else None  # noqa: E731
    return {"mean_time_to_acknowledge_s": mean(ack), "mean_time_to_resolve_s": mean(res),
            "acknowledged": len(ack), "resolved": len(res)}
