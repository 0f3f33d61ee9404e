"""The `users` collection."""
from pymongo import ReturnDocument

from src.domain import now_utc
from src.models import query

ROLES = ("admin", "operator", "viewer")



_oid = query.object_id


def create(db, email, username, password_hash, role, full_name=None, user_id=None):
    """Insert a user (with `user_id`, or a new ObjectId); a duplicate email or username raises DuplicateKeyError."""
    now = now_utc()
    doc = {} if user_id is None else {"_id": user_id}
    doc.update({
        "email": email.lower(),
        "username": username,
        "password_hash": password_hash,
        "role": role,
        "full_name": full_name,
        "active": True,
        "created_at": now,
        "updated_at": now,
        "password_changed_at": None,
        "last_login_at": None,
    })
    doc["_id"] = db.users.insert_one(doc).inserted_id
    return doc


def get(db, user_id):
    return query.by_id(db.users, user_id)


def find_by_email(db, email):
    return db.users.find_one({"email": email.lower()})


def find_by_username(db, username):
    return db.users.find_one({"username": username})


def count(db):
    return db.users.count_documents({})


def update(db, user_id, fields):
    """Set `fields` and return the updated user, or None if there is no such user."""
    changes = dict(fields, updated_at=now_utc())
    return db.users.find_one_and_update(
        {"_id": _oid(user_id)}, {"$set": changes}, return_document=ReturnDocument.AFTER
    )


def set_password(db, user_id, password_hash):
    """Store a new password hash."""
    return update(db, user_id, {"password_hash": password_hash, "password_changed_at": now_utc()})


def record_login(db, user_id):
    db.users.update_one({"_id": _oid(user_id)}, {"$set": {"last_login_at": now_utc()}})


def page(db, role=None, active=None, limit=50, offset=0, sort="-created_at"):
    """{items, total} of users matching `role` and `active`, without password hashes."""
    criteria = query.matching(role=role)
    if active is not None:
        criteria["active"] = active
    # email is unique, so it needs no tie-breaker (and then the email_unique index serves the sort).
    tiebreak = "email" if sort.lstrip("-+") == "email" else "_id"
    return query.page(db.users, criteria, sort, limit, offset, projection={"password_hash": 0}, tiebreak=tiebreak)


def access_of(db, user_ids):
    """_id, role and active of the given users, in one query."""
    ids = [key for key in (_oid(uid) for uid in user_ids) if key is not None]
    return list(db.users.find({"_id": {"$in": ids}}, {"role": 1, "active": 1}).limit(len(ids)))


def count_active_admins(db):
    return db.users.count_documents({"role": "admin", "active": True})
