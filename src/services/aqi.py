"""US EPA Air Quality Index from particulate concentrations.

Breakpoints follow the EPA PM NAAQS revision of February 2024 (effective
May 2024): the PM2.5 "good" band now ends at 9.0 µg/m³ (was 12.0) and the
upper PM2.5 bands were re-anchored (225.5 µg/m³ starts "hazardous", and
301–500 is a single segment up to 325.4). PM10 breakpoints are unchanged.
Concentrations are truncated the way EPA does before lookup (PM2.5 to
0.1 µg/m³, PM10 to 1 µg/m³), and the index is rounded half-up to an integer.
"""
import math
from decimal import ROUND_DOWN, Decimal

# (conc_low, conc_high, aqi_low, aqi_high) per pollutant.
BREAKPOINTS = {
    "pm25": (
        (0.0, 9.0, 0, 50),
        (9.1, 35.4, 51, 100),
        (35.5, 55.4, 101, 150),
        (55.5, 125.4, 151, 200),
        (125.5, 225.4, 201, 300),
        (225.5, 325.4, 301, 500),
    ),
    "pm10": (
        (0, 54, 0, 50),
        (55, 154, 51, 100),
        (155, 254, 101, 150),
        (255, 354, 151, 200),
        (355, 424, 201, 300),
        (425, 604, 301, 500),
    ),
}

# Decimal places kept when truncating, as EPA reports each pollutant.
TRUNCATION_PLACES = {"pm25": 1, "pm10": 0}

MAX_AQI = 500

# (upper AQI bound, category name), checked in order.
CATEGORIES = (
    (50, "good"),
    (100, "moderate"),
    (150, "unhealthy_for_sensitive_groups"),
    (200, "unhealthy"),
    (300, "very_unhealthy"),
)
TOP_CATEGORY = "hazardous"


def truncate_concentration(pollutant, concentration):
    """Truncate a concentration to the precision EPA uses for that pollutant."""
    places = TRUNCATION_PLACES[pollutant]
    # Decimal via str() avoids float artefacts such as 2.3 * 10 == 22.999...
    step = Decimal(1).scaleb(-places)
    return float(Decimal(str(concentration)).quantize(step, rounding=ROUND_DOWN))


def _validate(pollutant, concentration):
    if pollutant not in BREAKPOINTS:
        raise ValueError(f"unknown pollutant {pollutant!r}; expected one of {sorted(BREAKPOINTS)}")
    if concentration is None or isinstance(concentration, bool):
        raise ValueError(f"{pollutant} concentration is required")
    try:
        value = float(concentration)
    except (TypeError, ValueError):
        raise ValueError(f"{pollutant} concentration must be a number") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{pollutant} concentration must be a finite non-negative number")
    return value


def aqi_for(pollutant, concentration):
    """The integer AQI sub-index of one pollutant ("pm25" or "pm10")."""
    value = truncate_concentration(pollutant, _validate(pollutant, concentration))
    for conc_low, conc_high, aqi_low, aqi_high in BREAKPOINTS[pollutant]:
        if value <= conc_high:
            index = (aqi_high - aqi_low) / (conc_high - conc_low) * (value - conc_low) + aqi_low
            # Half-up, not Python's banker's rounding, to match EPA's published values.
            return min(MAX_AQI, math.floor(index + 0.5))
    # Beyond the table the scale has no meaning; EPA reports "beyond the AQI" as 500+.
    return MAX_AQI


def category(aqi):
    """The EPA category name for an AQI value."""
    if aqi is None or aqi < 0:
        raise ValueError("aqi must be a non-negative number")
    for upper, name in CATEGORIES:
        if aqi <= upper:
            return name
    return TOP_CATEGORY


def compute_aqi(pm25, pm10):
    """The overall AQI, its category and the pollutant that sets it."""
    sub_indices = {"pm25": aqi_for("pm25", pm25), "pm10": aqi_for("pm10", pm10)}
    # On a tie PM2.5 is reported, being the more health-relevant fraction.
    dominant = "pm25" if sub_indices["pm25"] >= sub_indices["pm10"] else "pm10"
    aqi = sub_indices[dominant]
    return {"aqi": aqi, "aqi_category": category(aqi), "dominant_pollutant": dominant}
