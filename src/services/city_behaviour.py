"""Pure models of city behaviour over the day, used by the simulators. No I/O, no randomness.

Times are the city's local time unless a function says UTC.
"""
import math
from datetime import datetime, timezone


def _bump(hour, centre, width):
    return math.exp(-((hour - centre) ** 2) / (2 * width ** 2))


def traffic_profile(local_time):
    """Relative traffic volume 0..1: morning and evening rush on weekdays, a midday hump at weekends."""
    hour = local_time.hour + local_time.minute / 60
    night = 0.06 + 0.04 * _bump(hour, 13, 5)
    if local_time.weekday() < 5:
        return min(1.0, night + 0.9 * _bump(hour, 8.0, 1.1) + 0.95 * _bump(hour, 17.75, 1.4)
                   + 0.45 * _bump(hour, 12.5, 2.5))
    return min(1.0, night + 0.55 * _bump(hour, 13.5, 3.0) + 0.15 * _bump(hour, 20, 1.5))


def congestion_from_volume(volume_ratio):
    """Congestion % from demand/capacity: low until ~60 % of capacity, then rising steeply."""
    ratio = max(0.0, volume_ratio)
    return round(min(100.0, 100 * (ratio ** 2.2)), 1)


def speed_from_congestion(free_speed_kmh, congestion_pct):
    return round(max(3.0, free_speed_kmh * (1 - 0.85 * congestion_pct / 100)), 1)


def temperature_c(local_time, mean_c=12.0, amplitude_c=6.0):
    """Daily sine: coldest around 05:00, warmest around 15:00 (sinusoid peaking at 15:00)."""
    hour = local_time.hour + local_time.minute / 60
    return mean_c + amplitude_c * math.sin(2 * math.pi * (hour - 9) / 24)


def solar_elevation_deg(when_utc, lng, lat):
    """Approximate solar elevation (NOAA-style, about 1 degree accuracy)."""
    when_utc = when_utc.astimezone(timezone.utc)
    day = when_utc.timetuple().tm_yday
    gamma = 2 * math.pi / 365 * (day - 1 + (when_utc.hour - 12) / 24)
    decl = (0.006918 - 0.399912 * math.cos(gamma) + 0.070257 * math.sin(gamma) - 0.006758 * math.cos(2 * gamma)
            + 0.000907 * math.sin(2 * gamma) - 0.002697 * math.cos(3 * gamma) + 0.00148 * math.sin(3 * gamma))
    eq_time = 229.18 * (0.000075 + 0.001868 * math.cos(gamma) - 0.032077 * math.sin(gamma)
                        - 0.014615 * math.cos(2 * gamma) - 0.040849 * math.sin(2 * gamma))
    minutes = when_utc.hour * 60 + when_utc.minute + when_utc.second / 60
    true_solar = minutes + eq_time + 4 * lng
    hour_angle = math.radians(true_solar / 4 - 180)
    lat_r = math.radians(lat)
    cos_zenith = math.sin(lat_r) * math.sin(decl) + math.cos(lat_r) * math.cos(decl) * math.cos(hour_angle)
    return 90 - math.degrees(math.acos(max(-1.0, min(1.0, cos_zenith))))


def solar_output_mw(capacity_mw, elevation_deg, cloud_cover=0.0):
    """PV output: zero below the horizon, rising with the sine of elevation, dimmed by cloud."""
    if elevation_deg <= 0:
        return 0.0
    return round(capacity_mw * math.sin(math.radians(elevation_deg)) * (1 - 0.75 * cloud_cover), 3)


def wind_output_mw(capacity_mw, wind_speed_ms):
    """A turbine power curve: cut-in 3 m/s, rated at 12 m/s, cut-out at 25 m/s."""
    if wind_speed_ms < 3 or wind_speed_ms >= 25:
        return 0.0
    if wind_speed_ms >= 12:
        return round(capacity_mw, 3)
    return round(capacity_mw * ((wind_speed_ms - 3) / 9) ** 3, 3)


def demand_profile(local_time):
    """Relative electricity demand 0..1: a morning shoulder and an evening peak, lower at weekends."""
    hour = local_time.hour + local_time.minute / 60
    base = 0.55 + 0.2 * _bump(hour, 9, 2.5) + 0.3 * _bump(hour, 19, 2.2) - 0.12 * _bump(hour, 4, 2.0)
    return base * (0.88 if local_time.weekday() >= 5 else 1.0)


def bin_fill_rate_pct_per_hour(local_time, district_factor, waste_type, hours_to_fill):
    """How fast a bin fills: faster by day, by busy districts, and for organic waste."""
    hour = local_time.hour + local_time.minute / 60
    daytime = 0.35 + 1.3 * _bump(hour, 14, 4.0)
    type_factor = {"organic": 1.3, "general": 1.0, "recycling": 0.8, "glass": 0.5}.get(waste_type, 1.0)
    return 100 / hours_to_fill * daytime * district_factor * type_factor


def utc(year, month, day, hour=0, minute=0):
    return datetime(year, month, day, hour, minute, tzinfo=timezone.utc)
