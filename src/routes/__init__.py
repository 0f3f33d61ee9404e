"""REST blueprints, thin: load with a schema, make one call, dump."""
from src.routes import auth, health

BLUEPRINTS = [health.blp, auth.blp]
