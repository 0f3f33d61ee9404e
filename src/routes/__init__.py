"""REST blueprints, thin: load with a schema, make one call, dump."""
from src.routes import (alerts, analytics, auth, dashboard, emergency, energy, environment, health, system, tasks,
                        traffic, users, waste)
from src.schemas.readings import READING_SCHEMAS

BLUEPRINTS = [health.blp, auth.blp, users.blp, traffic.blp, environment.blp, waste.blp, energy.blp, emergency.blp, alerts.blp,
              dashboard.blp, analytics.blp, tasks.blp, system.blp]


def document_schemas(api):
    """Components referenced by hand-written request bodies (one reading or a list)."""
    for schema in READING_SCHEMAS.values():
        name = schema.__name__.removesuffix("Schema")
        if name not in api.spec.components.schemas:
            api.spec.components.schema(name, schema=schema)
