"""Every sort a list or export endpoint sends is served by a declared index (no blocking sort on MongoDB).

The models are called against a recorder that captures the filter and sort spec they would send;
each is checked against collections.json (plus the implicit `_id_` index): some index is an
equality-filter prefix followed by the sort keys, in the same or entirely reversed direction (the
ESR rule). Sort keys bound by an equality filter are dropped first, as MongoDB's planner does. The
prefix may be empty: walking an index that starts with the sort keys, filtering as it goes, is no
blocking sort either. Where a filter nearly always comes with the sort and selects a small part of
a large collection (a module's readings, one owner's tasks), the index must start with an equality
instead, so a page never walks the whole collection.

Two sets of queries are checked: CALLS, the default sort of each list endpoint and the export and
keyset sorts, with typical filters; and every user-chosen sort, enumerated from the `sort`
parameter of each endpoint's flask-smorest query schema (each allowed field, ascending and
descending), each run with the filters it is commonly combined with (SORTED_ENDPOINTS). A new sort
option, or a new endpoint with a `sort` parameter, fails here until an index serves it.
"""
from datetime import datetime, timedelta, timezone

import pytest
from marshmallow import validate

from src import db as storage
from src.models import (alert_rules, alerts, bins, emergency_incidents, grids, readings, rollups, tasks,
                        traffic_incidents, units, users, waste_collections)
from src.routes import BLUEPRINTS
from tests.fakes import RecordingDb

START = datetime(2026, 1, 1, tzinfo=timezone.utc)
END = START + timedelta(days=1)


# (description, call) for every list/export query with its default sort and typical filters.
CALLS = [
    ("readings list", lambda db: readings.find_range(db, "traffic")),
    ("readings list by sensor", lambda db: readings.find_range(db, "traffic", sensor_id="TRF-001")),
    ("readings list by district", lambda db: readings.find_range(db, "traffic", district="Downtown",
                                                                 start=START, end=END)),
    ("readings export", lambda db: list(readings.iter_range(db, "traffic", START, END))),
    ("readings export by sensor", lambda db: list(readings.iter_range(db, "traffic", START, END,
                                                                      sensor_id="TRF-001"))),
    ("readings export by district", lambda db: list(readings.iter_range(db, "traffic", START, END,
                                                                        district="Downtown"))),
    ("rollup refresh", lambda db: rollups.refresh(db, now=END)),
    ("hourly buckets", lambda db: rollups.hourly(db, "energy", start=START, end=END)),
    ("hourly buckets by sensor", lambda db: rollups.hourly(db, "energy", sensor_id="GRID-01")),
    ("hourly buckets by district", lambda db: rollups.hourly(db, "energy", district="Downtown")),
    ("hourly history page", lambda db: rollups.series_page(db, "energy", "hour")),
    ("hourly history page by sensor", lambda db: rollups.series_page(db, "energy", "hour", sensor_id="GRID-01")),
    ("hourly history page ascending", lambda db: rollups.series_page(db, "energy", "hour", descending=False)),
    ("hourly keyset", lambda db: list(rollups.iter_hourly(db, "energy", start=START, end=END))),
    ("hourly keyset by district", lambda db: list(rollups.iter_hourly(db, "energy", district="Downtown"))),
    ("alerts list", lambda db: alerts.find_page(db)),
    ("alerts list by module", lambda db: alerts.find_page(db, module="traffic")),
    ("alerts list by sensor", lambda db: alerts.find_page(db, sensor_id="TRF-001")),
    ("alerts list by status and severity", lambda db: alerts.find_page(db, status="active", severity="high")),
    ("alerts feed", lambda db: alerts.raised_after(db, START)),
    ("traffic incidents", lambda db: traffic_incidents.list_page(db)),
    ("emergency incidents", lambda db: emergency_incidents.list_page(db)),
    ("public alerts", lambda db: emergency_incidents.public_alerts_page(db)),
    ("waste collections", lambda db: waste_collections.list_page(db)),
    ("waste collections by status", lambda db: waste_collections.list_page(db, status="scheduled")),
    ("waste collections by district", lambda db: waste_collections.list_page(db, district="Downtown")),
    ("tasks", lambda db: tasks.list_page(db)),
    ("tasks of an owner", lambda db: tasks.list_page(db, owner_id="u1")),
    ("users", lambda db: users.page(db)),
    ("users by role", lambda db: users.page(db, role="operator")),
]


def equality_fields(criteria):
    """Fields the filter binds to one value (ranges, $in, $or and $exists are not equalities)."""
    return {field for field, value in criteria.items() if not field.startswith("$") and not isinstance(value, dict)}


# Every collection has it, undeclared.
ID_INDEX = {"name": "_id_", "keys": [["_id", 1]]}


def declared_indexes(specs, collection):
    return [ID_INDEX] + specs[collection].get("indexes", [])


def served_by(indexes, equalities, sort, scoped=False):
    """The name of an index giving `sort` without a blocking sort, or None. `scoped`: the index must
    start with at least one equality-bound field (not walk the whole collection)."""
    sort = [(key, direction) for key, direction in sort if key not in equalities]
    reversed_sort = [(key, -direction) for key, direction in sort]
    for index in indexes:
        keys = [(field, int(direction)) for field, direction in index["keys"]]
        for split in range(1 if scoped else 0, len(keys) + 1):
            prefix, rest = keys[:split], keys[split:split + len(sort)]
            if {field for field, _ in prefix} <= equalities and rest in (sort, reversed_sort):
                return index["name"]
    return None


def test_served_by_follows_the_esr_rule():
    indexes = [{"name": "m_t", "keys": [["module", 1], ["timestamp", -1], ["_id", -1]]}]
    assert served_by(indexes, {"module"}, [("timestamp", -1), ("_id", -1)]) == "m_t"
    assert served_by(indexes, {"module"}, [("timestamp", 1), ("_id", 1)]) == "m_t"  # entirely reversed
    assert served_by(indexes, {"module"}, [("timestamp", -1), ("_id", 1)]) is None  # mixed
    assert served_by(indexes, {"module"}, [("timestamp", -1), ("sensor_id", 1)]) is None
    assert served_by(indexes, set(), [("timestamp", -1), ("_id", -1)]) is None  # module not bound
    assert served_by([{"name": "old", "keys": [["module", 1], ["timestamp", -1]]}], {"module"},
                     [("timestamp", -1), ("_id", -1)]) is None  # the defect: _id tie-breaker not indexed
    walk = [{"name": "p", "keys": [["priority", -1], ["_id", -1]]}]
    assert served_by(walk, {"owner_id"}, [("priority", 1), ("_id", 1)]) == "p"  # filtered while walking
    assert served_by(walk, {"owner_id"}, [("priority", 1), ("_id", 1)], scoped=True) is None
    assert served_by([{"name": "op", "keys": [["owner_id", 1], ["priority", -1], ["_id", -1]]}], {"owner_id"},
                     [("priority", -1), ("_id", -1)], scoped=True) == "op"
    assert served_by([ID_INDEX], {"status"}, [("status", 1), ("_id", 1)]) == "_id_"  # status bound: _id order
    assert served_by([{"name": "unique", "keys": [["email", 1]]}], set(), [("email", -1)]) == "unique"
    assert served_by([{"name": "unique", "keys": [["email", 1]]}], set(), [("email", 1), ("_id", 1)]) is None


@pytest.mark.parametrize("description, call", CALLS, ids=[d for d, _ in CALLS])
def test_every_list_and_export_sort_is_served_by_an_index(description, call):
    specs = storage.load_collection_specs()["collections"]
    db = RecordingDb()
    call(db)
    assert db.sent, f"{description} sent no sorted query"
    for collection, criteria, sort in db.sent:
        equalities = equality_fields(criteria)
        index = served_by(declared_indexes(specs, collection), equalities, sort)
        assert index, f"{description}: {collection} sort {sort} with equality on {sorted(equalities)} has no index"


# User-chosen sorts.

def sort_choices(field):
    """The values a `sort` field accepts: each allowed field and its `-field`; None when it names none."""
    for validator in field.validators:
        if isinstance(validator, validate.OneOf):
            return sorted(validator.choices)
        allowed = getattr(validator, "allowed", None)
        if allowed is not None:
            return sorted({prefix + name for name in allowed for prefix in ("", "-")})
    return None


def sorted_endpoints():
    """{endpoint: sort values} of every endpoint whose query schema has a `sort` parameter, read from the
    flask-smorest argument docs of every blueprint (None: a `sort` that names no fields)."""
    found = {}
    for blueprint in BLUEPRINTS:
        for endpoint, methods in blueprint._docs.items():
            for method, doc in methods.items():
                if method == "parameters":
                    continue
                for parameter in (doc.get("arguments") or {}).get("parameters", []):
                    if parameter.get("in") not in ("query", "querystring"):
                        continue
                    schema = parameter["schema"]
                    schema = schema() if isinstance(schema, type) else schema
                    if "sort" in schema.fields:
                        found[f"{blueprint.name}.{endpoint} {method.upper()}"] = sort_choices(schema.fields["sort"])
    return found


def readings_call(module):
    """As services.history.readings_page: raw readings sorted by `sort`; hour and day aggregates by its
    direction."""
    def call(db, sort, **filters):
        readings.find_range(db, module, sort=sort, **filters)
        filters.pop("source", None)  # raw readings only
        for resolution in ("hour", "day"):
            rollups.series_page(db, module, resolution, descending=sort.startswith("-"), **filters)
    return call


RANGE = {"start": START, "end": END}
READING_FILTERS = [{}, {"sensor_id": "TRF-001"}, {"district": "Downtown"}, {"source": "simulator"}, RANGE,
                   {"sensor_id": "TRF-001", **RANGE}]
ALERT_FILTERS = [{}, {"module": "traffic"}, {"status": "active"}, {"status": ["active", "acknowledged"]},
                 {"severity": "high"}, {"status": "active", "severity": "high"}, {"sensor_id": "TRF-001"},
                 {"district": "Downtown"}, {"alert_type": "congestion"}, RANGE]
INCIDENT_FILTERS = [{}, {"status": "reported"}, {"district": "Downtown"}, {"severity": "high"},
                    {"incident_type": "fire"}, RANGE]

# endpoint: (call(db, sort, **filters) as its service makes it, filters commonly combined with a sort,
# scoped filters). A scoped filter (always or nearly always present, selecting a small part of a
# large collection) must be an equality prefix of the index serving the sort.
SORTED_ENDPOINTS = {
    **{f"{module}.list_data GET": (readings_call(module), [], READING_FILTERS)  # module: always an equality
       for module in ("traffic", "environment", "waste", "energy")},
    "alerts.list_alerts GET": (lambda db, sort, **f: alerts.find_page(db, sort=sort, **f), ALERT_FILTERS, []),
    "environment.environment_alerts GET": (
        lambda db, sort, **f: alerts.find_page(db, sort=sort, module="environment", **f),
        [f for f in ALERT_FILTERS if "module" not in f], []),
    # The rules are listed in _id order; PageArgs' `sort` is accepted there but names no fields.
    "alerts.Rules GET": (lambda db, sort, **f: alert_rules.list_page(db, **f),
                         [{}, {"module": "traffic"}, {"enabled": True}], []),
    "traffic.Incidents GET": (lambda db, sort, **f: traffic_incidents.list_page(db, sort=sort, **f),
                              INCIDENT_FILTERS, []),
    "emergency.Incidents GET": (lambda db, sort, **f: emergency_incidents.list_page(db, sort=sort, **f),
                                INCIDENT_FILTERS, []),
    "emergency.PublicAlerts GET": (lambda db, sort, **f: emergency_incidents.public_alerts_page(db, sort=sort, **f),
                                   [{}, {"district": "Downtown"}, {"severity": "high"}], []),
    "emergency.list_units GET": (lambda db, sort, **f: units.list_page(db, sort=sort, **f),
                                 [{}, {"kind": "ambulance"}, {"status": "available"}, {"district": "Downtown"},
                                  {"kind": "fire", "status": "available"}], []),
    "waste.Bins GET": (lambda db, sort, **f: bins.list_page(db, sort=sort, **f),
                       [{}, {"district": "Downtown"}, {"waste_type": "glass"}, {"min_fill": 80}], []),
    "waste.Collections GET": (lambda db, sort, **f: waste_collections.list_page(db, sort=sort, **f),
                              [{}, {"status": "scheduled"}, {"district": "Downtown"}, RANGE], []),
    "energy.Grids GET": (lambda db, sort, **f: grids.list_page(db, sort=sort, **f), [{}, {"district": "Downtown"}],
                         []),
    # Sorted in memory over the range's periods (at most MAX_LIMIT); the query is the same for any sort.
    "energy.consumption GET": (lambda db, sort, **f: rollups.series(db, "energy", "hour", **RANGE, **f),
                               [{}, {"sensor_id": "GRID-01"}, {"district": "Downtown"}], []),
    "users.list_users GET": (lambda db, sort, **f: users.page(db, sort=sort, **f),
                             [{}, {"role": "operator"}, {"active": True}, {"role": "viewer", "active": False}], []),
    # An operator or viewer only ever lists their own tasks; an admin lists everyone's or one owner's.
    "tasks.list_tasks GET": (lambda db, sort, **f: tasks.list_page(db, sort=sort, **f),
                             [{}, {"status": "queued"}, {"task_type": "export"}],
                             [{"owner_id": "u1"}, {"owner_id": "u1", "status": "queued"},
                              {"owner_id": "u1", "task_type": "export"}]),
}
# Endpoints whose `sort` names no fields, and why that is fine.
UNCHOSEN_SORTS = {"alerts.Rules GET": "the rules are always listed in _id order"}

ENDPOINT_SORTS = sorted_endpoints()
USER_SORTS = [(endpoint, sort) for endpoint, choices in sorted(ENDPOINT_SORTS.items()) for sort in choices or [None]]


def test_the_sort_parameters_are_found():
    assert ENDPOINT_SORTS["alerts.list_alerts GET"] == [
        "-created_at", "-last_seen", "-raised_at", "-severity_rank", "created_at", "last_seen", "raised_at",
        "severity_rank"]
    assert "users.list_users GET" in ENDPOINT_SORTS and "tasks.list_tasks GET" in ENDPOINT_SORTS
    assert set(SORTED_ENDPOINTS) == set(ENDPOINT_SORTS), "SORTED_ENDPOINTS lists exactly the endpoints with a `sort`"
    assert {endpoint for endpoint, choices in ENDPOINT_SORTS.items() if choices is None} == set(UNCHOSEN_SORTS)


@pytest.mark.parametrize("endpoint, sort", USER_SORTS, ids=[f"{e.split()[0]}?sort={s}" for e, s in USER_SORTS])
def test_every_user_chosen_sort_is_served_by_an_index(endpoint, sort):
    assert endpoint in SORTED_ENDPOINTS, f"{endpoint} takes `sort`: add how it queries to SORTED_ENDPOINTS"
    call, filter_sets, scoped_sets = SORTED_ENDPOINTS[endpoint]
    specs = storage.load_collection_specs()["collections"]
    missing = []
    for filters, scoped in [(f, False) for f in filter_sets] + [(f, True) for f in scoped_sets]:
        db = RecordingDb()
        call(db, sort or "", **filters)
        assert db.sent, f"{endpoint} sort={sort} {filters} sent no sorted query"
        for collection, criteria, spec in db.sent:
            equalities = equality_fields(criteria)
            if not served_by(declared_indexes(specs, collection), equalities, spec, scoped):
                missing.append(f"{collection} sort {spec} with equality on {sorted(equalities)}"
                               + (" (needs an equality prefix)" if scoped else ""))
    assert not missing, f"{endpoint} sort={sort}: no index serves\n" + "\n".join(missing)


def test_index_names_and_keys_are_unique_per_collection():
    """Start-up reconciliation rebuilds an index whose name or keys another declared index also has:
    two such declarations would rebuild each other at every start."""
    specs = storage.load_collection_specs()["collections"]
    for collection in specs:
        indexes = declared_indexes(specs, collection)
        names = [index["name"] for index in indexes]
        keys = [tuple((field, int(direction)) for field, direction in index["keys"]) for index in indexes]
        assert len(set(names)) == len(names), f"{collection}: repeated index name"
        assert len(set(keys)) == len(keys), f"{collection}: two indexes on the same keys"
