"""APScheduler jobs: simulators, rollups, housekeeping."""
