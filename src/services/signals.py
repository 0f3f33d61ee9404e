"""Fixed-time traffic-signal plans by Webster's method.

Webster (1958): optimum cycle C0 = (1.5 L + 5) / (1 - Y), where L is the lost
time per cycle and Y the sum of the phases' critical flow ratios q/s. The
effective green (C - L) is shared in proportion to each phase's flow ratio.
"""

# Above this Y the Webster cycle explodes towards infinity; treat the junction
# as oversaturated instead of trusting the formula.
OVERSATURATION_Y = 0.95


def flows_from_counts(vehicle_count, interval_s):
    """An hourly flow (veh/h) from a vehicle count over interval_s seconds."""
    if interval_s is None or interval_s <= 0:
        raise ValueError("interval_s must be positive")
    if vehicle_count is None or vehicle_count < 0:
        raise ValueError("vehicle_count must be non-negative")
    return vehicle_count * 3600.0 / interval_s


def _split_greens(total_green, weights, min_green):
    """Share total_green by weight, raising any phase below min_green to it."""
    greens = [None] * len(weights)
    # Each round fixes the phases whose share falls short at min_green, which
    # shrinks what is left for the rest; stop once no share falls short.
    while True:
        free = [i for i, green in enumerate(greens) if green is None]
        remaining = total_green - min_green * (len(weights) - len(free))
        weight = sum(weights[i] for i in free)
        shares = {i: remaining * weights[i] / weight if weight > 0 else remaining / len(free) for i in free}
        short = [i for i in free if shares[i] < min_green]
        if not short:
            for i in free:
                greens[i] = shares[i]
            return greens
        for i in short:
            greens[i] = float(min_green)


def _round_greens(greens, total):
    """Greens rounded to 0.1 s, the rounding residue given to the longest so they still sum to total."""
    rounded = [round(green, 1) for green in greens]
    longest = max(range(len(rounded)), key=lambda i: rounded[i])
    rounded[longest] = round(rounded[longest] + total - sum(rounded), 1)
    return rounded


def webster_timing(critical_flows, saturation_flow=1800, lost_time_per_phase_s=4.0,
                   min_cycle_s=30, max_cycle_s=180, min_green_s=7):
    """A Webster signal plan (cycle and per-phase greens) from per-phase critical flows in veh/h."""
    flows = list(critical_flows or [])
    if not flows:
        raise ValueError("critical_flows needs at least one phase")
    if any(flow is None or flow < 0 for flow in flows):
        raise ValueError("critical flows must be non-negative numbers")
    if saturation_flow <= 0 or min_cycle_s <= 0 or min_cycle_s > max_cycle_s:
        raise ValueError("need saturation_flow > 0 and 0 < min_cycle_s <= max_cycle_s")
    phases = len(flows)
    lost_time = phases * lost_time_per_phase_s
    # Every phase needs its minimum green on top of the lost time; a cap below
    # that cannot be honoured, so it is a configuration error.
    shortest_cycle = lost_time + phases * min_green_s
    if shortest_cycle > max_cycle_s:
        raise ValueError(f"{phases} phases need a cycle of at least {shortest_cycle} s, above max_cycle_s")

    ratios = [flow / saturation_flow for flow in flows]
    total_ratio = sum(ratios)
    oversaturated = total_ratio >= OVERSATURATION_Y
    if oversaturated:
        cycle = float(max_cycle_s)
    elif total_ratio == 0:
        cycle = float(min_cycle_s)
    else:
        cycle = (1.5 * lost_time + 5) / (1 - total_ratio)
    cycle = round(float(min(max_cycle_s, max(min_cycle_s, shortest_cycle, cycle))), 1)

    effective_green = cycle - lost_time
    greens = _round_greens(_split_greens(effective_green, ratios, min_green_s), effective_green)
    return {
        "cycle_s": cycle,
        "greens_s": greens,
        "flow_ratios": [round(ratio, 4) for ratio in ratios],
        "Y": round(total_ratio, 4),
        "lost_time_s": float(lost_time),
        "oversaturated": oversaturated,
        "method": "webster",
    }
