"""/api/dashboard: what the operations screen shows, from caches and rollups."""
from src.routes.blueprint import Blueprint

from src.auth import auth_required
from src.schemas.analytics import AlertsSummary, Overview, RealTimeData, Weekly
from src.services import dashboard

blp = Blueprint("dashboard", __name__, url_prefix="/api/dashboard", description="Operations dashboard")


@blp.route("/overview")
@auth_required
@blp.response(200, Overview)
def overview():
    """Sensors and readings per module, open alerts by severity, live KPIs."""
    return dashboard.overview()


@blp.route("/real-time-data")
@auth_required
@blp.response(200, RealTimeData)
def real_time_data():
    """Latest reading per sensor of every module, from the cache."""
    return dashboard.real_time_data()


@blp.route("/alerts/summary")
@auth_required
@blp.response(200, AlertsSummary)
def alerts_summary():
    """Open alerts by severity and module, the last 24 h, noisiest sensors, response times."""
    return dashboard.alerts_summary()


@blp.route("/statistics/weekly")
@auth_required
@blp.response(200, Weekly)
def weekly_statistics():
    """Per-day series for the last 7 days."""
    return dashboard.weekly_statistics()
