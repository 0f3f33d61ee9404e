"""The storage layer: embedded-engine fixes, schema bootstrap, UTC datetimes."""
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from pymongo import ReturnDocument

from src import db as storage
from tests.fakes import QueryRecorder


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


def test_a_filter_on_one_id_reads_one_document_with_the_same_answers(embedded, monkeypatch):
    """The latest-value upsert on every reading filters on `_id`: it must not test every document."""
    from bson import ObjectId
    from mongomock_ng import filtering

    oid = ObjectId()
    embedded.latest.insert_many([{"_id": f"traffic:T{i}", "ts": i} for i in range(300)]
                                + [{"_id": 7, "ts": 7}, {"_id": oid, "ts": 8}, {"_id": {"a": 1}, "ts": 9}])
    from mongomock_ng import collection as engine_collection

    tested = []
    for module in (filtering, engine_collection):  # ours, and the engine's scan
        monkeypatch.setattr(module, "filter_applies",
                            lambda f, d, *a, applies=filtering.filter_applies: tested.append(d) or applies(f, d, *a))
    assert embedded.latest.find_one({"_id": "traffic:T5"})["ts"] == 5
    assert len(tested) == 1
    assert embedded.latest.find_one({"_id": "traffic:T5", "ts": {"$lte": 4}}) is None  # the rest still applies
    assert embedded.latest.find_one({"_id": "traffic:T999"}) is None
    assert embedded.latest.find_one({"_id": 7})["ts"] == 7 and embedded.latest.find_one({"_id": oid})["ts"] == 8
    assert embedded.latest.update_one({"_id": "traffic:T6", "ts": {"$lte": 6}}, {"$set": {"ts": 60}}).matched_count == 1
    assert embedded.latest.find_one({"_id": "traffic:T6"})["ts"] == 60
    assert embedded.latest.delete_one({"_id": "traffic:T7"}).deleted_count == 1
    assert embedded.latest.count_documents({"_id": "traffic:T7"}) == 0
    # Operators and sub-documents still scan, with the same answers.
    assert [d["ts"] for d in embedded.latest.find({"_id": {"$in": ["traffic:T1", 7]}}).sort("ts", 1)] == [1, 7]
    assert embedded.latest.find_one({"_id": {"a": 1}})["ts"] == 9


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
            recorder = QueryRecorder()
            model.list_page(SimpleNamespace(**{collection: recorder}), sort=sort)
            assert_sends(recorder.specs[0], field, direction)


def test_page_and_keyset_sort_specs_never_repeat_id():
    from bson import ObjectId

    from src.models import query

    for sort, direction in (("_id", 1), ("-_id", -1), ("timestamp", 1), ("-timestamp", -1)):
        recorder = QueryRecorder()
        query.page(recorder, {}, sort, 10, 0)
        assert_sends(recorder.specs[0], sort.lstrip("-"), direction)
    recorder = QueryRecorder(rows=[{"_id": ObjectId()}])
    assert len(list(query.in_batches(recorder, {}, "_id", 5))) == 1
    assert_sends(recorder.specs[0], "_id", 1)


class FakeMongoCollection:
    """Records what ensure_schema sends and answers as MongoDB 7 does (codes 85, 86, 27)."""

    def __init__(self, database, name):
        self.database, self.name = database, name
        self.indexes = {"_id_": {"key": [("_id", 1)], "v": 2}}
        self.fail_on = {}  # index name -> OperationFailure to raise on create

    def index_information(self):
        return {name: dict(info, key=list(info["key"])) for name, info in self.indexes.items()}

    def create_indexes(self, models):
        from pymongo.errors import OperationFailure

        for model in models:
            doc = dict(model.document)
            name, keys = doc.pop("name"), list(doc.pop("key").items())
            self.database.calls.append(("create_indexes", self.name, name))
            if name in self.fail_on:
                raise self.fail_on[name]
            for other, info in self.indexes.items():
                same_keys = info["key"] == keys
                options = {k: v for k, v in info.items() if k not in ("key", "v")}
                if other == name and not same_keys:
                    raise OperationFailure(f"An existing index has the same name as the requested index. "
                                           f"Requested index: {name}, existing index: {other}", 86)
                if other == name and options != doc:
                    raise OperationFailure("An existing index has the same name as the requested index. "
                                           "When index names are not specified, they are auto generated "
                                           "and can cause conflicts", 85)
                if same_keys and other != name:
                    raise OperationFailure(f"Index already exists with a different name: {other}", 85)
            self.indexes[name] = dict(doc, key=keys, v=2)

    def drop_index(self, name):
        from pymongo.errors import OperationFailure

        self.database.calls.append(("drop_index", self.name, name))
        if name not in self.indexes:
            raise OperationFailure(f"index not found with name [{name}]", 27)
        del self.indexes[name]


class FakeMongoDatabase:
    """A database whose collections are FakeMongoCollection; `calls` is everything sent."""

    class client:  # not the embedded engine, so TTL indexes get their expiry
        pass

    def __init__(self):
        self.calls, self.collections = [], {}
        self.client = FakeMongoDatabase.client()

    def __getitem__(self, name):
        return self.collections.setdefault(name, FakeMongoCollection(self, name))

    def list_collection_names(self):
        return list(self.collections)

    def create_collection(self, name, **options):
        self.calls.append(("create_collection", name))
        return self[name]

    def command(self, command, name, **fields):
        self.calls.append((command, name, fields))
        if command == "collMod" and "index" in fields:
            self[name].indexes[fields["index"]["name"]]["expireAfterSeconds"] = fields["index"]["expireAfterSeconds"]
        return {"ok": 1}

    def index_calls(self):
        return [call for call in self.calls if call[0] in ("create_indexes", "drop_index")
                or (call[0] == "collMod" and "index" in call[2])]


def declared_names():
    return {name: {index["name"] for index in spec.get("indexes", [])}
            for name, spec in storage.load_collection_specs()["collections"].items()}


@pytest.fixture
def bootstrapped():
    database = FakeMongoDatabase()
    storage.ensure_schema(database, 24)
    for name, names in declared_names().items():
        assert names <= set(database[name].indexes), name
    database.calls.clear()
    return database


def test_ensure_schema_sends_nothing_when_indexes_match(bootstrapped):
    storage.ensure_schema(bootstrapped, 24)
    assert bootstrapped.index_calls() == []


def test_a_retention_change_is_a_collmod_not_a_rebuild(bootstrapped):
    storage.ensure_schema(bootstrapped, 12)
    assert bootstrapped.index_calls() == [
        ("collMod", "readings", {"index": {"name": "timestamp_ttl", "expireAfterSeconds": 12 * 3600}})]
    assert bootstrapped["readings"].indexes["timestamp_ttl"]["expireAfterSeconds"] == 12 * 3600


def test_same_keys_under_another_name_drops_the_existing_name(bootstrapped):
    """MongoDB answers 85 here; dropping the declared (new) name would fail with 27."""
    readings = bootstrapped["readings"]
    readings.indexes["module_1_timestamp_-1"] = readings.indexes.pop("module_timestamp")
    storage.ensure_schema(bootstrapped, 24)
    assert bootstrapped.index_calls() == [("drop_index", "readings", "module_1_timestamp_-1"),
                                          ("create_indexes", "readings", "module_timestamp")]
    assert "module_timestamp" in readings.indexes and "module_1_timestamp_-1" not in readings.indexes


def test_same_name_with_other_keys_is_rebuilt(bootstrapped):
    """MongoDB answers 86 here."""
    alerts = bootstrapped["alerts"]
    alerts.indexes["module_created"]["key"] = [("module", 1)]
    storage.ensure_schema(bootstrapped, 24)
    assert bootstrapped.index_calls() == [("drop_index", "alerts", "module_created"),
                                          ("create_indexes", "alerts", "module_created")]
    assert alerts.indexes["module_created"]["key"] == [("module", 1), ("created_at", -1), ("_id", -1)]


def test_same_name_with_other_options_is_rebuilt(bootstrapped):
    users = bootstrapped["users"]
    del users.indexes["email_unique"]["unique"]
    storage.ensure_schema(bootstrapped, 24)
    assert bootstrapped.index_calls() == [("drop_index", "users", "email_unique"),
                                          ("create_indexes", "users", "email_unique")]
    assert users.indexes["email_unique"]["unique"] is True


def test_the_old_index_sequence_would_have_failed():
    """What ensure_schema used to send for a renamed index: MongoDB refuses both steps."""
    from pymongo.errors import OperationFailure

    database = FakeMongoDatabase()
    readings = database["readings"]
    readings.indexes["module_1_timestamp_-1"] = {"key": [("module", 1), ("timestamp", -1)], "v": 2}
    model = storage._index_model({"name": "module_timestamp", "keys": [["module", 1], ["timestamp", -1]]}, 3600)
    with pytest.raises(OperationFailure) as first:
        readings.create_indexes([model])
    assert first.value.code == 85
    with pytest.raises(OperationFailure) as second:
        readings.drop_index("module_timestamp")
    assert second.value.code == 27


def test_one_failing_index_never_aborts_the_bootstrap(caplog):
    from pymongo.errors import OperationFailure

    database = FakeMongoDatabase()
    database["readings"].fail_on["module_timestamp"] = OperationFailure("not authorized", 13)
    with caplog.at_level("ERROR", logger="src.db"):
        storage.ensure_schema(database, 24)
    for name, names in declared_names().items():
        expected = names - {"module_timestamp"} if name == "readings" else names
        assert expected <= set(database[name].indexes), name
    lines = [record.getMessage() for record in caplog.records if "not reconciled" in record.getMessage()]
    assert len(lines) == 1 and "readings.module_timestamp" in lines[0]


def test_embedded_engine_reconciles_a_renamed_index():
    database = storage.make_client(None, 1000)["engine_reconcile"]
    storage.ensure_schema(database, 24)
    database.readings.drop_index("module_timestamp")
    database.readings.create_index([("module", 1), ("timestamp", -1), ("_id", -1)], name="legacy_name")
    storage.ensure_schema(database, 24)
    present = database.readings.index_information()
    assert "module_timestamp" in present and "legacy_name" not in present
