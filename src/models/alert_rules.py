"""The `alert_rules` collection, seeded with the default rules."""
from pymongo import ReturnDocument

from src.domain import now_utc
from src.models import query

# Levels are checked from the most severe down; the first that matches wins.
DEFAULT_RULES = [
    {"_id": "environment.aqi", "module": "environment", "metric": "aqi", "type": "air_quality",
     "name": "Air quality index", "message": "AQI {value} at {sensor_id} is {severity}",
     "levels": [{"severity": "critical", "op": "gt", "value": 300}, {"severity": "high", "op": "gte", "value": 201},
                {"severity": "medium", "op": "gte", "value": 151}, {"severity": "low", "op": "gte", "value": 101}]},
    {"_id": "environment.noise", "module": "environment", "metric": "noise_db", "type": "noise",
     "name": "Noise level", "message": "Noise {value} dB at {sensor_id} exceeds {threshold} dB",
     "levels": [{"severity": "medium", "op": "gt", "value": 85}]},
    {"_id": "traffic.congestion", "module": "traffic", "metric": "congestion_level", "type": "congestion",
     "name": "Traffic congestion", "message": "Congestion {value}% at {sensor_id}",
     "levels": [{"severity": "critical", "op": "gte", "value": 95}, {"severity": "high", "op": "gte", "value": 85},
                {"severity": "medium", "op": "gte", "value": 70}]},
    {"_id": "waste.fill", "module": "waste", "metric": "fill_level_pct", "type": "bin_full",
     "name": "Bin fill level", "message": "Bin {sensor_id} is {value}% full",
     "levels": [{"severity": "high", "op": "gte", "value": 100}, {"severity": "medium", "op": "gte", "value": 90},
                {"severity": "low", "op": "gte", "value": 80}]},
    {"_id": "waste.temperature", "module": "waste", "metric": "temperature_c", "type": "fire_risk",
     "name": "Bin temperature (fire risk)", "message": "Bin {sensor_id} at {value} °C: fire risk",
     "levels": [{"severity": "critical", "op": "gt", "value": 60}]},
    {"_id": "energy.utilization", "module": "energy", "metric": "utilization_pct", "type": "grid_overload",
     "name": "Grid utilization", "message": "Grid {sensor_id} at {value}% of capacity",
     "levels": [{"severity": "critical", "op": "gte", "value": 100}, {"severity": "high", "op": "gte", "value": 95},
                {"severity": "medium", "op": "gte", "value": 85}]},
    {"_id": "energy.frequency", "module": "energy", "metric": "frequency_hz", "type": "frequency_deviation",
     "name": "Grid frequency", "message": "Grid {sensor_id} frequency {value} Hz outside {threshold} Hz",
     "levels": None},  # frequency_levels(nominal_hz)
]
FREQUENCY_RULE = "energy.frequency"
FREQUENCY_BAND_HZ = 0.5  # deviation that trips under-frequency load shedding on 50 and 60 Hz grids alike


def frequency_levels(nominal_hz):
    return [{"severity": "critical", "op": "outside",
             "value": [nominal_hz - FREQUENCY_BAND_HZ, nominal_hz + FREQUENCY_BAND_HZ]}]



def seed_defaults(db, nominal_hz=50.0):
    """Insert default rules that are missing; never overwrite an admin's edits.

    The frequency band follows the grid's nominal frequency. A database first seeded for the other
    frequency (the band still exactly that default) is moved to this one; an edited band is kept.
    """
    for rule in DEFAULT_RULES:
        if rule["_id"] == FREQUENCY_RULE:
            rule = dict(rule, levels=frequency_levels(nominal_hz))
        now = now_utc()
        db.alert_rules.update_one(
            {"_id": rule["_id"]},
            {"$setOnInsert": dict(rule, enabled=True, builtin=True, created_at=now, updated_at=now)},
            upsert=True,
        )
    for other_hz in {50.0, 60.0} - {float(nominal_hz)}:
        db.alert_rules.update_one({"_id": FREQUENCY_RULE, "levels": frequency_levels(other_hz)},
                                  {"$set": {"levels": frequency_levels(nominal_hz), "updated_at": now_utc()}})


def for_module(db, module, include_disabled=False):
    query = {"module": module}
    if not include_disabled:
        query["enabled"] = True
    return list(db.alert_rules.find(query).sort("_id", 1).limit(500))


def list_page(db, module=None, enabled=None, limit=50, offset=0):
    return query.page(db.alert_rules, query.matching(module=module, enabled=enabled), "_id", limit, offset)


def get(db, rule_id):
    return db.alert_rules.find_one({"_id": rule_id})


def create(db, rule):
    now = now_utc()
    doc = dict(rule, builtin=False, created_at=now, updated_at=now)
    db.alert_rules.insert_one(doc)
    return doc


def update(db, rule_id, changes):
    return db.alert_rules.find_one_and_update(
        {"_id": rule_id}, {"$set": dict(changes, updated_at=now_utc())}, return_document=ReturnDocument.AFTER)


def delete(db, rule_id):
    return db.alert_rules.delete_one({"_id": rule_id}).deleted_count
