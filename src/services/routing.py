"""Road graph, congestion-aware shortest paths and waste-collection tours.

Points are (lng, lat) pairs, as in GeoJSON. Distances are kilometres,
speeds km/h, congestion 0-100 (percent).
"""
import heapq
import itertools
import math
import random
from collections import deque

EARTH_RADIUS_KM = 6371.0088
KM_PER_DEGREE_LAT = EARTH_RADIUS_KM * math.pi / 180
ARTERIAL_SPEED_KMH = 60.0
LOCAL_SPEED_KMH = 40.0


class NoRoute(ValueError):
    """No path joins the origin to the destination."""


def haversine_km(a, b):
    """Great-circle distance in km between two (lng, lat) points."""
    lng1, lat1, lng2, lat2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lng2 - lng1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


class RoadGraph:
    """A directed road network; two-way roads are a pair of edges sharing a road_id."""

    def __init__(self):
        self.nodes = {}
        self._adjacency = {}
        self._roads = []
        self.max_speed_kmh = 0.0
        # Smallest length/straight-line ratio seen; scales the A* heuristic so
        # it stays admissible even if a caller gives an edge a short length.
        self.min_stretch = 1.0

    def add_node(self, node_id, lng, lat):
        """Add an intersection; ids are unique."""
        # Moving a node would silently invalidate its edges' default lengths.
        if node_id in self.nodes:
            raise ValueError(f"node {node_id!r} already exists")
        self.nodes[node_id] = (float(lng), float(lat))
        self._adjacency[node_id] = []

    def add_edge(self, a, b, length_km=None, speed_kmh=50.0, road_id=None, bidirectional=True):
        """Add a road from a to b (and back, if bidirectional); returns its road_id."""
        for node in (a, b):
            if node not in self.nodes:
                raise ValueError(f"unknown node {node!r}")
        straight = haversine_km(self.nodes[a], self.nodes[b])
        length = straight if length_km is None else float(length_km)
        if speed_kmh <= 0 or length < 0:
            raise ValueError("speed_kmh must be positive and length_km non-negative")
        if straight > 0:
            self.min_stretch = min(self.min_stretch, length / straight)
        road_id = road_id if road_id is not None else f"{a}->{b}"
        self.max_speed_kmh = max(self.max_speed_kmh, float(speed_kmh))
        edge = {"length_km": length, "speed_kmh": float(speed_kmh), "road_id": road_id}
        self._adjacency[a].append(dict(edge, node=b))
        if bidirectional:
            self._adjacency[b].append(dict(edge, node=a))
        self._roads.append(dict(edge, **{"from": a, "to": b, "bidirectional": bidirectional}))
        return road_id

    def neighbours(self, node):
        """Outgoing edges of a node: dicts with node, length_km, speed_kmh, road_id."""
        if node not in self._adjacency:
            raise ValueError(f"unknown node {node!r}")
        return list(self._adjacency[node])

    def nearest_node(self, lng, lat):
        """The id of the node closest to a point."""
        if not self.nodes:
            raise ValueError("graph has no nodes")
        return min(self.nodes, key=lambda node: haversine_km((lng, lat), self.nodes[node]))

    def to_dict(self):
        """A JSON-ready description of nodes and roads."""
        nodes = [{"id": node, "location": list(point)} for node, point in self.nodes.items()]
        return {"nodes": nodes, "edges": [dict(road, length_km=round(road["length_km"], 4)) for road in self._roads]}


def _close_if_detour(adjacency, a, b):
    """Drop the undirected link a-b unless that disconnects them; True if dropped."""
    adjacency[a].discard(b)
    adjacency[b].discard(a)
    # Breadth-first, because the detour around a closed street is usually short.
    seen, queue = {a}, deque([a])
    while queue:
        node = queue.popleft()
        if node == b:
            return True
        for other in adjacency[node] - seen:
            seen.add(other)
            queue.append(other)
    adjacency[a].add(b)
    adjacency[b].add(a)
    return False


def build_city_grid(center=(0.0, 0.0), rows=8, cols=8, spacing_km=0.6, seed=42):
    """A deterministic synthetic city: a street grid with arterials, shortcuts and closures."""
    if rows < 1 or cols < 1 or spacing_km <= 0:
        raise ValueError("rows and cols must be >= 1 and spacing_km > 0")
    rng = random.Random(seed)
    (lng0, lat0), dlat = center, spacing_km / KM_PER_DEGREE_LAT
    dlng = dlat / max(math.cos(math.radians(lat0)), 1e-6)  # degrees of longitude shrink towards the poles
    graph, node = RoadGraph(), "N-{}-{}".format
    # Row 0 is the southern edge and column 0 the western one, centred on `center`.
    for r in range(rows):
        for c in range(cols):
            graph.add_node(node(r, c), lng0 + (c - (cols - 1) / 2) * dlng, lat0 + (r - (rows - 1) / 2) * dlat)

    def line_kmh(index):
        return ARTERIAL_SPEED_KMH if index % 3 == 0 else LOCAL_SPEED_KMH

    # (road_id, a, b, speed); arterials run along every third row and column.
    roads = [(f"H-{r}-{c}", node(r, c), node(r, c + 1), line_kmh(r)) for r in range(rows) for c in range(cols - 1)]
    roads += [(f"V-{r}-{c}", node(r, c), node(r + 1, c), line_kmh(c)) for r in range(rows - 1) for c in range(cols)]
    closable = [road for road in roads if road[3] == LOCAL_SPEED_KMH]
    cells = [(r, c) for r in range(rows - 1) for c in range(cols - 1)]
    for r, c in rng.sample(cells, min(len(cells), max(1, len(cells) // 8))):
        # "D" shortcuts run south-west to north-east, "A" (anti-diagonal) south-east to north-west.
        if rng.random() < 0.5:
            roads.append((f"D-{r}-{c}", node(r, c), node(r + 1, c + 1), LOCAL_SPEED_KMH))
        else:
            roads.append((f"A-{r}-{c}", node(r, c + 1), node(r + 1, c), LOCAL_SPEED_KMH))

    # Close a few local streets (never arterials or shortcuts). The grid starts
    # connected, so it stays connected while each closed street's ends remain joined.
    adjacency = {node_id: set() for node_id in graph.nodes}
    for _, a, b, _ in roads:
        adjacency[a].add(b)
        adjacency[b].add(a)
    closed = set()
    for road_id, a, b, _ in rng.sample(closable, len(closable) // 10):
        if _close_if_detour(adjacency, a, b):
            closed.add(road_id)
    for road_id, a, b, kmh in sorted(roads):
        if road_id not in closed:
            graph.add_edge(a, b, speed_kmh=kmh, road_id=road_id)
    return graph


def _travel_hours(edge, congestion):
    level = min(100.0, max(0.0, float(congestion.get(edge["road_id"], 0) or 0)))
    return edge["length_km"] / edge["speed_kmh"] * (1 + 2 * (level / 100) ** 2)


def shortest_path(graph, origin, destination, congestion=None, yield_every=500, yield_fn=None):
    """The fastest path by A* over congestion-adjusted travel time."""
    for node in (origin, destination):
        if node not in graph.nodes:
            raise ValueError(f"unknown node {node!r}")
    if yield_every < 1:
        raise ValueError("yield_every must be >= 1")
    congestion = congestion or {}
    target = graph.nodes[destination]
    # Congestion only ever slows edges down, so straight-line distance at top
    # speed (scaled by min_stretch) never overestimates the remaining time.
    speed = graph.max_speed_kmh or 1.0

    def heuristic(node):
        return haversine_km(graph.nodes[node], target) * graph.min_stretch / speed

    best, came_from, expansions = {origin: 0.0}, {}, 0
    tie = itertools.count()  # breaks heap ties without comparing node ids
    frontier = [(heuristic(origin), next(tie), 0.0, origin)]
    while frontier:
        _, _, hours, node = heapq.heappop(frontier)
        # The heuristic is consistent, so a node's first pop is final; later
        # entries for it are stale.
        if hours > best[node]:
            continue
        if node == destination:
            break
        expansions += 1
        if yield_fn is not None and expansions % yield_every == 0:
            yield_fn()
        for edge in graph.neighbours(node):
            other = edge["node"]
            candidate = hours + _travel_hours(edge, congestion)
            if candidate < best.get(other, math.inf):
                best[other] = candidate
                came_from[other] = (node, edge)
                heapq.heappush(frontier, (candidate + heuristic(other), next(tie), candidate, other))
    else:
        raise NoRoute(f"no route from {origin!r} to {destination!r}")
    path, distance = [destination], 0.0
    while node != origin:
        node, edge = came_from[node]
        path.append(node)
        distance += edge["length_km"]
    path.reverse()
    return {"path": path, "distance_km": round(distance, 3), "travel_time_min": round(hours * 60, 3)}


def _location(stop):
    try:
        return tuple(stop["location"][:2])
    except (KeyError, TypeError):
        raise ValueError(f"stop {stop!r} needs a (lng, lat) location") from None


def route_length_km(depot, ordered_stops, distance=haversine_km):
    """Length of the tour depot -> stops in order -> depot."""
    points = [depot] + [_location(stop) for stop in ordered_stops] + [depot]
    return sum(distance(points[i], points[i + 1]) for i in range(len(points) - 1))


def nearest_neighbour_order(depot, stops, distance=haversine_km):
    """Stops ordered by repeatedly visiting the closest unvisited one, from the depot."""
    locations = [_location(stop) for stop in stops]
    remaining, order, here = list(range(len(stops))), [], depot
    while remaining:
        # min() keeps the first of equally close stops, so ties follow input order.
        closest = min(remaining, key=lambda index: distance(here, locations[index]))
        remaining.remove(closest)
        order.append(closest)
        here = locations[closest]
    return [stops[index] for index in order]


def two_opt(depot, ordered_stops, distance=haversine_km, max_passes=50, yield_fn=None):
    """The tour improved by 2-opt segment reversals until no reversal shortens it."""
    points = [depot] + [_location(stop) for stop in ordered_stops]
    count = len(points)
    matrix = [[distance(p, q) for q in points] for p in points]
    tour = list(range(count)) + [0]  # indices into points; 0 is the depot
    for _ in range(max_passes):
        improved = False
        for i in range(1, count - 1):
            for j in range(i + 1, count):
                a, b, c, d = tour[i - 1], tour[i], tour[j], tour[j + 1]
                # Strictly-better with a margin, so float noise cannot cycle forever.
                if matrix[a][c] + matrix[b][d] < matrix[a][b] + matrix[c][d] - 1e-12:
                    tour[i:j + 1] = reversed(tour[i:j + 1])
                    improved = True
            if yield_fn is not None:
                yield_fn()
        if not improved:
            break
    return [ordered_stops[index - 1] for index in tour[1:-1]]


def optimise_collection_route(depot, stops, yield_fn=None):
    """A short collection tour from the depot: nearest neighbour, then 2-opt."""
    greedy = nearest_neighbour_order(depot, stops)
    greedy_km = route_length_km(depot, greedy)
    improved = two_opt(depot, greedy, yield_fn=yield_fn)
    improved_km = route_length_km(depot, improved)
    gain = (greedy_km - improved_km) / greedy_km * 100 if greedy_km > 0 else 0.0
    return {"stops": improved, "distance_km": round(improved_km, 3),
            "nearest_neighbour_km": round(greedy_km, 3), "improvement_pct": round(gain, 2)}
