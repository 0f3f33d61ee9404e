"""The task types: each a data schema and a handler that reuses the domain services.

A handler takes (data, ctx) and returns a JSON-ready result. `ctx.progress(pct, message)`
records progress, renews the lease and raises TaskCancelled when the owner cancelled;
`ctx.yield_fn` is passed to CPU-heavy domain code so the event loop keeps serving.
"""
import csv
import io
import json
from datetime import datetime

import gridfs
from bson import ObjectId

from src.realtime.wire import to_wire
from src.models import readings
from src.schemas import tasks as schemas
from src.schemas.reading_queries import reading_out_schema
from src.services import analytics, emergency, traffic, waste

EXPORT_BATCH = 2000
MAX_EXPORT_ROWS = 500000
EXPORT_FIELDS_HEAD = ("id", "module", "sensor_id", "timestamp", "district", "source")


class TaskCancelled(Exception):
    """The owner cancelled the task; the worker stops at this progress point."""


class TaskType:
    def __init__(self, name, schema, handler, description):
        self.name, self.schema, self.handler, self.description = name, schema, handler, description


def waste_route_optimization(data, ctx):
    ctx.progress(10, "selecting bins")
    route = waste.optimise_route(district=data.get("district"), fill_threshold=data["fill_threshold"],
                                 yield_fn=ctx.yield_fn)
    result = {"route": to_wire(route)}
    if data.get("create_collection") and route.get("stops"):
        ctx.progress(80, "scheduling the collection")
        collection = waste.create_collection({"district": data.get("district"),
                                              "fill_threshold": data["fill_threshold"]},
                                             user=ctx.owner, yield_fn=ctx.yield_fn)
        result["collection_id"] = str(collection["_id"])
    return result


def traffic_signal_retiming(data, ctx):
    ctx.progress(10, "reading current flows")
    timings = traffic.signal_timings(district=data.get("district"), yield_fn=ctx.yield_fn)
    return to_wire(timings)


def emergency_coverage_analysis(data, ctx):
    ctx.progress(10, "locating available units")
    return to_wire(emergency.coverage_analysis(yield_fn=ctx.yield_fn))


def report_generation(data, ctx):
    report = analytics.comprehensive_report(data["start"], data["end"], data["modules"],
                                            progress=lambda pct, message: ctx.progress(min(pct, 99), message))
    return to_wire(report)


def data_export(data, ctx):
    """Stream readings of a range into a CSV or JSON file in GridFS."""
    db = ctx.db
    module, fmt = data["module"], data["format"]
    total = readings.find_range(db, module, sensor_id=data.get("sensor_id"), start=data["start"], end=data["end"],
                                limit=1)["total"]
    if total > MAX_EXPORT_ROWS:
        raise ValueError(f"{total} readings exceed the export limit of {MAX_EXPORT_ROWS}; narrow the range")
    schema = reading_out_schema(module)()
    columns = list(EXPORT_FIELDS_HEAD) + sorted(set(schema.fields) - set(EXPORT_FIELDS_HEAD) - {"location"})
    buffer = io.StringIO()
    writer = None
    if fmt == "csv":
        writer = csv.DictWriter(buffer, fieldnames=columns + ["lng", "lat"], extrasaction="ignore")
        writer.writeheader()
    else:
        buffer.write("[")
    rows = 0
    for doc in readings.iter_range(db, module, data["start"], data["end"], sensor_id=data.get("sensor_id"),
                                   batch=EXPORT_BATCH):
        row = schema.dump(doc)
        if writer:
            coords = (row.get("location") or {}).get("coordinates") or [None, None]
            writer.writerow(dict(row, lng=coords[0], lat=coords[1]))
        else:
            buffer.write(("," if rows else "") + json.dumps(row))
        rows += 1
        if rows % EXPORT_BATCH == 0:
            ctx.progress(min(95, int(rows / max(total, 1) * 95)), f"{rows} of {total} readings")
    if not writer:
        buffer.write("]")
    content = buffer.getvalue().encode("utf-8")
    stamp = datetime.utcnow().strftime("%Y%m%dT%H%M%SZ")
    filename = f"{module}-readings-{stamp}.{fmt}"
    content_type = "text/csv" if fmt == "csv" else "application/json"
    file_id = gridfs.GridFS(db, collection="exports").put(content, filename=filename, content_type=content_type,
                                                          task_id=str(ctx.task_id))
    return {"file_id": str(file_id), "filename": filename, "content_type": content_type, "rows": rows,
            "size_bytes": len(content), "download": f"/api/tasks/{ctx.task_id}/result"}


def read_export(db, result):
    """The exported file's bytes and metadata."""
    stored = gridfs.GridFS(db, collection="exports").get(ObjectId(result["file_id"]))
    return stored.read(), {"filename": stored.filename, "content_type": result["content_type"]}


REGISTRY = {t.name: t for t in (
    TaskType("waste_route_optimization", schemas.WasteRouteData, waste_route_optimization,
             "collection route over bins above a fill threshold (nearest neighbour + 2-opt)"),
    TaskType("traffic_signal_retiming", schemas.SignalRetimingData, traffic_signal_retiming,
             "Webster timings for every intersection from current flows"),
    TaskType("emergency_coverage_analysis", schemas.CoverageData, emergency_coverage_analysis,
             "per district, the nearest available unit of each kind and its ETA"),
    TaskType("report_generation", schemas.ReportData, report_generation,
             "the comprehensive report over a range"),
    TaskType("data_export", schemas.ExportData, data_export, "readings of a range as CSV or JSON (GridFS)"),
)}
