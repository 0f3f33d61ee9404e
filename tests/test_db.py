"""The storage layer: embedded-engine fixes, schema bootstrap, UTC datetimes."""
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from pymongo import ReturnDocument

from src import db as storage


@pytest.fixture
def embedded():
    return storage.make_client(None, 1000)["engine_test"]


def test_cursor_iteration_matches_query_semantics(embedded):
    embedded.items.insert_many([{"i": i, "even": i % 2 == 0} for i in range(500)])
    assert [d["i"] for d in embedded.items.find()] == list(range(500))
    assert [d["i"] for d in embedded.items.find({"even": True}).sort("i", -1).skip(3).limit(4)] == [492, 490, 488, 486]
    cursor = embedded.items.find({"i": {"$lt": 3}})
    assert [d["i"] for d in cursor] == [0, 1, 2]
    assert list(cursor) == []  # an exhausted cursor stays exhausted
    cursor.rewind()
    assert len(list(cursor)) == 3
    assert list(embedded.items.find({"i": -1})) == []


def test_cursor_iteration_is_linear_not_quadratic(embedded):
    """16x the documents: the unpatched engine measured ~68x the time here, the patched ~15x."""
    embedded.small.insert_many([{"i": i} for i in range(1000)])
    embedded.large.insert_many([{"i": i} for i in range(16000)])

    def timed(collection):
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            assert len(list(collection.find())) == collection.count_documents({})
            best = min(best, time.perf_counter() - started)
        return best

    ratio = timed(embedded.large) / timed(embedded.small)
    assert ratio < 32, f"16x documents took {ratio:.1f}x as long"


def test_concurrent_claims_never_double_claim(embedded):
    """8 threads claim 400 queued items with find_one_and_update; each is claimed exactly once."""
    embedded.queue.insert_many([{"n": n, "status": "queued"} for n in range(400)])
    claimed = []
    lock = threading.Lock()

    def worker(name):
        while True:
            doc = embedded.queue.find_one_and_update(
                {"status": "queued"}, {"$set": {"status": "running", "by": name}},
                sort=[("n", 1)], return_document=ReturnDocument.AFTER)
            if doc is None:
                return
            with lock:
                claimed.append(doc["n"])

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == list(range(400))
    assert embedded.queue.count_documents({"status": "queued"}) == 0


def test_ensure_schema_creates_every_declared_index(app):
    database = storage.get_db(app)
    specs = storage.load_collection_specs()["collections"]
    for name, spec in specs.items():
        present = set(database[name].index_information())
        assert {index["name"] for index in spec.get("indexes", [])} <= present, name
    storage.ensure_schema(database, app.config["RAW_RETENTION_HOURS"])  # idempotent
    if not storage.is_embedded(app):
        storage.ensure_schema(database, 12)  # a new retention rebuilds the TTL index
        ttl = database.readings.index_information()["timestamp_ttl"]
        assert ttl["expireAfterSeconds"] == 12 * 3600


def test_embedded_engine_gets_no_ttl_expiry(app):
    """A TTL index makes every write scan the collection on mongomock-ng; retention does the job."""
    if not storage.is_embedded(app):
        pytest.skip("embedded engine only")
    for name, spec in storage.load_collection_specs()["collections"].items():
        for index in spec.get("indexes", []):
            info = storage.get_db(app)[name].index_information()[index["name"]]
            assert "expireAfterSeconds" not in info


def test_mongo_init_js_reads_the_same_collection_spec():
    import os

    from tests.conftest import ROOT

    script = open(os.path.join(ROOT, "mongo-init.js"), encoding="utf-8").read()
    compose = open(os.path.join(ROOT, "docker-compose.yml"), encoding="utf-8").read()
    assert "collections.json" in script and "$jsonSchema" not in script
    assert "src/models/collections.json:/citypulse/collections.json" in compose
    assert "mongo-init.js:/docker-entrypoint-initdb.d/" in compose
    for spec in storage.load_collection_specs()["collections"].values():
        assert "$jsonSchema" in spec["validator"]


def test_datetimes_round_trip_as_aware_utc(app):
    database = storage.get_db(app)
    local = datetime(2026, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    database.times.insert_one({"at": local})
    stored = database.times.find_one()["at"]
    assert stored.utcoffset() == timedelta(0)
    assert stored == local


def test_json_serialises_objectids_and_datetimes_with_z(app):
    from bson import ObjectId

    oid = ObjectId()
    with app.app_context():
        body = app.json.dumps({"id": oid, "at": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)})
    assert f'"{oid}"' in body and '"2026-01-02T03:04:05.678Z"' in body


class SortRecorder:
    """A stand-in collection/cursor that records the sort spec pymongo would send to MongoDB."""

    def __init__(self, rows=()):
        self.rows, self.specs = list(rows), []

    def find(self, *args, **kwargs):
        return self

    def sort(self, spec, direction=None):
        self.specs.append(spec)
        return self

    def skip(self, n):
        return self

    def limit(self, n):
        return self

    def __iter__(self):
        return iter(self.rows)

    def count_documents(self, query):
        return 0


def assert_sends(spec, field, direction):
    """pymongo turns the list into a dict, so a repeated key silently keeps its last direction."""
    keys = [key for key, _ in spec]
    assert len(keys) == len(set(keys)), spec
    assert keys[0] == field and dict(spec)[field] == direction, spec


@pytest.mark.parametrize("module, collection, fields", [
    ("bins", "bins", ("bin_id", "fill_level_pct", "district")),
    ("grids", "grids", ("grid_id", "name", "district", "capacity_mw", "utilization_pct")),
    ("units", "units", ("unit_id", "kind", "status", "district")),
])
def test_entity_sort_specs_never_repeat_a_key(module, collection, fields):
    import importlib
    from types import SimpleNamespace

    model = importlib.import_module(f"src.models.{module}")
    for field in fields:
        for sort, direction in ((field, 1), (f"-{field}", -1)):
            recorder = SortRecorder()
            model.list_page(SimpleNamespace(**{collection: recorder}), sort=sort)
            assert_sends(recorder.specs[0], field, direction)


def test_page_and_keyset_sort_specs_never_repeat_id():
    from bson import ObjectId

    from src.models import query

    for sort, direction in (("_id", 1), ("-_id", -1), ("timestamp", 1), ("-timestamp", -1)):
        recorder = SortRecorder()
        query.page(recorder, {}, sort, 10, 0)
        assert_sends(recorder.specs[0], sort.lstrip("-"), direction)
    recorder = SortRecorder([{"_id": ObjectId()}])
    assert len(list(query.in_batches(recorder, {}, "_id", 5))) == 1
    assert_sends(recorder.specs[0], "_id", 1)
