"""The operations console at `/`: a static page of plain ES modules (src/static/console), served by
the app itself so it works without internet, and the city geometry its map draws."""
import os

from flask import Blueprint, current_app, jsonify, send_from_directory

from src.extensions import limiter
from src.services import city

blp = Blueprint("console", __name__)

CONSOLE_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "static", "console")

# The page loads only its own origin's files and talks only to its own origin (REST and the socket;
# 'self' covers ws:/wss: to the same host). No inline script or style, so injected markup can't run.
CONSOLE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
               "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


# Both are static content, as cheap as /static (which the rate limit skips): a reload must not spend
# the user's API budget.
@blp.route("/")
@limiter.exempt
def index():
    """The operations console (sign-in, live map, module panels, alert feed)."""
    response = send_from_directory(CONSOLE_DIR, "index.html")
    response.headers["Content-Security-Policy"] = CONSOLE_CSP
    # Revalidated on every load, so a new release's page never pairs with old modules.
    response.headers["Cache-Control"] = "no-cache"
    return response


@blp.route("/console/city.json")
@limiter.exempt
def city_model():
    """Districts (centres) and roads of the city model: the map's base layer, the same for every user."""
    seed = current_app.config["SIMULATION_SEED"]
    graph = city.road_graph(seed).to_dict()
    nodes = {node["id"]: node["location"] for node in graph["nodes"]}
    roads = [{"road_id": edge["road_id"], "from": nodes[edge["from"]], "to": nodes[edge["to"]],
              "arterial": edge["speed_kmh"] >= 60} for edge in graph["edges"]]
    districts = [{"name": name, "center": list(city.district_center(name))} for name in city.DISTRICT_NAMES]
    depot = {"name": city.DEPOT["name"], "location": list(city.DEPOT["location"])}
    response = jsonify({"districts": districts, "roads": roads, "depot": depot})
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
