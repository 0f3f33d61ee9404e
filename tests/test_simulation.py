"""Simulators and housekeeping jobs, called directly with a fixed seed and a frozen clock."""
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from src.db import get_db
from src.models import alerts, readings
from src.schemas.readings import READING_SCHEMAS
from src.services import city_behaviour, housekeeping, simulation

NEW_YORK = ZoneInfo("America/New_York")
WEDNESDAY = datetime(2026, 6, 10, tzinfo=NEW_YORK)  # a weekday in summer


def at(hour, minute=0, day=WEDNESDAY):
    return day.replace(hour=hour, minute=minute).astimezone(timezone.utc)


@pytest.fixture
def sim_app(app_factory):
    app = app_factory(SIMULATION_SEED=7, RAW_RETENTION_HOURS=24 * 400)  # the frozen clock is in June
    with app.app_context():
        simulation.ensure_registered(app)
        yield app


def total_vehicles(now):
    return sum(r["vehicle_count"] for r in simulation.get_simulator().traffic_readings(now))


def test_rush_hours_beat_the_night_on_weekdays(sim_app):
    night, morning, evening = total_vehicles(at(3)), total_vehicles(at(8)), total_vehicles(at(18))
    assert morning > 2 * night and evening > 2 * night
    saturday = WEDNESDAY + timedelta(days=3)
    assert total_vehicles(at(8, day=saturday)) < morning  # weekends have no morning rush


def test_solar_is_zero_at_night_and_positive_at_noon(sim_app):
    simulator = simulation.get_simulator()
    night = simulator.energy_readings(at(1))
    noon = simulator.energy_readings(at(13))
    assert all(r["solar_mw"] == 0.0 for r in night)
    assert all(r["solar_mw"] > 0 for r in noon)
    assert city_behaviour.solar_elevation_deg(at(13), -73.98, 40.75) > 60  # June, near solar noon in New York


def test_temperature_and_noise_follow_the_day(sim_app):
    simulator = simulation.get_simulator()
    simulator.traffic_readings(at(5))
    dawn = simulator.environment_readings(at(5))
    simulator.traffic_readings(at(15))
    afternoon = simulator.environment_readings(at(15))
    mean = lambda rs, k: sum(r[k] for r in rs) / len(rs)  # noqa: E731
    assert mean(afternoon, "temperature_c") > mean(dawn, "temperature_c") + 6
    assert mean(afternoon, "noise_db") > mean(dawn, "noise_db")


def test_every_simulated_reading_passes_the_posted_schema(sim_app):
    simulator = simulation.get_simulator()
    now = at(9)
    batches = {"traffic": simulator.traffic_readings(now), "environment": simulator.environment_readings(now),
               "waste": simulator.waste_readings(now), "energy": simulator.energy_readings(now)}
    for module, batch in batches.items():
        assert batch
        schema = READING_SCHEMAS[module](many=True)
        # JSON-shaped, as a gateway would POST them.
        posted = [dict(r, timestamp=r["timestamp"].isoformat()) for r in batch]
        assert schema.validate(posted) == {}, module


def test_simulator_jobs_store_tagged_readings(sim_app):
    now = datetime.now(timezone.utc)
    assert simulation.tick_traffic(now) == 20
    assert simulation.tick_environment(now) == 15
    assert simulation.tick_waste(now) == 40
    assert simulation.tick_energy(now) == 6
    db = get_db()
    assert db.readings.count_documents({"source": "simulator"}) == 81
    assert db.readings.count_documents({"source": {"$ne": "simulator"}}) == 0


def test_same_seed_same_city(app_factory):
    def run(seed):
        app = app_factory(SIMULATION_SEED=seed)
        with app.app_context():
            return [r["vehicle_count"] for r in simulation.CitySimulator(app.config).traffic_readings(at(8))]

    assert run(11) == run(11)
    assert run(11) != run(12)


def test_bins_fill_and_get_emptied(sim_app):
    simulator = simulation.get_simulator()
    start = at(10)
    simulation.tick_waste(start)
    first = dict(simulator.fill)
    simulation.tick_waste(start + timedelta(hours=1))
    assert all(simulator.fill[b] >= first[b] for b in first)
    assert sum(simulator.fill.values()) > sum(first.values())
    for bin_id in simulator.fill:  # force a district over the collection threshold
        simulator.fill[bin_id] = 97.0
    simulation.tick_waste(start + timedelta(hours=1, minutes=1))
    db = get_db()
    assert db.waste_collections.count_documents({"status": "completed"}) >= 1
    emptied = [b for b in db.bins.find({}) if b["fill_level_pct"] < 10]
    assert emptied, "a collection empties bins through the ingest pipeline"


def test_simulated_readings_raise_alerts_through_the_rules(sim_app):
    simulator = simulation.get_simulator()
    for district in ("Downtown", "Harbor", "Industrial"):
        simulator.episodes[district] = 5  # a pollution episode
    now = datetime.now(timezone.utc)
    simulation.tick_traffic(now)
    simulation.tick_environment(now)
    raised = list(get_db().alerts.find({"module": "environment", "type": "air_quality"}))
    assert raised and all(a["rule_id"] == "environment.aqi" for a in raised)


def test_retention_deletes_only_old_raw_readings(app_factory, admin_headers):
    app = app_factory(RAW_RETENTION_HOURS=4)  # ingest refuses readings already past retention
    client = app.test_client()
    from tests.conftest import bearer, login

    headers = bearer(login(client)["access_token"])
    # On MongoDB the TTL index also expires them; the job must work without it.
    if "expireAfterSeconds" in get_db(app).readings.index_information()["timestamp_ttl"]:
        get_db(app).readings.drop_index("timestamp_ttl")
    now = datetime.now(timezone.utc)
    for minutes in (30, 100, 150, 200):
        ts = (now - timedelta(minutes=minutes)).isoformat()
        assert client.post("/api/traffic/data", headers=headers, json={
            "sensor_id": f"T{minutes}", "vehicle_count": 1, "average_speed": 20.0, "congestion_level": 10.0,
            "timestamp": ts}).status_code == 201
    app.config["RAW_RETENTION_HOURS"] = 2
    with app.app_context():
        deleted = housekeeping.apply_retention(now)
        left = sorted(r["sensor_id"] for r in readings.find_range(get_db(), "traffic", limit=10)["items"])
    assert deleted["readings"] == 2
    assert left == ["T100", "T30"]


def test_stale_sensor_alert_raises_and_resolves(app, client, admin_headers):
    body = {"sensor_id": "T-STALE", "vehicle_count": 3, "average_speed": 30.0, "congestion_level": 10.0}
    assert client.post("/api/traffic/data", headers=admin_headers, json=body).status_code == 201
    interval = app.config["SENSOR_EXPECTED_INTERVALS"]["traffic"]
    with app.app_context():
        assert housekeeping.flag_stale_sensors(datetime.now(timezone.utc))["raised"] == 0
        later = datetime.now(timezone.utc) + timedelta(seconds=3 * interval + 1)
        assert housekeeping.flag_stale_sensors(later)["raised"] == 1
        assert housekeeping.flag_stale_sensors(later)["raised"] == 0  # deduplicated
        offline = get_db().alerts.find_one({"type": "sensor_offline"})
    assert offline["severity"] == "medium" and offline["status"] == "active" and offline["sensor_id"] == "T-STALE"
    assert client.post("/api/traffic/data", headers=admin_headers, json=body).status_code == 201
    with app.app_context():
        offline = alerts.get(get_db(), offline["_id"])
    assert offline["status"] == "resolved" and offline["resolved_by"] == "system"
    with app.app_context():  # a sensor silent for days is decommissioned, not offline
        days_later = datetime.now(timezone.utc) + timedelta(days=3)
        assert housekeeping.flag_stale_sensors(days_later)["raised"] == 0


def test_system_update_reports_alerts_and_jobs(app):
    from src.realtime import broadcast

    sent = []
    original = broadcast.emit_system
    broadcast.emit_system = sent.append
    try:
        with app.app_context():
            housekeeping.emit_system_update(datetime.now(timezone.utc))
    finally:
        broadcast.emit_system = original
    stats = sent[0]
    assert {"connected_clients", "readings_per_s", "alerts_active", "jobs", "server_time"} <= set(stats)
    assert set(stats["alerts_active"]) == {"low", "medium", "high", "critical"}


def test_simulated_data_can_be_purged(sim_app):
    from tests.conftest import bearer, login

    client = sim_app.test_client()
    admin_headers = bearer(login(client)["access_token"])
    simulator = simulation.get_simulator()
    simulator.episodes["Downtown"] = 5
    now = datetime.now(timezone.utc)
    for tick in (simulation.tick_traffic, simulation.tick_environment, simulation.tick_energy):
        tick(now)
    from src.models import rollups

    rollups.refresh(get_db())
    real = {"sensor_id": "REAL-1", "vehicle_count": 4, "average_speed": 30.0, "congestion_level": 97.0}
    assert client.post("/api/traffic/data", headers=admin_headers, json=real).status_code == 201
    viewer_denied = client.delete("/api/system/simulated-data")
    assert viewer_denied.status_code == 401
    purged = client.delete("/api/system/simulated-data", headers=admin_headers)
    assert purged.status_code == 200
    counts = purged.get_json()
    assert counts["readings"] == 41 and counts["alerts"] >= 1 and counts["rollups"] >= 41
    db = get_db()
    assert [r["sensor_id"] for r in db.readings.find({})] == ["REAL-1"]
    assert db.alerts.count_documents({"sensor_id": "REAL-1"}) == 1  # real alerts stay
    assert db.alerts.count_documents({"source": "simulator"}) == 0
    snapshot = client.get("/api/dashboard/real-time-data", headers=admin_headers).get_json()["data"]
    assert [r["sensor_id"] for r in snapshot["traffic"]] == ["REAL-1"] and snapshot["environment"] == []


def test_a_decommissioned_sensor_is_closed_and_forgotten(app, client, admin_headers):
    body = {"sensor_id": "T-GONE", "vehicle_count": 3, "average_speed": 30.0, "congestion_level": 10.0}
    assert client.post("/api/traffic/data", headers=admin_headers, json=body).status_code == 201
    with app.app_context():
        housekeeping.flag_stale_sensors(datetime.now(timezone.utc) + timedelta(minutes=10))
        assert get_db().alerts.count_documents({"type": "sensor_offline", "status": "active"}) == 1
        housekeeping.flag_stale_sensors(datetime.now(timezone.utc) + timedelta(hours=30))
        offline = get_db().alerts.find_one({"type": "sensor_offline"})
        assert offline["status"] == "resolved" and offline["note"] == "sensor decommissioned"
        assert get_db().latest.count_documents({"sensor_id": "T-GONE"}) == 0
    sensors = client.get("/api/dashboard/real-time-data", headers=admin_headers).get_json()["data"]["traffic"]
    assert sensors == []


def test_seeding_survives_a_competing_process(sim_app, monkeypatch):
    """Another process inserts a bin between our read of the existing ids and our insert."""
    from src.models import bins

    db = get_db()
    db.bins.delete_many({})
    first = simulation.get_simulator().bins[0]
    real_existing_ids = bins.existing_ids

    def stale_read(database, bin_ids):
        found = real_existing_ids(database, bin_ids)
        bins.create(database, {"bin_id": first["bin_id"], "capacity_liters": first["capacity_liters"],
                               "district": first["district"], "waste_type": first["waste_type"]})
        return found

    monkeypatch.setattr(bins, "existing_ids", stale_read)
    simulation.ensure_registered(sim_app)
    ids = [b["bin_id"] for b in simulation.get_simulator().bins]
    assert sorted(d["bin_id"] for d in db.bins.find({})) == sorted(ids)


def test_concurrent_seeding_leaves_one_document_per_id(sim_app):
    import threading

    from src.services import seed

    db = get_db()
    for name in ("bins", "grids", "units"):
        getattr(db, name).delete_many({})
    errors, start = [], threading.Barrier(4)

    def seed_once():
        start.wait()
        try:
            seed.seed_city(sim_app)
        except Exception as exc:  # noqa: BLE001 - the test reports any failure
            errors.append(exc)

    threads = [threading.Thread(target=seed_once) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for name, key in (("bins", "bin_id"), ("grids", "grid_id"), ("units", "unit_id")):
        ids = [d[key] for d in getattr(db, name).find({})]
        assert ids and len(ids) == len(set(ids)), name


def test_a_bin_collected_by_an_operator_stays_collected(sim_app):
    """A collection the simulator did not make: its next reading continues from the collected level."""
    from tests.conftest import bearer, login

    client = sim_app.test_client()
    headers = bearer(login(client)["access_token"])
    simulator = simulation.get_simulator()
    start = datetime.now(timezone.utc) - timedelta(minutes=1)
    simulation.tick_waste(start)
    bin_id = max(simulator.fill, key=simulator.fill.get)  # the fullest bin, as an operator would pick
    before = get_db().bins.find_one({"bin_id": bin_id})["fill_level_pct"]
    assert before > 20
    created = client.post("/api/waste/collections", headers=headers, json={"bin_ids": [bin_id]})
    assert created.status_code == 201, created.get_json()
    done = client.patch(f"/api/waste/collections/{created.get_json()['id']}", headers=headers,
                        json={"status": "completed"})
    assert done.status_code == 200, done.get_json()
    assert get_db().bins.find_one({"bin_id": bin_id})["fill_level_pct"] == 0.0
    simulation.tick_waste(datetime.now(timezone.utc) + timedelta(seconds=8))
    after = get_db().bins.find_one({"bin_id": bin_id})["fill_level_pct"]
    assert after < 2, f"{bin_id} read {after} after being collected from {before}"
    assert simulator.fill[bin_id] < 2


def test_the_first_emergency_incident_comes_within_a_minute(app_factory):
    """Emergency ticks every 20 s: within 3 ticks of start the simulated city has an incident, for any seed."""
    for seed in (7, 42, 1234):
        app = app_factory(SIMULATION_SEED=seed)
        with app.app_context():
            simulation.ensure_registered(app)
            start = datetime.now(timezone.utc)
            for tick in range(3):  # 0 s, 20 s, 40 s
                simulation.tick_emergency(start + timedelta(seconds=20 * tick))
            assert get_db().emergency_incidents.count_documents({"source": "simulator"}) >= 1, seed


def test_the_early_incident_keeps_a_seed_deterministic(app_factory):
    def run():
        app = app_factory(SIMULATION_SEED=42)
        with app.app_context():
            simulation.ensure_registered(app)
            start = datetime.now(timezone.utc).replace(microsecond=0)
            for tick in range(3):
                simulation.tick_emergency(start + timedelta(seconds=20 * tick))
            return [(d["type"], d["severity"], d["district"])
                    for d in get_db().emergency_incidents.find({}).sort("_id", 1)]

    assert run() == run()


# The grid's nominal frequency and voltage come from the city's region (or an explicit setting)

def grid_readings(app, ticks=40):
    with app.app_context():
        simulation.ensure_registered(app)
        simulator = simulation.get_simulator()
        return [r for i in range(ticks) for r in simulator.energy_readings(at(12) + timedelta(seconds=15 * i))]


def frequency_band(app):
    with app.app_context():
        rule = get_db(app).alert_rules.find_one({"_id": "energy.frequency"})
    return rule["levels"][0]["value"]


@pytest.mark.parametrize("zone,hz,kv", [("America/New_York", 60, 12.47), ("Europe/Berlin", 50, 11.0),
                                         ("America/Argentina/Buenos_Aires", 50, 11.0), ("Asia/Seoul", 60, 12.47)])
def test_the_grid_runs_at_its_regions_nominal_frequency(app_factory, zone, hz, kv):
    app = app_factory(CITY_TIMEZONE=zone, RAW_RETENTION_HOURS=24 * 400)
    readings = grid_readings(app)
    frequencies = sorted(r["frequency_hz"] for r in readings)
    assert frequencies[len(frequencies) // 2] == pytest.approx(hz, abs=0.1)  # excursions aside
    assert sum(r["voltage_kv"] for r in readings) / len(readings) == pytest.approx(kv, rel=0.01)
    assert frequency_band(app) == [hz - 0.5, hz + 0.5]


def test_an_explicit_grid_setting_wins(monkeypatch):
    from src.config import get_config

    monkeypatch.setenv("GRID_NOMINAL_FREQUENCY_HZ", "50")
    monkeypatch.setenv("GRID_NOMINAL_VOLTAGE_KV", "13.8")
    config = get_config("testing")
    assert (config.CITY_TIMEZONE, config.GRID_NOMINAL_FREQUENCY_HZ, config.GRID_NOMINAL_VOLTAGE_KV) == (
        "America/New_York", 50.0, 13.8)
    monkeypatch.setenv("GRID_NOMINAL_FREQUENCY_HZ", "55")
    assert any("GRID_NOMINAL_FREQUENCY_HZ" in p for p in get_config("testing").problems())


def test_the_frequency_rule_follows_the_grid_but_keeps_an_admins_band(app):
    from src.models import alert_rules

    with app.app_context():
        db = get_db(app)
        assert frequency_band(app) == [59.5, 60.5]
        alert_rules.seed_defaults(db, 50.0)  # the database moves to a 50 Hz city: the default band moves
        assert frequency_band(app) == [49.5, 50.5]
        db.alert_rules.update_one({"_id": "energy.frequency"}, {"$set": {"levels.0.value": [49.8, 50.2]}})
        alert_rules.seed_defaults(db, 60.0)  # an edited band is the admin's: kept
        assert frequency_band(app) == [49.8, 50.2]


def test_the_meter_reports_the_energy_since_its_previous_reading(sim_app):
    simulator = simulation.get_simulator()
    first = simulator.energy_readings(at(12))
    later = simulator.energy_readings(at(12) + timedelta(seconds=40))
    for reading in first:  # the first reading covers one configured interval (15 s)
        assert reading["consumption_kwh"] == pytest.approx(reading["load_mw"] * 1000 * 15 / 3600, abs=0.2)
    for reading in later:
        assert reading["consumption_kwh"] == pytest.approx(reading["load_mw"] * 1000 * 40 / 3600, abs=0.2)
