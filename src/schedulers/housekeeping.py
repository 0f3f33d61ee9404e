"""Housekeeping jobs: retention, stale sensors, system updates."""
from src.services import housekeeping


def retention(now):
    """Delete raw readings past RAW_RETENTION_HOURS and other expired records."""
    return housekeeping.apply_retention(now)


def stale_sensors(now):
    """Raise sensor_offline for sensors silent for 3x their interval."""
    return housekeeping.flag_stale_sensors(now)


def system_update(now):
    """Emit server stats to the system room."""
    return housekeeping.emit_system_update(now)


def publish_metrics(now):
    """Share this process's realtime metrics so the leader's system_update covers every process."""
    return housekeeping.publish_process_metrics(now)

