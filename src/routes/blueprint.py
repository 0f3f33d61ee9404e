"""The Blueprint every route module uses: flask-smorest's, parsing JSON like the rest of the app."""
import difflib
import re
from copy import deepcopy

import flask_smorest
from flask import current_app, request
from flask_smorest import abort
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

UNKNOWN_FIELD = "Unknown field."

# Names users reach for that an endpoint spells differently: a hint in the 422, never a silent alias.
# (Aliases that an endpoint does accept are declared in its query schema.)
QUERY_SYNONYMS = {
    "bin_id": "sensor_id", "grid_id": "sensor_id", "intersection_id": "sensor_id", "station_id": "sensor_id",
    "id": "sensor_id",
    "page_size": "limit", "per_page": "limit", "size": "limit", "count": "limit", "max": "limit",
    "page": "offset", "skip": "offset", "start": "from", "since": "from", "start_time": "from",
    "from_date": "from", "end": "to", "until": "to", "end_time": "to", "to_date": "to",
    "order": "sort", "order_by": "sort", "sort_by": "sort", "ordering": "sort",
    "taskType": "task_type", "type": "task_type",
}


# Probes are polled by load balancers and monitors, some of which add cache-busting parameters:
# a probe must not fail over one. Everything else refuses what it does not read.
LENIENT_BLUEPRINTS = frozenset({"health"})


def suggest(name, accepted):
    """The accepted parameter a user most likely meant by `name`, or None."""
    if not accepted:
        return None
    known = QUERY_SYNONYMS.get(name)
    if known in accepted:
        return known
    lowered = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).replace("-", "_").lower()
    if lowered in accepted:
        return lowered
    close = difflib.get_close_matches(lowered, sorted(accepted), n=1, cutoff=0.75)
    return close[0] if close else None


def unknown_query_error(names, accepted):
    """abort(422) naming every unknown query parameter, with a hint where one is obvious."""
    errors = {}
    for name in names:
        hint = suggest(name, accepted)
        errors[name] = [f"{UNKNOWN_FIELD} Did you mean {hint}?" if hint else UNKNOWN_FIELD]
    listed = ", ".join(sorted(names))
    if accepted:
        message = f"Unknown query parameter(s): {listed}. Accepted: {', '.join(sorted(accepted))}."
    else:
        message = f"Unknown query parameter(s): {listed}. This endpoint takes no query parameters."
    abort(422, message=message, errors=errors)


def query_names(schema):
    """The query parameter names a schema accepts (data keys, load-side fields)."""
    return {field.data_key or name for name, field in schema.fields.items() if not field.dump_only}


class AppJSONParser(FlaskParser):
    """webargs parses bodies with the stdlib; use the app's JSON loader so the same input rules
    (no lone surrogates, no runaway nesting) hold on every endpoint.

    Query strings are held to the same rule as bodies: webargs drops unknown query parameters by
    default (`EXCLUDE`), which turns a misspelt filter into an unfiltered answer. Here the schema's own
    `unknown` (marshmallow's default, RAISE) applies, and the 422 names the parameter."""

    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "query": None, "querystring": None}

    def _on_validation_error(self, error, req, schema, location, *, error_status_code, error_headers):
        messages = error.messages
        if location in ("query", "querystring") and isinstance(messages, dict):
            unknown = [name for name, value in messages.items() if value == [UNKNOWN_FIELD]]
            if unknown and len(unknown) == len(messages):
                unknown_query_error(unknown, query_names(schema))
            accepted = query_names(schema)
            for name in unknown:
                hint = suggest(name, accepted)
                if hint:
                    messages[name] = [f"{UNKNOWN_FIELD} Did you mean {hint}?"]
        super()._on_validation_error(error, req, schema, location, error_status_code=error_status_code,
                                     error_headers=error_headers)

    def _raw_load_json(self, req):
        if not is_json_request(req):
            return core.missing
        data = req.get_data(cache=True)
        if not data:
            return core.missing
        try:
            return req.json_module.loads(data)
        except ValueError as exc:
            # webargs reads an empty `doc` as "no body"; this one had a body.
            raise core.json.JSONDecodeError(str(exc), data.decode("utf-8", "replace") or " ", 0) from exc


def declared_query_args(view_func, method):
    """True when the view (or the MethodView method serving `method`) parses query arguments."""
    view_class = getattr(view_func, "view_class", None)
    if view_class is not None:
        view_func = getattr(view_class, method.lower(), None)
        if view_func is None and method == "HEAD":
            view_func = getattr(view_class, "get", None)
    params = (getattr(view_func, "_apidoc", None) or {}).get("arguments", {}).get("parameters", [])
    return any(isinstance(p, dict) and p.get("in") in ("query", "querystring") for p in params)


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = AppJSONParser()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.before_request(self._refuse_unexpected_query)

    @staticmethod
    def _refuse_unexpected_query():
        """An endpoint with no query schema takes no query parameters: `?foo=bar` is a 422, as on the
        others. (Only this app's REST views: the docs UI, the spec and /socket.io are not ours.)"""
        if (not request.args or request.method == "OPTIONS" or request.url_rule is None
                or request.blueprint in LENIENT_BLUEPRINTS):
            return None
        view = current_app.view_functions.get(request.endpoint)
        if view is None or declared_query_args(view, request.method):
            return None
        unknown_query_error(list(dict.fromkeys(request.args.keys())), set())

    def register_views_in_doc(self, api, app, spec, *, name, parameters):
        """Give every operation a readable, unique `operationId` (what generated clients name their
        methods): `<blueprint>_<view function>` (`auth_login`), or `<blueprint>_<method>_<view class>`
        for a MethodView (`alerts_post_rules`). An explicit `@blp.doc(operationId=...)` wins."""
        docs = self._docs
        self._docs = deepcopy(docs)
        try:
            for endpoint, endpoint_doc in self._docs.items():
                methods = [m for m in endpoint_doc if m != "parameters"]
                for method in methods:
                    manual = endpoint_doc[method].setdefault("manual_doc", {})
                    manual.setdefault("operationId", operation_id(name, endpoint, method, len(methods)))
            super().register_views_in_doc(api, app, spec, name=name, parameters=parameters)
        finally:
            self._docs = docs


def operation_id(blueprint, endpoint, method, n_methods):
    """`users_list_users` for a function view; `alerts_get_rules` for a MethodView class `Rules`."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", endpoint).replace("-", "_").lower()
    if n_methods == 1 and endpoint == endpoint.lower():
        return f"{blueprint}_{snake}"
    return f"{blueprint}_{method.lower()}_{snake}"
