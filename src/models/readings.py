"""The `readings` collection: every raw reading of every module, with a `module` field."""
from src.models import query

def insert_many(db, readings):
    """Store readings (dicts are given their `_id`)."""
    if readings:
        db.readings.insert_many(readings, ordered=True)
    return readings


def _range_query(module, sensor_id=None, district=None, start=None, end=None, source=None):
    return query.within(query.matching(module=module, sensor_id=sensor_id, district=district, source=source),
                        "timestamp", start, end)


def find_range(db, module, sensor_id=None, district=None, start=None, end=None, limit=50, offset=0,
               sort="-timestamp", source=None):
    """A page of readings, newest first by default: {items, total}."""
    return query.page(db.readings, _range_query(module, sensor_id, district, start, end, source), sort, limit,
                      offset)


def iter_range(db, module, start, end, sensor_id=None, district=None, batch=2000, fields=None):
    """Yield readings in [start, end) in timestamp order, in bounded batches."""
    criteria = _range_query(module, sensor_id, district, start, end)
    return query.in_batches(db.readings, criteria, "timestamp", batch, fields)


def delete_older_than(db, cutoff):
    """Delete raw readings with timestamp before `cutoff`; returns the number deleted."""
    return db.readings.delete_many({"timestamp": {"$lt": cutoff}}).deleted_count


def delete_by_source(db, source):
    return db.readings.delete_many({"source": source}).deleted_count


def count(db, module=None):
    return db.readings.count_documents({"module": module} if module else {})
