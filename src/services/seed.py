"""Seed the demo city's entities (grids, emergency units, bins) into an empty database."""
import logging

from src.db import get_db

log = logging.getLogger(__name__)


def seed_city(app):
    """Insert the seeded grids, units and bins where their collections are empty."""
    from src.services import emergency, energy, simulation

    with app.app_context():
        db = get_db()
        grids = energy.seed_grids(db)
        units = emergency.seed_units(db)
        simulation.ensure_registered(app)
    log.info("seeded city: %s grids, %s units", grids, units)
