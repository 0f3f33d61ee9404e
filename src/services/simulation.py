"""A believable city, one tick at a time. Readings go through the normal ingest pipeline.

`CitySimulator` keeps the state that must persist between ticks (bin levels, wind, episodes,
incidents) and a seeded RNG, so a seed and a clock reproduce a run. A bin's stored level is the one
owner of its fill: before each waste tick the simulator adopts any level it did not write itself
(an operator's collection, a real sensor's report, a restart), so it never undoes a collection. The `tick_*` functions
are what the scheduler's jobs call: they build readings and hand them to `ingest`.
"""
import logging
import math
import random
from zoneinfo import ZoneInfo

from flask import current_app

from src.db import get_db
from src.errors import ApiError
from src.models import alerts, bins, emergency_incidents, latest, readings, rollups, traffic_incidents
from src.services import city, city_behaviour, emergency, traffic, waste
from src.services.ingest import ingest
from src.services.latest import get_cache

log = logging.getLogger(__name__)
SOURCE = "simulator"
LANE_CAPACITY_PER_MIN = 30  # vehicles per minute a monitored approach carries at saturation


class CitySimulator:
    def __init__(self, config, seed=None):
        self.seed = seed if seed is not None else config["SIMULATION_SEED"]
        self.rng = random.Random(self.seed)
        self.tz = ZoneInfo(config["CITY_TIMEZONE"])
        self.traffic_sensors = city.traffic_sensors(config["SIM_TRAFFIC_SENSORS"], self.seed)
        self.environment_sensors = city.environment_sensors(config["SIM_ENVIRONMENT_SENSORS"], self.seed)
        self.bins = city.bins(config["SIM_BINS"], self.seed)
        self.grids = city.grids(config["SIM_GRIDS"], self.seed)
        self.hours_to_fill = config["SIM_BIN_HOURS_TO_FILL"]
        self.nominal_hz = config["GRID_NOMINAL_FREQUENCY_HZ"]
        self.nominal_kv = config["GRID_NOMINAL_VOLTAGE_KV"]
        self.energy_interval_h = config["SIMULATION_INTERVALS"]["energy"] / 3600
        self.fill = {b["bin_id"]: self.rng.uniform(5, 60) for b in self.bins}
        self.reported = {}  # bin_id -> the level this simulator last wrote (as stored, rounded)
        self.emergency_started = False  # the first emergency tick raises an incident: life within a minute
        self.hot_bins = {}
        self.wind_ms = self.rng.uniform(3, 9)
        self.cloud = self.rng.uniform(0, 0.6)
        self.episodes = {}        # district -> ticks left of a pollution episode
        self.traffic_incidents = {}  # sensor_id -> ticks left of raised congestion
        self.district_traffic = {}   # district -> last mean volume ratio
        self.last_tick = {}

    def local(self, now):
        return now.astimezone(self.tz)

    def hours_since(self, module, now):
        last = self.last_tick.get(module)
        self.last_tick[module] = now
        return 0.0 if last is None else max(0.0, (now - last).total_seconds() / 3600)

    # traffic

    def traffic_readings(self, now):
        profile = city_behaviour.traffic_profile(self.local(now))
        batch, volumes = [], {}
        for sensor in self.traffic_sensors:
            intensity = city.district_profile(sensor["district"])["traffic"]
            ratio = profile * intensity * self.rng.uniform(0.85, 1.15)
            if sensor["sensor_id"] in self.traffic_incidents:
                ratio = max(ratio, 1.1)
            volumes.setdefault(sensor["district"], []).append(min(ratio, 1.3))
            congestion = city_behaviour.congestion_from_volume(ratio)
            served = min(ratio, 1.0) * LANE_CAPACITY_PER_MIN
            free_speed = 55.0 if sensor["node"].split("-")[1] in ("0", "3", "6") else 42.0
            batch.append({
                "sensor_id": sensor["sensor_id"], "district": sensor["district"],
                "location": city.geo_point(sensor["location"]), "timestamp": now,
                "vehicle_count": max(0, int(round(served + self.rng.gauss(0, 1.5)))),
                "average_speed": city_behaviour.speed_from_congestion(free_speed, congestion),
                "congestion_level": congestion,
                "occupancy_pct": round(min(100.0, ratio * 70), 1),
            })
        self.district_traffic = {d: sum(v) / len(v) for d, v in volumes.items()}
        return batch

    def new_traffic_incident(self):
        """Maybe start an incident at a random sensor; returns the sensor or None."""
        for sensor_id in list(self.traffic_incidents):
            self.traffic_incidents[sensor_id] -= 1
            if self.traffic_incidents[sensor_id] <= 0:
                del self.traffic_incidents[sensor_id]
        if self.rng.random() < 0.04:
            sensor = self.rng.choice(self.traffic_sensors)
            self.traffic_incidents[sensor["sensor_id"]] = self.rng.randint(6, 20)
            return sensor
        return None

    # environment

    def step_weather(self):
        self.wind_ms = min(18.0, max(0.5, self.wind_ms + self.rng.gauss(0, 0.6)))
        self.cloud = min(1.0, max(0.0, self.cloud + self.rng.gauss(0, 0.05)))

    def environment_readings(self, now):
        self.step_weather()
        local = self.local(now)
        for district in list(self.episodes):
            self.episodes[district] -= 1
            if self.episodes[district] <= 0:
                del self.episodes[district]
        if self.rng.random() < 0.02:
            self.episodes[self.rng.choice(city.DISTRICT_NAMES)] = self.rng.randint(4, 12)
        city_traffic = city_behaviour.traffic_profile(local)
        batch = []
        for sensor in self.environment_sensors:
            district = sensor["district"]
            profile = city.district_profile(district)
            near = self.district_traffic.get(district, city_traffic * profile["traffic"])
            dispersion = 1 / (1 + self.wind_ms / 6)  # wind carries pollution away
            pm25 = (4 + 22 * near * profile["pollution"]) * (0.5 + dispersion) * self.rng.uniform(0.85, 1.15)
            if district in self.episodes:
                pm25 *= self.rng.uniform(4.0, 8.0)
            batch.append({
                "sensor_id": sensor["sensor_id"], "district": district, "location": city.geo_point(sensor["location"]),
                "timestamp": now, "pm25": round(min(pm25, 900.0), 1),
                "pm10": round(min(pm25 * self.rng.uniform(1.4, 1.9) + self.rng.uniform(2, 8), 1900.0), 1),
                "no2": round((8 + 40 * near) * (0.5 + dispersion) * self.rng.uniform(0.9, 1.1), 1),
                "o3": round(max(0.0, 20 + 25 * math.sin(math.pi * max(0, local.hour - 6) / 14) + self.rng.gauss(0, 3)), 1),
                "co2": round(410 + 70 * near + self.rng.gauss(0, 5), 1),
                "noise_db": round(min(120.0, 42 + 30 * near + self.rng.gauss(0, 2)), 1),
                "temperature_c": round(city_behaviour.temperature_c(local) + self.rng.gauss(0, 0.4), 1),
                "humidity_pct": round(min(100.0, max(10.0, 65 - 2 * (city_behaviour.temperature_c(local) - 12)
                                                     + self.rng.gauss(0, 3))), 1),
            })
        return batch

    # waste

    def adopt_levels(self, stored):
        """Continue from the stored levels (`{bin_id: bin doc}`) wherever someone else changed them.

        A stored level that differs from what this simulator last wrote was set by someone else (a
        collection through the API, a real level report, another process before a restart); a bin that
        never reported keeps the simulator's own starting level. Returns the bin ids adopted.
        """
        adopted = []
        for bin_id, doc in stored.items():
            level = doc.get("fill_level_pct")
            if bin_id not in self.fill or level is None:
                continue
            if bin_id in self.reported:
                changed = level != self.reported[bin_id]
            else:
                changed = doc.get("last_reading_at") is not None or doc.get("last_emptied_at") is not None
            if changed:
                self.fill[bin_id] = min(100.0, max(0.0, float(level)))
                self.reported[bin_id] = level
                adopted.append(bin_id)
        return adopted

    def waste_readings(self, now):
        hours = self.hours_since("waste", now)
        local = self.local(now)
        for bin_id in list(self.hot_bins):
            self.hot_bins[bin_id] -= 1
            if self.hot_bins[bin_id] <= 0:
                del self.hot_bins[bin_id]
        if self.rng.random() < 0.01:
            self.hot_bins[self.rng.choice(self.bins)["bin_id"]] = self.rng.randint(2, 5)
        batch = []
        for entity in self.bins:
            factor = city.district_profile(entity["district"])["fill"]
            rate = city_behaviour.bin_fill_rate_pct_per_hour(local, factor, entity["waste_type"], self.hours_to_fill)
            self.fill[entity["bin_id"]] = min(100.0, self.fill[entity["bin_id"]] + rate * hours * self.rng.uniform(0.7, 1.3))
            hot = entity["bin_id"] in self.hot_bins
            level = self.reported[entity["bin_id"]] = round(self.fill[entity["bin_id"]], 1)
            batch.append({"bin_id": entity["bin_id"], "timestamp": now,
                          "fill_level_pct": level,
                          "temperature_c": round(self.rng.uniform(62, 80) if hot else
                                                 city_behaviour.temperature_c(local) + self.rng.uniform(0, 4), 1),
                          "battery_pct": round(max(5.0, 100 - (int(entity["bin_id"][-3:]) % 40)), 1)})
        return batch

    def districts_due_for_collection(self, threshold=75.0):
        """Districts whose bins average above `threshold` %, or with a bin at 95 % or more."""
        due = []
        for district in city.DISTRICT_NAMES:
            levels = [self.fill[b["bin_id"]] for b in self.bins if b["district"] == district]
            if levels and (sum(levels) / len(levels) >= threshold or max(levels) >= 95):
                due.append(district)
        return due

    def emptied(self, bin_ids):
        """Bins this simulator collected: the waste service stored them at 0, and so do we."""
        for bin_id in bin_ids:
            if bin_id in self.fill:
                self.fill[bin_id] = self.reported[bin_id] = 0.0

    # energy

    def energy_readings(self, now):
        self.step_weather()
        local = self.local(now)
        demand = city_behaviour.demand_profile(local)
        # A meter reports the energy since its previous reading; the first covers one interval.
        metered_h = self.hours_since("energy", now) or self.energy_interval_h
        batch = []
        for grid in self.grids:
            lng, lat = grid["location"]
            elevation = city_behaviour.solar_elevation_deg(now, lng, lat)
            solar = city_behaviour.solar_output_mw(grid["solar_capacity_mw"], elevation, self.cloud)
            wind = city_behaviour.wind_output_mw(grid["wind_capacity_mw"], self.wind_ms * self.rng.uniform(0.9, 1.1))
            load = grid["capacity_mw"] * demand * self.rng.uniform(0.9, 1.12)
            excursion = self.rng.random() < 0.01
            frequency = self.nominal_hz + (self.rng.choice((-1, 1)) * self.rng.uniform(0.55, 0.8) if excursion
                                           else self.rng.gauss(0, 0.03))
            batch.append({
                "grid_id": grid["grid_id"], "district": grid["district"], "location": city.geo_point(grid["location"]),
                "timestamp": now, "capacity_mw": grid["capacity_mw"], "load_mw": round(load, 2),
                "solar_mw": solar, "wind_mw": wind, "hydro_mw": 4.0 if grid["grid_id"].endswith("1") else 0.0,
                "frequency_hz": round(frequency, 3),
                "voltage_kv": round(self.nominal_kv * (1 + self.rng.gauss(0, 0.007)), 2),
                "consumption_kwh": round(load * 1000 * metered_h, 1),
            })
        return batch


def get_simulator(app=None):
    app = app or current_app
    simulator = app.extensions.get("simulator")
    if simulator is None:
        simulator = app.extensions["simulator"] = CitySimulator(app.config)
    return simulator


def tick_traffic(now):
    """Simulate one traffic tick: readings with rush hours, and now and then an incident."""
    simulator = get_simulator()
    sensor = simulator.new_traffic_incident()
    stored = ingest("traffic", simulator.traffic_readings(now), source=SOURCE)
    if sensor is not None:
        _report_traffic_incident(simulator, sensor)
    return len(stored)


def _report_traffic_incident(simulator, sensor):
    kind = simulator.rng.choice(("accident", "breakdown", "roadwork", "hazard"))
    severity = simulator.rng.choice(("medium", "high", "high", "critical"))
    traffic.create_incident({"type": kind, "severity": severity, "sensor_id": sensor["sensor_id"],
                             "location": city.geo_point(sensor["location"]), "district": sensor["district"],
                             "description": f"Simulated {kind} near {sensor['sensor_id']}"}, source=SOURCE)


def tick_environment(now):
    """Simulate one environment tick: air quality that follows traffic and wind; occasional pollution episodes."""
    return len(ingest("environment", get_simulator().environment_readings(now), source=SOURCE))


def tick_waste(now):
    """Simulate bin levels (filling by district and type), then collect districts whose bins are full."""
    simulator = get_simulator()
    if not current_app.extensions.get("simulation_registered"):  # MongoDB was down at start-up
        ensure_registered(current_app._get_current_object())
    _adopt_stored_levels(simulator)
    stored = ingest("waste", simulator.waste_readings(now), source=SOURCE)
    for district in simulator.districts_due_for_collection():
        simulator.emptied(_collect(district))
    return len(stored)


def _adopt_stored_levels(simulator):
    """Pick up levels the simulator did not write (an operator's collection, say) before the next reading."""
    adopted = simulator.adopt_levels(bins.find_many(get_db(), list(simulator.fill)))
    if adopted:
        log.debug("simulator adopted stored levels of %d bins", len(adopted))
    return adopted


def _collect(district):
    try:
        collection = waste.create_collection({"district": district, "fill_threshold": 50.0}, user=None)
    except ApiError:  # no bin in the district is above the threshold any more
        return []
    waste.complete_collection(str(collection["_id"]), user=None, source=SOURCE)
    return collection.get("bin_ids", [])


def tick_energy(now):
    """Simulate one energy tick: demand curve, solar by sun elevation, persistent wind, frequency wobble."""
    return len(ingest("energy", get_simulator().energy_readings(now), source=SOURCE))


def ensure_registered(app):
    """Register the simulated bins (level readings need them) before the first tick."""
    simulator = get_simulator(app)
    db = get_db(app)
    known = bins.existing_ids(db, [b["bin_id"] for b in simulator.bins])
    for entity in simulator.bins:
        if entity["bin_id"] not in known:  # an upsert: another process may register it since our read
            bins.insert_if_missing(db, {"bin_id": entity["bin_id"], "capacity_liters": entity["capacity_liters"],
                                        "district": entity["district"], "waste_type": entity["waste_type"],
                                        "location": city.geo_point(entity["location"]), "fill_level_pct": 0.0,
                                        "source": SOURCE})
    app.extensions["simulation_registered"] = True


def tick_emergency(now):
    """Occasional incidents, dispatched to the nearest unit; units travel, work and return."""
    simulator = get_simulator()
    # The first tick after start always raises one, so the module shows life within a minute of start.
    if simulator.rng.random() < 0.08 or not simulator.emergency_started:
        district = simulator.rng.choice(city.DISTRICT_NAMES)
        location = city.offset(city.district_center(district), simulator.rng.uniform(-0.5, 0.5),
                               simulator.rng.uniform(-0.5, 0.5))
        kind = simulator.rng.choice(("medical", "medical", "fire", "crime", "accident", "hazard"))
        incident = emergency.create_incident(
            {"type": kind, "severity": simulator.rng.choice(("medium", "high", "high", "critical")),
             "location": city.geo_point(location), "district": district,
             "description": f"Simulated {kind} in {district}"}, source=SOURCE)
        simulator.emergency_started = True
        try:
            emergency.dispatch_nearest(str(incident["_id"]), user=None)
        except ApiError:  # every suitable unit is busy; the incident waits, as it would in the city
            pass
    return emergency.advance_units(now, rng=simulator.rng)


def purge(app):
    """Delete everything the simulator made: readings, latest values, alerts, rollups, incidents."""
    db = get_db(app)
    counts = {
        "readings": readings.delete_by_source(db, SOURCE),
        "latest": latest.delete_by_source(db, SOURCE),
        "alerts": alerts.delete_by_source(db, SOURCE),
        "rollups": rollups.delete_by_source(db, SOURCE),
        "traffic_incidents": traffic_incidents.delete_by_source(db, SOURCE),
        "emergency_incidents": emergency_incidents.delete_by_source(db, SOURCE),
    }
    get_cache(app).clear(source=SOURCE)
    app.extensions["open_alerts"].load(alerts.open_keys(db))
    return counts
