"""What the two incident collections (`emergency_incidents`, `traffic_incidents`) share.

Both keep the same core document (type, severity, location, district, status, reported_at, ...),
are listed with the same filters and move between statuses with the same guarded update; each
collection module makes one `IncidentCollection` and adds what only it has.
"""
from pymongo import ReturnDocument

from src.domain import now_utc
from src.models import query


class IncidentCollection:
    """The create/read/list/transition queries of one incident collection, named by `name`."""

    def __init__(self, name, list_fields=()):
        self.name = name
        # Fields that start as empty lists, so the $push updates made later always find a list.
        self.list_fields = tuple(list_fields)

    def collection(self, db):
        """This collection in `db` (attribute access, which test doubles of the database also offer)."""
        return getattr(db, self.name)

    def create(self, db, doc):
        """Insert `doc` with updated_at (and reported_at, status and list fields when absent); returns it."""
        now = now_utc()
        doc = dict(doc, updated_at=now)
        doc.setdefault("reported_at", now)
        doc.setdefault("status", "reported")
        for field in self.list_fields:
            doc.setdefault(field, [])
        self.collection(db).insert_one(doc)
        return doc

    def get(self, db, incident_id):
        """The incident with this id (string or ObjectId), or None."""
        return query.by_id(self.collection(db), incident_id)

    @staticmethod
    def filter(status=None, incident_type=None, severity=None, district=None, start=None, end=None):
        """The query for these equalities and `start <= reported_at < end`."""
        return query.within(query.matching(status=status, type=incident_type, severity=severity, district=district),
                            "reported_at", start, end)

    def list_page(self, db, limit=50, offset=0, sort="-reported_at", **filters):
        """One page of the incidents matching `filters` (the arguments of `filter`)."""
        return query.page(self.collection(db), self.filter(**filters), sort, limit, offset)

    def update_if_status(self, db, incident_id, from_statuses, changes, push=None):
        """Apply `changes` only while the incident is in one of `from_statuses`; the updated doc, or None.

        The status condition is what makes a transition atomic across processes.
        """
        key = query.object_id(incident_id)
        if key is None:
            return None
        update = {"$set": dict(changes, updated_at=now_utc())}
        if push:
            update["$push"] = push
        return self.collection(db).find_one_and_update(
            {"_id": key, "status": {"$in": list(from_statuses)}}, update, return_document=ReturnDocument.AFTER)

    def delete_by_source(self, db, source):
        """Delete the incidents recorded by `source` (e.g. the simulator); how many went."""
        return self.collection(db).delete_many({"source": source}).deleted_count
