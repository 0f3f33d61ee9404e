"""/api/analytics: patterns, forecasts, KPIs and reports over the rollups."""
from src.routes.blueprint import Blueprint

from src.auth import auth_required
from src.schemas.analytics import PatternArgs, Patterns, PredictArgs, Prediction, RangeArgs, RangeReport, ReportArgs
from src.services import analytics

blp = Blueprint("analytics", __name__, url_prefix="/api/analytics", description="Analytics and reports")


@blp.route("/overview")
@auth_required
@blp.arguments(RangeArgs, location="query", as_kwargs=True)
@blp.response(200, RangeReport)
def overview(**args):
    """Per module activity, key metric statistics and alert counts over a range (default 24 h)."""
    return analytics.overview(**args)


@blp.route("/traffic/patterns")
@auth_required
@blp.arguments(PatternArgs, location="query", as_kwargs=True)
@blp.response(200, Patterns)
def traffic_patterns(**args):
    """Hour-of-day and day-of-week traffic profiles (default: last 28 days)."""
    return analytics.traffic_patterns(**args)


@blp.route("/predictive/traffic")
@auth_required
@blp.arguments(PredictArgs, location="query", as_kwargs=True)
@blp.response(200, Prediction)
def predict_traffic(**args):
    """Forecast the next N hours for a sensor, a district or the city, naming the method used."""
    return analytics.predict_traffic(**args)


@blp.route("/kpi/dashboard")
@auth_required
@blp.arguments(RangeArgs, location="query", as_kwargs=True)
@blp.response(200, RangeReport)
def kpi_dashboard(**args):
    """Headline KPIs per module over a range (default 24 h)."""
    return analytics.kpis(**args)


@blp.route("/reports/comprehensive")
@auth_required
@blp.arguments(ReportArgs, location="query", as_kwargs=True)
@blp.response(200, RangeReport)
def comprehensive_report(**args):
    """All modules over a range (default 7 days); large ranges: submit a report_generation task."""
    return analytics.comprehensive_report(**args)
