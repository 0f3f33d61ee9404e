"""/api/environment: air quality and noise readings, summaries and trends."""
from src.routes.blueprint import Blueprint

from src.auth import auth_required
from src.routes.reading_views import add_reading_routes
from src.schemas.alerts import AlertPageSchema, ModuleAlertArgs
from src.schemas.environment import AirQualitySummary, SummaryArgs, TrendArgs, TrendSchema
from src.services import alert_queries, environment

blp = Blueprint("environment", __name__, url_prefix="/api/environment", description="Environmental sensors")
add_reading_routes(blp, "environment")


@blp.route("/air-quality/summary")
@auth_required
@blp.arguments(SummaryArgs, location="query", as_kwargs=True)
@blp.response(200, AirQualitySummary)
def air_quality_summary(**args):
    """Per district: current AQI, category, worst sensor and dominant pollutant."""
    return environment.air_quality_summary(**args)


@blp.route("/pollution/trends")
@auth_required
@blp.arguments(TrendArgs, location="query", as_kwargs=True)
@blp.response(200, TrendSchema)
def pollution_trends(**args):
    """Hourly or daily pollutant averages over a range, from rollups."""
    return environment.pollution_trends(**args)


@blp.route("/alerts")
@auth_required
@blp.arguments(ModuleAlertArgs, location="query", as_kwargs=True)
@blp.response(200, AlertPageSchema)
def environment_alerts(**args):
    """Environment alerts (the alert list filtered to this module)."""
    return alert_queries.page(module="environment", **args)
