"""Hand-checked tests of the pure algorithms: AQI, routing, signal timing, forecasting."""
import heapq
import math
import random

import pytest

from src.services.aqi import aqi_for, category, compute_aqi
from src.services.forecasting import (
    fill_gaps,
    forecast,
    holt_winters_additive,
    seasonal_profile_forecast,
)
from src.services.routing import (
    NoRoute,
    RoadGraph,
    build_city_grid,
    haversine_km,
    nearest_neighbour_order,
    optimise_collection_route,
    route_length_km,
    shortest_path,
    two_opt,
)
from src.services.signals import flows_from_counts, webster_timing

# --- AQI ---------------------------------------------------------------------


@pytest.mark.parametrize("concentration, expected", [
    (0.0, 0),
    (9.0, 50),      # top of "good" since the 2024 revision (was 12.0)
    (9.09, 50),     # truncated to 9.0, so it never falls in the 9.0-9.1 gap
    (9.1, 51),
    (12.0, 56),     # (100-51)/(35.4-9.1)*(12.0-9.1)+51 = 56.40
    (35.4, 100),
    (35.5, 101),
    (55.5, 151),
    (200.0, 275),   # (300-201)/(225.4-125.5)*(200-125.5)+201 = 0.99099*74.5+201 = 274.83
    (325.4, 500),
    (400.0, 500),   # beyond the table: capped
])
def test_pm25_sub_index(concentration, expected):
    assert aqi_for("pm25", concentration) == expected


@pytest.mark.parametrize("concentration, expected", [
    (54.9, 50),     # truncated to 54
    (154, 100),
    (155, 101),
    (200, 123),     # (150-101)/(254-155)*(200-155)+101 = 123.27
    (604, 500),
    (1000, 500),
])
def test_pm10_sub_index(concentration, expected):
    assert aqi_for("pm10", concentration) == expected


@pytest.mark.parametrize("aqi, name", [
    (0, "good"), (50, "good"), (51, "moderate"), (100, "moderate"),
    (101, "unhealthy_for_sensitive_groups"), (150, "unhealthy_for_sensitive_groups"),
    (151, "unhealthy"), (200, "unhealthy"), (201, "very_unhealthy"), (300, "very_unhealthy"),
    (301, "hazardous"), (500, "hazardous"),
])
def test_categories(aqi, name):
    assert category(aqi) == name


def test_larger_sub_index_wins():
    assert compute_aqi(12.0, 20) == {"aqi": 56, "aqi_category": "moderate", "dominant_pollutant": "pm25"}
    assert compute_aqi(12.0, 200) == {
        "aqi": 123, "aqi_category": "unhealthy_for_sensitive_groups", "dominant_pollutant": "pm10"}


@pytest.mark.parametrize("pm25, pm10", [(-1, 10), (5, -0.1), (None, 10), (5, None), (float("nan"), 1)])
def test_invalid_concentrations_raise(pm25, pm10):
    with pytest.raises(ValueError):
        compute_aqi(pm25, pm10)


def test_unknown_pollutant_raises():
    with pytest.raises(ValueError):
        aqi_for("o3", 10)


# --- Webster -----------------------------------------------------------------


def test_webster_two_phase_hand_example():
    plan = webster_timing([600, 450])
    # y = 600/1800 = 0.3333, 450/1800 = 0.25; Y = 0.5833; L = 2 * 4 = 8 s
    assert plan["flow_ratios"] == [0.3333, 0.25]
    assert plan["Y"] == 0.5833
    assert plan["lost_time_s"] == 8.0
    # C0 = (1.5*8 + 5) / (1 - 0.5833) = 17 / 0.41667 = 40.8 s
    assert plan["cycle_s"] == 40.8
    # effective green 32.8 s split 0.3333/0.5833 = 0.571 and 0.25/0.5833 = 0.429
    assert plan["greens_s"] == [18.7, 14.1]
    assert plan["oversaturated"] is False and plan["method"] == "webster"


def test_webster_oversaturated_uses_max_cycle():
    plan = webster_timing([900, 900])  # Y = 1.0
    assert plan["oversaturated"] is True
    assert plan["cycle_s"] == 180.0
    assert plan["greens_s"] == [86.0, 86.0]


def test_webster_clamps_long_cycle_without_flagging():
    plan = webster_timing([900, 800])  # Y = 0.944, C0 = 17/0.0556 = 306 s
    assert plan["cycle_s"] == 180.0 and plan["oversaturated"] is False


def test_webster_clamps_short_cycle_to_minimum():
    plan = webster_timing([100, 100])  # Y = 0.111, C0 = 17/0.889 = 19.1 s
    assert plan["cycle_s"] == 30.0 and plan["greens_s"] == [11.0, 11.0]


def test_webster_min_green_respected():
    plan = webster_timing([900, 30])
    # Y = 0.5 + 0.0167 = 0.5167; C0 = 17/0.4833 = 35.2 s; effective green 27.2 s.
    # Proportional share of phase 2 would be 27.2*0.0167/0.5167 = 0.88 s < 7 s.
    assert plan["cycle_s"] == 35.2
    assert plan["greens_s"] == [20.2, 7.0]


def test_webster_zero_flows():
    assert webster_timing([0, 0])["greens_s"] == [11.0, 11.0]
    # Three phases: L = 12 s, and 30 s leaves 6 s each, so the cycle grows to 12 + 3*7 = 33 s.
    plan = webster_timing([0, 0, 0])
    assert plan["cycle_s"] == 33.0 and plan["greens_s"] == [7.0, 7.0, 7.0]


def test_webster_rejects_bad_input():
    for flows in ([], [100, -1]):
        with pytest.raises(ValueError):
            webster_timing(flows)


def test_flows_from_counts():
    assert flows_from_counts(50, 300) == 600.0
    with pytest.raises(ValueError):
        flows_from_counts(5, 0)


# --- Shortest paths ----------------------------------------------------------


def small_graph():
    """A-E direct is one hop but slow; A-B-C-E is fastest; A-D-E is the fallback."""
    graph = RoadGraph()
    for node, lng, lat in [("A", 0, 0), ("B", 0.01, 0.005), ("C", 0.02, 0.005), ("D", 0.015, -0.01),
                           ("E", 0.03, 0), ("F", 0.5, 0.5)]:
        graph.add_node(node, lng, lat)
    graph.add_edge("A", "E", speed_kmh=20, road_id="AE")
    graph.add_edge("A", "B", speed_kmh=60, road_id="AB")
    graph.add_edge("B", "C", speed_kmh=60, road_id="BC")
    graph.add_edge("C", "E", speed_kmh=60, road_id="CE")
    graph.add_edge("A", "D", speed_kmh=50, road_id="AD")
    graph.add_edge("D", "E", speed_kmh=50, road_id="DE")
    return graph


def minutes(graph, a, b, speed, multiplier=1.0):
    return haversine_km(graph.nodes[a], graph.nodes[b]) / speed * 60 * multiplier


def test_fastest_path_is_not_fewest_hops():
    graph = small_graph()
    result = shortest_path(graph, "A", "E")
    assert result["path"] == ["A", "B", "C", "E"]
    # About 1.24 + 1.11 + 1.24 km at 60 km/h = 3.6 min, against 10 min for A-E at 20 km/h.
    expected = sum(minutes(graph, a, b, 60) for a, b in [("A", "B"), ("B", "C"), ("C", "E")])
    assert result["travel_time_min"] == pytest.approx(expected, abs=1e-3)
    assert result["travel_time_min"] == pytest.approx(3.6, abs=0.05)
    assert minutes(graph, "A", "E", 20) == pytest.approx(10.0, abs=0.05)


def test_congestion_diverts_route():
    graph = small_graph()
    # c = 100 triples B-C: 1.11 km -> 3.34 min, so A-B-C-E takes 5.8 min > 4.8 min via D.
    result = shortest_path(graph, "A", "E", congestion={"BC": 100})
    assert result["path"] == ["A", "D", "E"]
    assert result["travel_time_min"] == pytest.approx(4.8, abs=0.05)
    # c = 50 only adds 50% (1 + 2*0.25): B-C 1.67 min, A-B-C-E 4.1 min still wins.
    assert shortest_path(graph, "A", "E", congestion={"BC": 50})["path"] == ["A", "B", "C", "E"]


def test_unreachable_and_unknown_nodes():
    graph = small_graph()
    with pytest.raises(NoRoute):
        shortest_path(graph, "A", "F")
    with pytest.raises(ValueError):
        shortest_path(graph, "A", "Z")
    assert shortest_path(graph, "A", "A") == {"path": ["A"], "distance_km": 0.0, "travel_time_min": 0.0}


def test_one_way_edges():
    graph = RoadGraph()
    graph.add_node("a", 0, 0)
    graph.add_node("b", 0.01, 0)
    graph.add_edge("a", "b", bidirectional=False)
    assert shortest_path(graph, "a", "b")["path"] == ["a", "b"]
    with pytest.raises(NoRoute):
        shortest_path(graph, "b", "a")


def dijkstra_minutes(graph, origin, destination, congestion):
    best, queue = {origin: 0.0}, [(0.0, origin)]
    while queue:
        hours, node = heapq.heappop(queue)
        if node == destination:
            return hours * 60
        if hours > best[node]:
            continue
        for edge in graph.neighbours(node):
            level = congestion.get(edge["road_id"], 0)
            candidate = hours + edge["length_km"] / edge["speed_kmh"] * (1 + 2 * (level / 100) ** 2)
            if candidate < best.get(edge["node"], math.inf):
                best[edge["node"]] = candidate
                heapq.heappush(queue, (candidate, edge["node"]))
    raise AssertionError("unreachable")


def test_a_star_matches_dijkstra_on_city_grid():
    graph = build_city_grid(center=(-0.1276, 51.5072), rows=10, cols=10)
    rng = random.Random(3)
    road_ids = sorted({edge["road_id"] for edge in graph.to_dict()["edges"]})
    congestion = {road: rng.uniform(0, 100) for road in rng.sample(road_ids, 40)}
    nodes = sorted(graph.nodes)
    for _ in range(25):
        origin, destination = rng.choice(nodes), rng.choice(nodes)
        expected = dijkstra_minutes(graph, origin, destination, congestion)
        result = shortest_path(graph, origin, destination, congestion=congestion)
        assert result["travel_time_min"] == pytest.approx(expected, abs=1e-3)


def test_yield_fn_called_during_search():
    graph = build_city_grid()
    calls = []
    shortest_path(graph, "N-0-0", "N-7-7", yield_every=5, yield_fn=lambda: calls.append(1))
    assert len(calls) >= 3


def test_nearest_node():
    graph = small_graph()
    assert graph.nearest_node(0.021, 0.004) == "C"


# --- Synthetic city ----------------------------------------------------------


def reachable(graph, start):
    seen, stack = {start}, [start]
    while stack:
        for edge in graph.neighbours(stack.pop()):
            if edge["node"] not in seen:
                seen.add(edge["node"])
                stack.append(edge["node"])
    return seen


def test_city_grid_is_deterministic_and_connected():
    first, second = build_city_grid(seed=42), build_city_grid(seed=42)
    assert first.to_dict() == second.to_dict()
    assert first.to_dict() != build_city_grid(seed=43).to_dict()
    assert len(first.nodes) == 64 and "N-3-5" in first.nodes
    assert reachable(first, "N-0-0") == set(first.nodes)


def test_city_grid_roads():
    edges = build_city_grid(seed=42).to_dict()["edges"]
    road_ids = [edge["road_id"] for edge in edges]
    assert len(road_ids) == len(set(road_ids))
    grid_streets = [edge for edge in edges if edge["road_id"][0] in "HV"]
    assert len(grid_streets) < 2 * 8 * 7  # some local streets were closed
    assert any(edge["road_id"][0] in "DA" for edge in edges)  # and shortcuts added
    for edge in grid_streets:
        kind, row, col = edge["road_id"].split("-")
        line = int(row) if kind == "H" else int(col)
        assert edge["speed_kmh"] == (60.0 if line % 3 == 0 else 40.0)
        assert edge["length_km"] == pytest.approx(0.6, abs=1e-3)


@pytest.mark.parametrize("seed", range(10))
def test_city_grid_connected_for_many_seeds(seed):
    graph = build_city_grid(rows=6, cols=9, seed=seed)
    assert reachable(graph, "N-0-0") == set(graph.nodes)


# --- Collection routes -------------------------------------------------------


def test_two_opt_never_worse_than_nearest_neighbour():
    rng = random.Random(2024)
    depot = (2.35, 48.85)
    for _ in range(30):
        stops = [{"id": f"bin-{i}", "location": (depot[0] + rng.uniform(-0.05, 0.05),
                                                 depot[1] + rng.uniform(-0.05, 0.05))}
                 for i in range(rng.randint(5, 20))]
        greedy = nearest_neighbour_order(depot, stops)
        improved = two_opt(depot, greedy)
        assert sorted(stop["id"] for stop in improved) == sorted(stop["id"] for stop in stops)
        assert route_length_km(depot, improved) <= route_length_km(depot, greedy) + 1e-9


def test_two_opt_removes_crossing():
    depot = (0.0, 0.0)
    a, b, c, e = [{"id": name, "location": point} for name, point in
                  [("a", (0.0, 0.01)), ("b", (0.01, 0.02)), ("c", (0.02, 0.01)), ("e", (0.01, -0.01))]]
    # depot -> a -> c -> b -> e -> depot: a-c (y = 0.01) crosses b-e (x = 0.01).
    crossing = [a, c, b, e]
    improved = two_opt(depot, crossing)
    assert [stop["id"] for stop in improved] in (["a", "b", "c", "e"], ["e", "c", "b", "a"])
    assert route_length_km(depot, improved) < route_length_km(depot, crossing)


def test_optimise_collection_route():
    rng = random.Random(7)
    depot = (13.4, 52.52)
    stops = [{"id": i, "location": [13.4 + rng.uniform(-0.03, 0.03), 52.52 + rng.uniform(-0.03, 0.03)]}
             for i in range(25)]
    result = optimise_collection_route(depot, stops)
    assert len(result["stops"]) == 25
    assert result["distance_km"] <= result["nearest_neighbour_km"]
    assert result["improvement_pct"] >= 0
    assert result["distance_km"] == pytest.approx(route_length_km(depot, result["stops"]), abs=1e-3)


def test_empty_collection_route():
    assert optimise_collection_route((0, 0), []) == {
        "stops": [], "distance_km": 0.0, "nearest_neighbour_km": 0.0, "improvement_pct": 0.0}


# --- Forecasting -------------------------------------------------------------

PATTERN = [3, 2, 1, 1, 2, 5, 12, 20, 18, 14, 12, 12, 13, 12, 12, 14, 17, 22, 19, 13, 9, 7, 5, 4]


def periodic_with_trend(length, start=0):
    return [20 + 0.25 * t + PATTERN[t % 24] for t in range(start, start + length)]


def test_holt_winters_follows_periodic_trend():
    series = periodic_with_trend(72)
    predicted = holt_winters_additive(series, 24, 6)
    assert predicted == pytest.approx(periodic_with_trend(6, start=72), abs=1e-6)


def test_holt_winters_needs_two_seasons_and_clamps_at_zero():
    with pytest.raises(ValueError):
        holt_winters_additive([1.0] * 47, 24, 6)
    falling = [max(0.0, 100 - 3 * t) + (5 if t % 4 == 0 else 0) for t in range(40)]
    assert min(holt_winters_additive(falling, 4, 12)) >= 0.0


def test_seasonal_profile():
    assert seasonal_profile_forecast([7.0], 24, 3) == [7.0, 7.0, 7.0]
    # One full season of a pure pattern repeats the pattern.
    assert seasonal_profile_forecast(PATTERN, 24, 4) == pytest.approx(PATTERN[:4])
    # Half a season: seen positions repeat, unseen ones get the mean (no trend is assumed).
    assert seasonal_profile_forecast([4, 8, 6], 4, 3) == pytest.approx([6.0, 4.0, 8.0])
    # 1.5 seasons with a trend: lag-24 differences recover the 0.25/step slope exactly.
    predicted = seasonal_profile_forecast(periodic_with_trend(36), 24, 6)
    assert predicted == pytest.approx(periodic_with_trend(6, start=36), abs=1e-9)


@pytest.mark.parametrize("length, method", [
    (0, "none"), (1, "last_value"), (11, "last_value"), (12, "seasonal_profile"),
    (47, "seasonal_profile"), (48, "holt_winters_additive"),
])
def test_forecast_method_selection(length, method):
    result = forecast(periodic_with_trend(length), season_length=24, horizon=6)
    assert result["method"] == method
    assert result["points_used"] == length
    assert len(result["values"]) == (0 if method == "none" else 6)


def test_forecast_skips_missing_values():
    assert fill_gaps([None, 1, None, 3, None]) == [1.0, 1.0, 2.0, 3.0, 3.0]
    result = forecast([5, None, None, 8], season_length=24, horizon=2)
    assert result == {"method": "last_value", "values": [8.0, 8.0], "points_used": 2}
    assert forecast([None, None])["method"] == "none"
    series = periodic_with_trend(72)
    series[30] = series[50] = None
    assert forecast(series, 24, 3)["method"] == "holt_winters_additive"
