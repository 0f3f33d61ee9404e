"""Energy grids: registry, consumption from rollups, renewable share and load balancing."""
from datetime import timedelta

from flask import current_app
from marshmallow import ValidationError
from pymongo.errors import DuplicateKeyError

from src.db import get_db
from src.errors import ApiError
from src.models import grids, rollups
from src.domain import now_utc
from src.services import city
from src.services.history import REQUEST_ROLLUP_BUDGET
from src.services.latest import get_cache

DEFAULT_RANGE = timedelta(hours=24)
HOUR = timedelta(hours=1)
TARGET_PCT = 85.0
# A reading may report at most this share of its capacity: protection trips long before, so beyond it the
# reading is a unit or sensor error (99 999 MW on a 0.001 MW grid would be stored as 9 999 900 000 %).
MAX_UTILIZATION_PCT = 200.0
# Below this a remaining excess or headroom is float noise, not megawatts.
EPSILON_MW = 1e-9
CONSUMPTION_METHOD = (
    "energy_mwh integrates load_mw over the time the readings cover, from the hourly rollups: each hour "
    "bucket contributes its average load_mw x the part of the hour it covers. A bucket whose grid also "
    "reported in the hour before (after) covers the hour from its start (to its end); otherwise it starts at "
    "its first reading (ends one reading interval after its last: the mean spacing of its readings, or "
    "SENSOR_INTERVAL_ENERGY_S for a lone reading). Coverage is clipped to [from, to) and to now, so a partial "
    "hour counts as the part covered. hours_covered is that time in hours; avg_load_mw = energy_mwh / "
    "hours_covered. consumption_kwh is the sum of the consumption_kwh the grids' meters reported (each "
    "reading: the energy since the meter's previous reading), null when none did; with a meter and load "
    "readings that agree, consumption_kwh / 1000 is close to energy_mwh. Days are calendar days in the "
    "city's timezone."
)


# Grids

def seed_grids(db):
    """Register the city's grids (city.grids()) when the grids collection is empty; returns how many."""
    if grids.count(db):
        return 0
    inserted = 0
    for grid in city.grids():
        inserted += grids.insert_if_missing(db, dict(grid, location=city.geo_point(grid["location"])))
    return inserted


def list_grids(limit=50, offset=0, sort="grid_id", district=None):
    return grids.list_page(get_db(), district=district, limit=limit, offset=offset, sort=sort)


def get_grid(grid_id):
    found = grids.get(get_db(), grid_id)
    if found is None:
        raise ApiError(f"Grid {grid_id} not found", status=404)
    return found


def create_grid(data):
    """Register a grid; a duplicate grid_id is a 409."""
    conflict = ApiError(f"Grid {data['grid_id']} already exists", status=409, error="conflict",
                        errors={"grid_id": ["already exists"]})
    db = get_db()
    if grids.get(db, data["grid_id"]):
        raise conflict
    try:
        return grids.create(db, data)
    except DuplicateKeyError:
        raise conflict from None


# Readings

def reading_errors(loaded):
    """Checks across an energy reading's fields, run by ingest before anything of the batch is stored.

    `loaded` are readings the schema accepted (so capacity_mw >= 0.001); returns {index: {field: [message]}}.
    A reading for a grid that is not registered is accepted: it registers the grid (see grids.record_reading).
    """
    errors = {}
    for index, reading in enumerate(loaded):
        limit = reading["capacity_mw"] * MAX_UTILIZATION_PCT / 100
        if reading["load_mw"] > limit + EPSILON_MW:
            errors[str(index)] = {"load_mw": [
                f"At most {MAX_UTILIZATION_PCT:g} % of capacity_mw ({limit:g} MW for a {reading['capacity_mw']:g} "
                "MW grid); check the units."]}
    return errors


# Consumption

def _r(value, digits=3):
    return None if value is None else round(value, digits)


def _hours_covered(bucket, reported_before, reported_after, start, end, lone_reading):
    """The hours of a bucket's hour its readings stand for (see CONSUMPTION_METHOD)."""
    low, high = bucket["hour"], bucket["hour"] + HOUR
    first, last = bucket.get("first_at"), bucket.get("last_at")
    if first is not None:  # buckets rolled up before first_at/last_at existed cover their whole hour
        spacing = (last - first) / (bucket["count"] - 1) if bucket["count"] > 1 else lone_reading
        if not reported_before:
            low = max(low, first)
        if not reported_after:
            high = min(high, last + spacing)
    return max(0.0, (min(high, end) - max(low, start)).total_seconds() / 3600)


def consumption(start=None, end=None, grid_id=None, district=None, resolution="hour", limit=1000, offset=0,
                sort="period_start"):
    """Energy per grid per hour or local day over [start, end) (default: the last 24 h), from the hourly rollups."""
    now = now_utc()
    end = end or now
    start = start or end - DEFAULT_RANGE
    if start >= end:
        raise ValidationError("`from` must be before `to`.", "from")
    db = get_db()
    rollups.refresh_if_stale(db, max_readings=REQUEST_ROLLUP_BUDGET)  # at most ~15 s behind
    tz = city.timezone()
    lone_reading = timedelta(seconds=current_app.config["SENSOR_EXPECTED_INTERVALS"]["energy"])
    # One hour earlier than the range, only to know whether a grid was already reporting at its start.
    buckets = rollups.hourly(db, "energy", sensor_id=grid_id, district=district, start=start - HOUR, end=end)
    reported = {(b["sensor_id"], b["hour"]) for b in buckets if b["metrics"].get("load_mw")}

    periods = {}
    for bucket in buckets:
        load = bucket["metrics"].get("load_mw")
        grid = bucket["sensor_id"]
        if not load or bucket["hour"] < rollups.hour_of(start):
            continue
        hours = _hours_covered(bucket, (grid, bucket["hour"] - HOUR) in reported,
                               (grid, bucket["hour"] + HOUR) in reported, start, min(end, now), lone_reading)
        if not hours:
            continue
        key = (rollups.period_start(bucket["hour"], resolution, tz), grid)
        period = periods.setdefault(key, {"grid_id": grid, "district": bucket.get("district"),
                                          "period_start": key[0], "resolution": resolution, "hours_covered": 0.0,
                                          "readings": 0, "energy_mwh": 0.0, "peak_load_mw": load["max"],
                                          "consumption_kwh": None})
        period["hours_covered"] += hours
        period["readings"] += load["count"]
        period["energy_mwh"] += load["avg"] * hours
        period["peak_load_mw"] = max(period["peak_load_mw"], load["max"])
        period["district"] = period["district"] or bucket.get("district")
        kwh = bucket["metrics"].get("consumption_kwh")
        if kwh:
            period["consumption_kwh"] = (period["consumption_kwh"] or 0.0) + kwh["sum"]

    items = sorted(periods.values(), key=lambda p: (p["period_start"], p["grid_id"]), reverse=sort.startswith("-"))
    per_grid = {}
    for period in items:
        total = per_grid.setdefault(period["grid_id"], {"grid_id": period["grid_id"], "district": period["district"],
                                                        "hours_covered": 0.0, "readings": 0, "energy_mwh": 0.0,
                                                        "peak_load_mw": period["peak_load_mw"],
                                                        "consumption_kwh": None})
        total["hours_covered"] += period["hours_covered"]
        total["readings"] += period["readings"]
        total["energy_mwh"] += period["energy_mwh"]
        total["peak_load_mw"] = max(total["peak_load_mw"], period["peak_load_mw"])
        if period["consumption_kwh"] is not None:
            total["consumption_kwh"] = (total["consumption_kwh"] or 0.0) + period["consumption_kwh"]
    for row in items + list(per_grid.values()):
        row["avg_load_mw"] = _r(row["energy_mwh"] / row["hours_covered"])
        row["hours_covered"] = _r(row["hours_covered"], 4)
        row["energy_mwh"] = _r(row["energy_mwh"])
        row["peak_load_mw"] = _r(row["peak_load_mw"])
        row["consumption_kwh"] = _r(row["consumption_kwh"])

    grid_totals = sorted(per_grid.values(), key=lambda g: g["grid_id"])
    reported_kwh = [g["consumption_kwh"] for g in grid_totals if g["consumption_kwh"] is not None]
    return {"items": items[offset:offset + limit], "total": len(items), "limit": limit, "offset": offset,
            "start": start, "end": end, "resolution": resolution, "timezone": tz.key, "grids": grid_totals,
            "energy_mwh": _r(sum(g["energy_mwh"] for g in grid_totals)),
            "consumption_kwh": _r(sum(reported_kwh)) if reported_kwh else None,
            "method": CONSUMPTION_METHOD}


# Current state

def _latest_states():
    return get_cache(current_app).snapshot("energy")


def renewable():
    """Renewable share now: totals and per-grid breakdown from each grid's latest reading."""
    rows = []
    for reading in _latest_states():
        row = {"grid_id": reading["sensor_id"], "district": reading.get("district"),
               "load_mw": reading.get("load_mw") or 0.0, "capacity_mw": reading.get("capacity_mw"),
               "timestamp": reading["timestamp"]}
        for source in ("solar_mw", "wind_mw", "hydro_mw"):
            row[source] = reading.get(source) or 0.0
        row["renewable_mw"] = _r(row["solar_mw"] + row["wind_mw"] + row["hydro_mw"])
        row["renewable_pct"] = _share(row["renewable_mw"], row["load_mw"])
        rows.append(row)
    totals = {key: _r(sum(row[key] for row in rows)) for key in ("load_mw", "solar_mw", "wind_mw", "hydro_mw")}
    totals["renewable_mw"] = _r(totals["solar_mw"] + totals["wind_mw"] + totals["hydro_mw"])
    totals["renewable_pct"] = _share(totals["renewable_mw"], totals["load_mw"])
    renewable_mw = totals["renewable_mw"]
    mix = {f"{source}_pct": round(totals[f"{source}_mw"] / renewable_mw * 100, 2) if renewable_mw > 0 else 0.0
           for source in ("solar", "wind", "hydro")}
    return {"as_of": max((row["timestamp"] for row in rows), default=None), "grids_reporting": len(rows),
            "totals": totals, "mix": mix, "grids": rows}


def _share(part, whole):
    # Renewables beyond the local load are exported, so the share of load served caps at 100 %.
    return round(min(100.0, part / whole * 100), 2) if whole > 0 else 0.0


def load_balancing(target_pct=TARGET_PCT):
    """Transfers that bring overloaded grids down to `target_pct`, from each grid's latest reading."""
    states = [{"grid_id": r["sensor_id"], "load_mw": r.get("load_mw"), "capacity_mw": r.get("capacity_mw")}
              for r in _latest_states()]
    return plan_load_balancing(states, target_pct=target_pct)


def plan_load_balancing(grid_states, target_pct=TARGET_PCT):
    """Greedy transfer plan: the largest remaining excess goes to the largest remaining headroom.

    Donors are grids above `target_pct` utilisation (excess = load - target share of capacity); receivers are
    grids below it (headroom = target share of capacity - load), so no receiver is pushed above the target.
    Each step moves min(excess, headroom), which exhausts one side, so a pair never repeats. Grids without a
    positive capacity are ignored. Pure: `grid_states` are dicts with grid_id (or sensor_id), load_mw,
    capacity_mw.
    """
    load, capacity = {}, {}
    for state in grid_states:
        grid_id = state.get("grid_id") or state.get("sensor_id")
        if grid_id is None or not state.get("capacity_mw") or state["capacity_mw"] <= 0:
            continue
        load[grid_id] = float(state.get("load_mw") or 0.0)
        capacity[grid_id] = float(state["capacity_mw"])
    target = {g: capacity[g] * target_pct / 100 for g in capacity}
    excess = {g: load[g] - target[g] for g in load if load[g] - target[g] > EPSILON_MW}
    headroom = {g: target[g] - load[g] for g in load if target[g] - load[g] > EPSILON_MW}
    before = {g: round(load[g] / capacity[g] * 100, 2) for g in sorted(load)}

    transfers = []
    while excess and headroom:
        donor = min(excess, key=lambda g: (-excess[g], g))
        receiver = min(headroom, key=lambda g: (-headroom[g], g))
        amount = min(excess[donor], headroom[receiver])
        transfers.append({"from": donor, "to": receiver, "mw": round(amount, 3)})
        load[donor] -= amount
        load[receiver] += amount
        excess[donor] -= amount
        headroom[receiver] -= amount
        if excess[donor] <= EPSILON_MW:
            del excess[donor]
        if headroom[receiver] <= EPSILON_MW:
            del headroom[receiver]

    return {"target_pct": target_pct, "transfers": transfers, "before": before,
            "after": {g: round(load[g] / capacity[g] * 100, 2) for g in sorted(load)},
            "transferred_mw": round(sum(t["mw"] for t in transfers), 3),
            "unresolved_mw": round(sum(excess.values()), 3), "grids_considered": len(load)}
