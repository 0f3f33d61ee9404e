"""Simulator jobs: one per module, feeding the same ingest pipeline as REST."""
from src.services import simulation


def prepare(app):
    """Register the simulated city's entities before the first tick."""
    simulation.ensure_registered(app)


def simulate_traffic(now):
    """Traffic readings with rush hours; occasional incidents."""
    return simulation.tick_traffic(now)


def simulate_environment(now):
    """Air quality that follows traffic and wind; occasional pollution episodes."""
    return simulation.tick_environment(now)


def simulate_waste(now):
    """Bins fill by district and type; full districts get collected."""
    return simulation.tick_waste(now)


def simulate_energy(now):
    """Demand curve, solar by sun elevation, persistent wind, frequency wobble."""
    return simulation.tick_energy(now)


def simulate_emergency(now):
    """Occasional incidents; units move to them and return."""
    return simulation.tick_emergency(now)
