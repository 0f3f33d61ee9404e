"""Reading alerts for REST."""
from src.db import get_db
from src.models import alerts


def page(limit=50, offset=0, sort="-created_at", start=None, end=None, module=None, severity=None, status=None,
         sensor_id=None, district=None, type=None):
    """A page of alerts; status `open` means active or acknowledged."""
    status_filter = list(alerts.OPEN_STATUSES) if status == "open" else status
    return alerts.find_page(get_db(), limit=limit, offset=offset, sort=sort, module=module, severity=severity,
                            status=status_filter, sensor_id=sensor_id, district=district, start=start, end=end,
                            alert_type=type)


def get(alert_id):
    return alerts.get(get_db(), alert_id)
