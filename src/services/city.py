"""The synthetic city that ships with the code: districts, road graph and seeded assets.

Everything here is deterministic for a seed, so simulators, seeding, route planning and tests
agree on where things are. Coordinates are (lng, lat).
"""
import functools
import math
import random
from zoneinfo import ZoneInfo

from flask import current_app

from src.services.routing import build_city_grid, haversine_km

CENTER = (-73.985, 40.748)
GRID_ROWS, GRID_COLS, GRID_SPACING_KM = 9, 9, 0.55
DEPOT = {"id": "DEPOT", "name": "Municipal depot", "location": (-73.999, 40.733)}

# name, centre offset in km (east, north), traffic intensity, pollution background, bin fill factor,
# demand share
DISTRICTS = [
    ("Downtown", (0.0, 0.0), 1.35, 1.25, 1.4, 0.22),
    ("Harbor", (-1.6, -1.4), 1.05, 1.15, 1.1, 0.12),
    ("University", (1.5, 1.3), 0.95, 0.85, 1.2, 0.10),
    ("Industrial", (1.8, -1.6), 1.15, 1.6, 0.9, 0.20),
    ("Riverside", (-1.8, 1.2), 0.75, 0.8, 0.8, 0.09),
    ("Northgate", (0.2, 2.0), 0.9, 0.9, 0.9, 0.10),
    ("Old Town", (-0.4, -2.0), 1.0, 1.0, 1.3, 0.09),
    ("Airport", (2.2, 0.4), 1.1, 1.3, 0.7, 0.08),
]
DISTRICT_NAMES = [d[0] for d in DISTRICTS]
WASTE_TYPES = ("general", "recycling", "organic", "glass")
UNIT_KINDS = ("ambulance", "fire", "police")


def timezone():
    """The city's time zone (CITY_TIMEZONE): analytics' hours, weekdays and days are local to it."""
    return ZoneInfo(current_app.config["CITY_TIMEZONE"])


def offset(point, east_km, north_km):
    lng, lat = point
    dlat = north_km / 111.32
    dlng = east_km / (111.32 * math.cos(math.radians(lat)))
    return (round(lng + dlng, 6), round(lat + dlat, 6))


def geo_point(lnglat):
    return {"type": "Point", "coordinates": [lnglat[0], lnglat[1]]}


def district_center(name):
    for district in DISTRICTS:
        if district[0] == name:
            return offset(CENTER, *district[1])
    raise KeyError(name)


def district_profile(name):
    """{traffic, pollution, fill, demand} multipliers of a district."""
    for district in DISTRICTS:
        if district[0] == name:
            return {"traffic": district[2], "pollution": district[3], "fill": district[4], "demand": district[5]}
    return {"traffic": 1.0, "pollution": 1.0, "fill": 1.0, "demand": 1.0 / len(DISTRICTS)}


def nearest_district(point):
    return min(DISTRICT_NAMES, key=lambda name: haversine_km(point, district_center(name)))


@functools.lru_cache(maxsize=4)
def road_graph(seed=42):
    """The city's road network (a seeded grid with arterials, shortcuts and closures)."""
    return build_city_grid(center=CENTER, rows=GRID_ROWS, cols=GRID_COLS, spacing_km=GRID_SPACING_KM, seed=seed)


def _scatter(rng, name, radius_km):
    angle, distance = rng.uniform(0, 2 * math.pi), radius_km * math.sqrt(rng.random())
    return offset(district_center(name), distance * math.cos(angle), distance * math.sin(angle))


def _spread(count):
    """District for the i-th of `count` assets, round-robin so every district gets some."""
    return [DISTRICT_NAMES[i % len(DISTRICT_NAMES)] for i in range(count)]


@functools.lru_cache(maxsize=8)
def traffic_sensors(count=20, seed=42):
    """Traffic sensors at intersections; each watches one signal phase (ns or ew)."""
    graph, rng = road_graph(seed), random.Random(f"traffic-{seed}")
    nodes = sorted(graph.nodes)
    picked = rng.sample(nodes, min(count, len(nodes)))
    sensors = []
    for i, node in enumerate(picked, start=1):
        location = graph.nodes[node]
        sensors.append({"sensor_id": f"TRF-{i:03d}", "node": node, "phase": "ns" if i % 2 else "ew",
                        "location": location, "district": nearest_district(location)})
    return tuple(sensors)


@functools.lru_cache(maxsize=8)
def environment_sensors(count=15, seed=42):
    rng = random.Random(f"environment-{seed}")
    return tuple({"sensor_id": f"ENV-{i:03d}", "district": name, "location": _scatter(rng, name, 0.6)}
                 for i, name in enumerate(_spread(count), start=1))


@functools.lru_cache(maxsize=8)
def bins(count=40, seed=42):
    rng = random.Random(f"bins-{seed}")
    out = []
    for i, name in enumerate(_spread(count), start=1):
        waste_type = WASTE_TYPES[i % len(WASTE_TYPES)]
        out.append({"bin_id": f"BIN-{i:03d}", "district": name, "location": _scatter(rng, name, 0.7),
                    "waste_type": waste_type, "capacity_liters": rng.choice((240, 360, 660, 1100))})
    return tuple(out)


@functools.lru_cache(maxsize=8)
def grids(count=6, seed=42):
    rng = random.Random(f"grids-{seed}")
    out = []
    for i in range(1, count + 1):
        name = DISTRICT_NAMES[(i - 1) % len(DISTRICT_NAMES)]
        out.append({"grid_id": f"GRID-{i:02d}", "name": f"{name} substation", "district": name,
                    "location": district_center(name), "capacity_mw": float(rng.choice((80, 120, 150, 200))),
                    "solar_capacity_mw": float(rng.choice((5, 10, 20))), "wind_capacity_mw": float(rng.choice((0, 8, 15)))})
    return tuple(out)


@functools.lru_cache(maxsize=8)
def emergency_units(count=12, seed=42):
    """Ambulance, fire and police units, round-robin, stationed around the districts."""
    rng = random.Random(f"units-{seed}")
    out = []
    for i in range(1, count + 1):
        kind = UNIT_KINDS[(i - 1) % len(UNIT_KINDS)]
        name = DISTRICT_NAMES[(i - 1) % len(DISTRICT_NAMES)]
        base = _scatter(rng, name, 0.4)
        out.append({"unit_id": f"{kind[:3].upper()}-{i:02d}", "kind": kind, "district": name, "base": base,
                    "speed_kmh": {"ambulance": 50.0, "fire": 45.0, "police": 55.0}[kind]})
    return tuple(out)
