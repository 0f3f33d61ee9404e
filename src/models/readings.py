"""The `readings` collection: every raw reading of every module, with a `module` field."""
from pymongo import ASCENDING, DESCENDING

SORTABLE = ("timestamp", "sensor_id", "district")


def insert_many(db, readings):
    """Store readings (dicts are given their `_id`)."""
    if readings:
        db.readings.insert_many(readings, ordered=True)
    return readings


def _range_query(module, sensor_id=None, district=None, start=None, end=None, source=None):
    query = {"module": module}
    if sensor_id:
        query["sensor_id"] = sensor_id
    if district:
        query["district"] = district
    if source:
        query["source"] = source
    if start or end:
        query["timestamp"] = {}
        if start:
            query["timestamp"]["$gte"] = start
        if end:
            query["timestamp"]["$lt"] = end
    return query


def find_range(db, module, sensor_id=None, district=None, start=None, end=None, limit=50, offset=0,
               sort="-timestamp", source=None):
    """A page of readings, newest first by default: {items, total}."""
    query = _range_query(module, sensor_id, district, start, end, source)
    field = sort.lstrip("-+")
    direction = DESCENDING if sort.startswith("-") else ASCENDING
    order = [(field, direction)] + ([("_id", direction)] if field != "_id" else [])
    items = list(db.readings.find(query).sort(order).skip(offset).limit(limit))
    return {"items": items, "total": db.readings.count_documents(query)}


def iter_range(db, module, start, end, sensor_id=None, district=None, batch=2000, fields=None):
    """Yield readings in [start, end) in timestamp order, in bounded batches."""
    query = _range_query(module, sensor_id, district, start, end)
    last = None
    while True:
        page_query = dict(query)
        if last is not None:
            page_query["$or"] = [{"timestamp": {"$gt": last[0]}}, {"timestamp": last[0], "_id": {"$gt": last[1]}}]
        page = list(db.readings.find(page_query, fields).sort([("timestamp", 1), ("_id", 1)]).limit(batch))
        yield from page
        if len(page) < batch:
            return
        last = (page[-1]["timestamp"], page[-1]["_id"])


def delete_older_than(db, cutoff, limit=None):
    """Delete raw readings with timestamp before `cutoff`; returns the number deleted."""
    return db.readings.delete_many({"timestamp": {"$lt": cutoff}}).deleted_count


def delete_by_source(db, source):
    return db.readings.delete_many({"source": source}).deleted_count


def count(db, module=None):
    return db.readings.count_documents({"module": module} if module else {})
