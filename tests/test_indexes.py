"""Every sort a list or export endpoint sends is served by a declared index (no blocking sort on MongoDB).

The models are called against a recorder that captures the filter and sort spec they would send;
each is checked against collections.json by the ESR rule: some index is an equality-filter prefix
followed by the sort keys, in the same or entirely reversed direction. Sort keys bound by an
equality filter are dropped first, as MongoDB's planner does. Only the default sort of each list
endpoint and the export/keyset sorts are listed here; other user-chosen sorts are not yet covered.
"""
from datetime import datetime, timedelta, timezone

import pytest

from src import db as storage
from src.models import (alerts, emergency_incidents, readings, rollups, tasks, traffic_incidents, users,
                        waste_collections)
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


def served_by(indexes, equalities, sort):
    """The name of an index giving `sort` without a blocking sort, or None."""
    sort = [(key, direction) for key, direction in sort if key not in equalities]
    reversed_sort = [(key, -direction) for key, direction in sort]
    for index in indexes:
        keys = [(field, int(direction)) for field, direction in index["keys"]]
        for split in range(len(keys) + 1):
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


@pytest.mark.parametrize("description, call", CALLS, ids=[d for d, _ in CALLS])
def test_every_list_and_export_sort_is_served_by_an_index(description, call):
    specs = storage.load_collection_specs()["collections"]
    db = RecordingDb()
    call(db)
    assert db.sent, f"{description} sent no sorted query"
    for collection, criteria, sort in db.sent:
        equalities = equality_fields(criteria)
        index = served_by(specs[collection].get("indexes", []), equalities, sort)
        assert index, f"{description}: {collection} sort {sort} with equality on {sorted(equalities)} has no index"
