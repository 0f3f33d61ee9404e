"""Query building blocks shared by the collection modules."""
from bson import ObjectId
from bson.errors import InvalidId


def object_id(value):
    """An ObjectId from its string (or itself); None when it is not one, so lookups find nothing."""
    try:
        return ObjectId(value)
    except (InvalidId, TypeError):
        return None


def by_id(collection, value):
    """The document with this id (string or ObjectId), or None, including for a malformed id."""
    key = object_id(value)
    return collection.find_one({"_id": key}) if key else None


def matching(**fields):
    """An equality filter of the given fields that have a value; lists and tuples become $in."""
    query = {}
    for field, value in fields.items():
        if isinstance(value, (list, tuple)):
            query[field] = {"$in": list(value)}
        elif value is not None and value != "":
            query[field] = value
    return query


def within(query, field, start=None, end=None):
    """Add `start <= field < end` (either bound optional) to `query`; returns it."""
    if start or end:
        query[field] = {}
        if start:
            query[field]["$gte"] = start
        if end:
            query[field]["$lt"] = end
    return query


def sort_spec(sort, tiebreak="_id"):
    """[(field, direction), (tiebreak, direction)] for `field` or `-field`, never repeating a key."""
    field = sort.lstrip("-+")
    direction = -1 if sort.startswith("-") else 1
    # pymongo sends the list as a document, where a repeated key keeps only its last direction.
    return [(field, direction)] + ([(tiebreak, direction)] if tiebreak != field else [])


def page(collection, query, sort, limit, offset, projection=None, tiebreak="_id"):
    """{items, total, limit, offset} for one page; `sort` is `field` or `-field`, ties broken by `tiebreak`."""
    order = sort_spec(sort, tiebreak)
    items = list(collection.find(query, projection).sort(order).skip(offset).limit(limit))
    return {"items": items, "total": collection.count_documents(query), "limit": limit, "offset": offset}


def in_batches(collection, criteria, field, batch, projection=None):
    """Every matching document in (field, _id) order, fetched `batch` at a time (keyset paging,
    so no query ever materialises a long range at once)."""
    last = None
    while True:
        page_criteria = dict(criteria)
        if last is not None and field == "_id":
            page_criteria["_id"] = {"$gt": last[1]}
        elif last is not None:
            page_criteria["$or"] = [{field: {"$gt": last[0]}}, {field: last[0], "_id": {"$gt": last[1]}}]
        page = list(collection.find(page_criteria, projection).sort(sort_spec(field)).limit(batch))
        yield from page
        if len(page) < batch:
            return
        last = (page[-1][field], page[-1]["_id"])
