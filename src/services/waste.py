"""Waste bins, collection routes and scheduled collections."""
from src.db import get_db
from src.errors import ApiError
from src.extensions import socketio
from src.models import bins, waste_collections
from src.domain import actor, now_utc
from src.services import city, routing

MAX_ROUTE_BINS = 1000
DEFAULT_FILL_THRESHOLD = 80.0


def list_bins(limit=50, offset=0, sort="bin_id", district=None, waste_type=None, min_fill=None):
    return bins.list_page(get_db(), district=district, waste_type=waste_type, min_fill=min_fill, limit=limit,
                          offset=offset, sort=sort)


def get_bin(bin_id):
    """One bin with its last reported level; 404 when unknown."""
    found = bins.get(get_db(), bin_id)
    if found is None:
        raise ApiError(f"Bin {bin_id} not found", status=404)
    return found


def create_bin(data):
    """Register a bin; a duplicate bin_id is a 409."""
    if bins.get(get_db(), data["bin_id"]):
        raise ApiError(f"Bin {data['bin_id']} already exists", status=409, error="conflict",
                       errors={"bin_id": ["already exists"]})
    return bins.create(get_db(), data)


def report_level(bin_id, data):
    """A level update for one bin, through the ingest pipeline; 404 for an unknown bin."""
    from src.services import ingest

    if bins.get(get_db(), bin_id) is None:
        raise ApiError(f"Bin {bin_id} not found", status=404)
    return ingest.ingest("waste", dict(data, bin_id=bin_id), source="api")


# Routes

def _yield_to_others():
    # 2-opt is a CPU loop; under eventlet a request must let other green threads run.
    socketio.sleep(0)


def _coords(location):
    """(lng, lat) from a GeoJSON point or a bare pair; None when the bin has no usable location."""
    if isinstance(location, dict):
        location = location.get("coordinates")
    if isinstance(location, (list, tuple)) and len(location) >= 2:
        return (float(location[0]), float(location[1]))
    return None


def _stop_out(doc):
    coords = _coords(doc.get("location"))
    return {"bin_id": doc["bin_id"], "location": city.geo_point(coords) if coords else None,
            "fill_level_pct": doc.get("fill_level_pct", 0.0), "district": doc.get("district"),
            "waste_type": doc.get("waste_type")}


def _depot():
    return {"id": city.DEPOT["id"], "name": city.DEPOT["name"], "location": city.geo_point(city.DEPOT["location"])}


def _known_bins(db, bin_ids):
    """The bins named by `bin_ids` in the order given (duplicates dropped); 422 naming any unknown."""
    wanted = list(dict.fromkeys(bin_ids))
    found = bins.find_many(db, wanted)
    unknown = [b for b in wanted if b not in found]
    if unknown:
        raise ApiError("Unknown bins", status=422, error="validation_error",
                       errors={"bin_ids": [f"Unknown bin {b!r}." for b in unknown[:20]]})
    return [found[b] for b in wanted]


def plan_route(bin_docs, yield_fn=None):
    """The depot tour over `bin_docs` (nearest neighbour, then 2-opt); bins without a location are left out."""
    located = [doc for doc in bin_docs if _coords(doc.get("location"))]
    stops = [{"location": _coords(doc["location"]), "bin": doc} for doc in located]
    plan = routing.optimise_collection_route(city.DEPOT["location"], stops, yield_fn=yield_fn)
    return {"depot": _depot(), "stops": [_stop_out(stop["bin"]) for stop in plan["stops"]],
            "distance_km": plan["distance_km"], "nearest_neighbour_km": plan["nearest_neighbour_km"],
            "improvement_pct": plan["improvement_pct"],
            "unlocated_bin_ids": [doc["bin_id"] for doc in bin_docs if not _coords(doc.get("location"))]}


def optimise_route(district=None, fill_threshold=DEFAULT_FILL_THRESHOLD, bin_ids=None, yield_fn=None):
    """A collection route over the bins at or above `fill_threshold` (in `district`, or among `bin_ids`)."""
    db = get_db()
    if bin_ids:
        candidates = _known_bins(db, bin_ids)
        if district:
            candidates = [doc for doc in candidates if doc.get("district") == district]
        considered = len(candidates)
        eligible = [doc for doc in candidates if (doc.get("fill_level_pct") or 0.0) >= fill_threshold]
    else:
        considered = bins.list_page(db, district=district, limit=1)["total"]
        eligible = bins.above_threshold(db, fill_threshold, district, limit=MAX_ROUTE_BINS)
    plan = plan_route(eligible, yield_fn=yield_fn or _yield_to_others)
    return dict(plan, bins_considered=considered, fill_threshold=fill_threshold, district=district)


# Collections

def list_collections(limit=50, offset=0, sort="-scheduled_for", start=None, end=None, status=None, district=None):
    return waste_collections.list_page(get_db(), status=status, district=district, start=start, end=end,
                                       limit=limit, offset=offset, sort=sort)


def get_collection(collection_id):
    found = waste_collections.get(get_db(), collection_id)
    if found is None:
        raise ApiError("Collection not found", status=404)
    return found


def create_collection(data, user=None, yield_fn=None):
    """Schedule a collection of `data["bin_ids"]`, or of the bins at or above the threshold, with its route.

    422 when there is nothing to collect (no bin at or above the threshold) or a bin is unknown.
    """
    db = get_db()
    threshold = data.get("fill_threshold", DEFAULT_FILL_THRESHOLD)
    district = data.get("district")
    if data.get("bin_ids"):
        chosen = _known_bins(db, data["bin_ids"])
    else:
        chosen = bins.above_threshold(db, threshold, district, limit=MAX_ROUTE_BINS)
        if not chosen:
            where = f" in {district}" if district else ""
            raise ApiError(f"No bins at or above {threshold:g}% fill{where}", status=422, error="no_bins",
                           errors={"bin_ids": [f"No bins at or above {threshold:g}% fill{where}; name bin_ids "
                                               "or lower fill_threshold."]})
    plan = plan_route(chosen, yield_fn=yield_fn or _yield_to_others)
    doc = {
        "scheduled_for": data.get("scheduled_for") or now_utc(),
        # Route order first; bins without a location are still emptied, just not routed.
        "bin_ids": [stop["bin_id"] for stop in plan["stops"]] + plan["unlocated_bin_ids"],
        "fill_threshold": threshold,
        "status": "scheduled",
        "route": {key: plan[key] for key in ("stops", "distance_km", "nearest_neighbour_km", "improvement_pct")},
        "created_by": actor(user, anonymous="system"),
    }
    if district:
        doc["district"] = district
    return waste_collections.create(db, doc)


def _claim(db, collection_id, to_status, changes):
    """Move the collection to `to_status` if that is a valid transition; 404/409 otherwise."""
    current = waste_collections.get(db, collection_id)
    if current is None:
        raise ApiError("Collection not found", status=404)
    if to_status not in waste_collections.TRANSITIONS[current["status"]]:
        raise ApiError(f"Collection is {current['status']}; it cannot become {to_status}", status=409,
                       error="invalid_transition")
    updated = waste_collections.transition(db, collection_id, current["status"], to_status, changes)
    if updated is None:
        raise ApiError("Collection changed while being updated; reload it", status=409, error="invalid_transition")
    return updated


def update_collection_status(collection_id, data, user=None, source="api"):
    """PATCH a collection's status (scheduled -> in_progress -> completed, or cancelled)."""
    status = data["status"]
    if status == "completed":
        return complete_collection(collection_id, user=user, source=source, note=data.get("note"))
    now = now_utc()
    changes = {"started_at": now} if status == "in_progress" else {}
    if status == "cancelled":
        changes.update(cancelled_at=now, cancelled_by=actor(user, anonymous="system"))
    if data.get("note") is not None:
        changes["note"] = data["note"]
    return _claim(get_db(), collection_id, status, changes)


def complete_collection(collection_id, user=None, source="api", note=None):
    """Complete a collection and empty its bins through the ingest pipeline (latest, alerts, broadcasts)."""
    from src.services import ingest

    db = get_db()
    current = get_collection(collection_id)
    present = bins.existing_ids(db, current.get("bin_ids") or [])
    emptied_ids = [b for b in current.get("bin_ids") or [] if b in present]
    now = now_utc()
    changes = {"completed_at": now, "completed_by": actor(user, anonymous="system"),
               "bins_emptied": len(emptied_ids)}
    if note is not None:
        changes["note"] = note
    # Claim the transition first so two completions never both empty the bins.
    completed = _claim(db, collection_id, "completed", changes)
    for start in range(0, len(emptied_ids), ingest.MAX_BATCH):
        chunk = emptied_ids[start:start + ingest.MAX_BATCH]
        ingest.ingest("waste", [{"bin_id": b, "fill_level_pct": 0.0, "timestamp": now} for b in chunk],
                      source=source)
    # Ingest stamps last_emptied_at only on a large drop; a collection empties a bin whatever its level was.
    # A bin not at 0 kept a newer reading than ours, so it is left alone.
    after = bins.find_many(db, emptied_ids) if emptied_ids else {}
    at_zero = [b for b, doc in after.items() if doc.get("fill_level_pct") == 0.0]
    if at_zero:
        bins.mark_emptied(db, at_zero, now)
    return completed
