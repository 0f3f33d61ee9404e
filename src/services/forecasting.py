"""Short-horizon forecasts of periodic sensor series (traffic counts, AQI, ...).

`forecast` picks the richest method the data supports: additive Holt-Winters
with two or more seasons, a seasonal profile with half a season or more, and
the last value below that. Forecasts are clamped at zero because every series
forecast here (counts, concentrations, indices) is non-negative.
"""
import math


def _mean(values):
    return sum(values) / len(values)


def holt_winters_additive(series, season_length, horizon, alpha=0.3, beta=0.05, gamma=0.2):
    """Additive triple exponential smoothing forecast of the next `horizon` values."""
    m = season_length
    if m < 1 or horizon < 0:
        raise ValueError("season_length must be >= 1 and horizon >= 0")
    if len(series) < 2 * m:
        raise ValueError(f"Holt-Winters needs at least {2 * m} points, got {len(series)}")
    for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        if not 0 <= value <= 1:
            raise ValueError(f"{name} must be within [0, 1]")

    seasons = len(series) // m
    season_means = [_mean(series[k * m:(k + 1) * m]) for k in range(seasons)]
    trend = (season_means[1] - season_means[0]) / m
    # Seasonal offsets measured against each season's mean *and* the trend
    # within the season; otherwise a steady rise leaks into the offsets.
    centre = (m - 1) / 2
    seasonal = [
        _mean([series[k * m + i] - season_means[k] - trend * (i - centre) for k in range(seasons)])
        for i in range(m)
    ]
    # Start at the end of the first season, so the updates below begin at t = m.
    level = season_means[0] + trend * centre
    for t in range(m, len(series)):
        previous_level = level
        level = alpha * (series[t] - seasonal[t % m]) + (1 - alpha) * (level + trend)
        trend = beta * (level - previous_level) + (1 - beta) * trend
        seasonal[t % m] = gamma * (series[t] - level) + (1 - gamma) * seasonal[t % m]

    last = len(series) - 1
    return [max(0.0, level + h * trend + seasonal[(last + h) % m]) for h in range(1, horizon + 1)]


def seasonal_profile_forecast(series, season_length, horizon):
    """Mean per seasonal position plus the trend seen over the last season."""
    m = season_length
    if m < 1 or horizon < 0:
        raise ValueError("season_length must be >= 1 and horizon >= 0")
    if not series:
        raise ValueError("seasonal_profile_forecast needs at least one point")
    count = len(series)
    # Differences one season apart cancel the seasonal pattern and leave the
    # trend; with under a season of data there are none, and no trend is assumed.
    lags = [(series[t] - series[t - m]) / m for t in range(max(m, count - m), count)]
    slope = _mean(lags) if lags else 0.0
    by_position = {}
    for t, value in enumerate(series):
        by_position.setdefault(t % m, []).append(value - slope * t)
    profile = {position: _mean(values) for position, values in by_position.items()}
    # Positions not observed yet fall back to the detrended mean.
    fallback = _mean([value for values in by_position.values() for value in values])
    last = count - 1
    return [max(0.0, profile.get((last + h) % m, fallback) + slope * (last + h)) for h in range(1, horizon + 1)]


def _is_missing(value):
    return value is None or (isinstance(value, float) and math.isnan(value))


def fill_gaps(series):
    """The series with missing values (None/NaN) interpolated from their neighbours."""
    known = [(t, float(value)) for t, value in enumerate(series) if not _is_missing(value)]
    if not known:
        return []
    filled = []
    cursor = 0
    for t in range(len(series)):
        while cursor + 1 < len(known) and known[cursor + 1][0] <= t:
            cursor += 1
        left_t, left = known[cursor]
        if t <= left_t or cursor + 1 == len(known):
            # Before the first or after the last reading: hold the nearest one,
            # keeping every index so seasonal positions stay aligned.
            filled.append(left)
        else:
            right_t, right = known[cursor + 1]
            filled.append(left + (right - left) * (t - left_t) / (right_t - left_t))
    return filled


def forecast(series, season_length=24, horizon=6):
    """A forecast using the best method the amount of data allows."""
    if season_length < 1 or horizon < 0:
        raise ValueError("season_length must be >= 1 and horizon >= 0")
    series = list(series or [])
    points = sum(1 for value in series if not _is_missing(value))
    filled = fill_gaps(series)
    # Method choice counts real readings, not interpolated ones.
    if points == 0:
        method, values = "none", []
    elif points >= 2 * season_length:
        method, values = "holt_winters_additive", holt_winters_additive(filled, season_length, horizon)
    elif points >= season_length / 2:
        method, values = "seasonal_profile", seasonal_profile_forecast(filled, season_length, horizon)
    else:
        method, values = "last_value", [max(0.0, filled[-1])] * horizon
    return {"method": method, "values": [round(value, 3) for value in values], "points_used": points}
