"""Storage: real MongoDB through pymongo, or the embedded engine through the same calls.

The embedded engine (mongomock-ng) has two measured defects that this module fixes:
- it is not thread-safe, so every engine call runs under one process-wide lock
  (`engine_lock`), which also makes read-modify-write operations atomic;
- its cursor re-slices the whole result list for every document it yields, which
  makes `list(find())` quadratic; `_patch_cursor` makes iteration linear.
It still scans every collection on every query: callers bound their queries. Its TTL indexes
would cost a full scan per write, so on this engine they are created without expiry and the
retention job deletes old documents instead.
"""
import functools
import json
import logging
import os
import threading
import time

from flask import current_app
import pymongo
from pymongo import ASCENDING, DESCENDING, IndexModel, MongoClient, monitoring
from pymongo.errors import CollectionInvalid, OperationFailure

from src import outages

log = logging.getLogger(__name__)

COLLECTIONS_FILE = os.path.join(os.path.dirname(__file__), "models", "collections.json")

# One lock for the embedded engine, per process. Re-entrant because engine methods
# call each other (find_one -> find, update -> find).
engine_lock = threading.RLock()

_LOCKED_METHODS = (
    "insert_one", "insert_many", "find_one", "find_one_and_update", "find_one_and_delete",
    "find_one_and_replace", "update_one", "update_many", "replace_one", "delete_one",
    "delete_many", "count_documents", "estimated_document_count", "distinct", "aggregate",
    "bulk_write", "create_index", "create_indexes", "drop_index", "drop", "index_information",
)
_patched = False
PING_TIMEOUT_S = 0.5


def _locked(method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with engine_lock:
            return method(*args, **kwargs)
    return wrapper


def _patch_cursor(cursor_cls):
    """Make cursor iteration linear: slice the result window once, not per document."""
    compute = cursor_cls._compute_results

    def window(self):
        key = (self._factory, self._skip, self._limit)
        cached = self.__dict__.get("_citypulse_window")
        if cached is None or cached[0] != key:
            with engine_lock:
                cached = (key, compute(self, with_limit_and_skip=True))
            self.__dict__["_citypulse_window"] = cached
        return cached[1]

    def next_doc(self):
        results = window(self)
        if self._emitted >= len(results):
            raise StopIteration
        doc = results[self._emitted]
        self._emitted += 1
        return _cast(doc, self.collection.codec_options.document_class)

    from mongomock_ng.collection import _cast_document_class as _cast

    cursor_cls.__next__ = next_doc
    cursor_cls.next = next_doc
    cursor_cls._compute_results = _locked(compute)


def _patch_id_lookup(collection_cls):
    """A filter on one `_id` reads that document, not the whole collection.

    mongomock-ng tests every document against every filter. Documents are stored by `_id`, so
    `{"_id": <scalar>, ...}` (the latest value of a sensor, on every reading) can look the one
    candidate up and test only it: MongoDB's `_id` index does the same.
    """
    from bson import ObjectId
    from mongomock_ng import filtering

    iter_documents = collection_cls._iter_documents

    def _iter_documents(self, filter):
        doc_id = filter.get("_id") if isinstance(filter, dict) else None
        if type(doc_id) not in (str, int, ObjectId):  # an operator, a sub-document, a float: scan
            return iter_documents(self, filter)
        try:
            document = self._store[doc_id]
        except KeyError:
            return iter(())
        return iter([document] if filtering.filter_applies(filter, document) else [])

    collection_cls._iter_documents = _iter_documents


def patch_embedded_engine():
    """Apply the thread-safety lock, the cursor fix and the `_id` lookup to mongomock-ng, once."""
    global _patched
    if _patched:
        return
    from mongomock_ng.collection import Collection, Cursor

    for name in _LOCKED_METHODS:
        if hasattr(Collection, name):
            setattr(Collection, name, _locked(getattr(Collection, name)))
    _patch_cursor(Cursor)
    _patch_id_lookup(Collection)
    _patched = True


class OutageListener(monitoring.ServerHeartbeatListener):
    """pymongo's monitor checks the server every few seconds; its verdict starts and ends outages."""

    def started(self, event):
        pass

    def succeeded(self, event):
        outages.mongodb.recovered()

    def failed(self, event):
        outages.mongodb.failed(event.reply)


def make_client(uri, timeout_ms):
    """A pymongo client for `uri`, or an embedded one when `uri` is empty."""
    if uri:
        # socketTimeoutMS bounds every read, so a server that accepts and then never answers
        # costs a request timeout_ms and a 503, not a hung worker.
        return MongoClient(
            uri, tz_aware=True, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms,
            socketTimeoutMS=timeout_ms, appname="citypulse", event_listeners=[OutageListener()],
        )
    import mongomock_ng
    from mongomock_ng.gridfs import enable_gridfs_integration

    patch_embedded_engine()
    enable_gridfs_integration()  # task exports are stored in GridFS on both engines
    return mongomock_ng.MongoClient(tz_aware=True)


def init_app(app):
    """Create this app's client and database handle (no network I/O until first use)."""
    client = make_client(app.config["MONGO_URI"], app.config["MONGO_TIMEOUT_MS"])
    app.extensions["mongo_client"] = client
    app.extensions["mongo_db"] = client[app.config["MONGO_DB_NAME"]]
    app.extensions["mongo_engine"] = "mongodb" if app.config["MONGO_URI"] else "embedded"


def get_db(app=None):
    """The database of `app`, or of the current app."""
    return (app or current_app).extensions["mongo_db"]


def is_embedded(app=None):
    return (app or current_app).extensions["mongo_engine"] == "embedded"


def ping(app=None):
    """Return (ok, latency_ms, error) for the database."""
    started = time.perf_counter()
    try:
        # At most half a second: health and readiness probes have short deadlines of their own.
        with pymongo.timeout(PING_TIMEOUT_S):
            get_db(app).command("ping")
    except Exception as exc:  # any failure means "not reachable" to a health check
        return False, None, exc.__class__.__name__
    outages.mongodb.recovered()
    return True, round((time.perf_counter() - started) * 1000, 2), None


def load_collection_specs():
    """Collections, validators and indexes, shared with mongo-init.js."""
    with open(COLLECTIONS_FILE, encoding="utf-8") as fh:
        return json.load(fh)


def _index_model(spec, ttl_seconds, embedded=False):
    keys = [(field, DESCENDING if direction == -1 else ASCENDING) for field, direction in spec["keys"]]
    options = {"name": spec["name"]}
    if spec.get("unique"):
        options["unique"] = True
    if spec.get("sparse"):
        options["sparse"] = True
    # mongomock-ng checks every TTL index on every write, a scan of the whole collection each
    # time (measured: 0.5 -> 12 ms per reading at 4k readings). The retention job expires instead.
    if "ttl" in spec and not embedded:
        options["expireAfterSeconds"] = ttl_seconds if spec["ttl"] == "RAW_RETENTION" else int(spec["ttl"])
    return IndexModel(keys, **options)


def ensure_schema(db, raw_retention_hours):
    """Create collections (with validators on real MongoDB) and every index, idempotently."""
    specs = load_collection_specs()
    ttl_seconds = int(raw_retention_hours) * 3600
    existing = set(db.list_collection_names())
    embedded = db.client.__class__.__module__.startswith("mongomock")
    for name, spec in specs["collections"].items():
        if name not in existing:
            try:
                if embedded or not spec.get("validator"):
                    db.create_collection(name)
                else:
                    db.create_collection(name, validator=spec["validator"], validationLevel="moderate")
            except CollectionInvalid:
                pass  # another process created it first
        elif spec.get("validator") and not embedded:
            # Existing databases get today's validator too, so collections.json stays the truth.
            try:
                db.command("collMod", name, validator=spec["validator"], validationLevel="moderate")
            except OperationFailure as exc:  # e.g. a least-privilege readWrite user
                log.warning("could not update the validator of %s (%s); keeping the existing one", name,
                            exc.code)
        for index in spec.get("indexes", []):
            try:
                reconcile_index(db[name], index, ttl_seconds, embedded)
            except Exception as exc:  # one index never aborts the bootstrap (the admin comes after)
                log.error("index %s.%s not reconciled (%s: %s); continuing", name, index["name"],
                          getattr(exc, "code", None) or exc.__class__.__name__, exc)


# Index options that make two indexes on the same keys differ (MongoDB compares these).
_COMPARED_OPTIONS = ("unique", "sparse", "expireAfterSeconds")


def _normalized_keys(keys):
    """[(field, direction)] with numeric directions as ints, whatever the server returned."""
    return [(field, int(direction) if isinstance(direction, (int, float)) else direction)
            for field, direction in (keys.items() if hasattr(keys, "items") else keys)]


def _options(info):
    return {option: info[option] for option in _COMPARED_OPTIONS
            if option in info and info[option] not in (None, False)}


def reconcile_index(collection, index, ttl_seconds, embedded=False):
    """Make `collection` carry the declared index, sending only what is needed.

    MongoDB refuses an index with the same keys under another name (85, IndexOptionsConflict),
    the same name with other keys (86, IndexKeySpecsConflict) or other options (85). So compare
    with index_information() first: a TTL change is a collMod; anything else that truly differs
    is dropped by its EXISTING name and created again. Returns what was done, for logs and tests.
    """
    model = _index_model(index, ttl_seconds, embedded)
    document = model.document
    name = document["name"]
    keys = _normalized_keys(document["key"])
    wanted = _options(document)
    existing = collection.index_information()

    current = existing.get(name)
    if current is not None and _normalized_keys(current["key"]) == keys:
        have = _options(current)
        if have == wanted:
            return "unchanged"
        if ({k: v for k, v in have.items() if k != "expireAfterSeconds"}
                == {k: v for k, v in wanted.items() if k != "expireAfterSeconds"}
                and "expireAfterSeconds" in have and "expireAfterSeconds" in wanted):
            # A new retention: change the TTL in place, no rebuild, no window without the index.
            collection.database.command("collMod", collection.name,
                                        index={"name": name, "expireAfterSeconds": wanted["expireAfterSeconds"]})
            log.info("index %s.%s: expireAfterSeconds %s -> %s", collection.name, name,
                     have["expireAfterSeconds"], wanted["expireAfterSeconds"])
            return "collMod"

    # Everything in the way: the same name with other keys or options, the same keys under another name.
    conflicting = [other for other, info in existing.items()
                   if other != "_id_" and (other == name or _normalized_keys(info["key"]) == keys)]
    for other in conflicting:
        log.warning("index %s.%s differs from the declared %s; rebuilding it", collection.name, other, name)
        try:
            collection.drop_index(other)
        except OperationFailure as exc:
            if exc.code != 27:  # IndexNotFound: another process dropped it first
                raise
    collection.create_indexes([model])
    return "rebuilt" if conflicting else "created"
