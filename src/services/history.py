"""Reading history for REST: raw pages, or aggregates at hour/day resolution."""
from src.db import get_db
from src.models import readings, rollups
from src.services import city
from src.schemas.reading_queries import AggregateSchema, reading_out_schema

# A request brings the rollup up to date before reading it, but only this far; the
# scheduled rollup job does the bulk of the work.
REQUEST_ROLLUP_BUDGET = 5000


def readings_page(module, limit=50, offset=0, sort="-timestamp", start=None, end=None, sensor_id=None,
                  district=None, source=None, resolution="raw"):
    """A page of raw readings, or of hourly/daily aggregates: {items, total, limit, offset, resolution}."""
    db = get_db()
    if resolution == "raw":
        page = readings.find_range(db, module, sensor_id=sensor_id, district=district, start=start, end=end,
                                   limit=limit, offset=offset, sort=sort, source=source)
        items = reading_out_schema(module)(many=True).dump(page["items"])
    else:
        rollups.refresh_if_stale(db)
        page = rollups.series_page(db, module, resolution, sensor_id=sensor_id, district=district, start=start,
                                   end=end, limit=limit, offset=offset, descending=sort.startswith("-"),
                                   tz=city.timezone())  # `day` is a calendar day in the city
        items = AggregateSchema(many=True).dump(page["items"])
    return {"items": items, "total": page["total"], "limit": limit, "offset": offset, "resolution": resolution,
            "timezone": city.timezone().key}
