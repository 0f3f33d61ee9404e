"""The rollup job."""
from src.db import get_db
from src.models import rollups


def rollup_readings(now):
    """Aggregate raw readings received since the last run into readings_hourly."""
    result = rollups.refresh(get_db(), now=now)
    return {"buckets": result["buckets"], "readings": result["readings"], "complete": result["complete"]}
