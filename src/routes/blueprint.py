"""The Blueprint every route module uses: flask-smorest's, parsing JSON like the rest of the app."""
import re
from copy import deepcopy

import flask_smorest
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request


class AppJSONParser(FlaskParser):
    """webargs parses bodies with the stdlib; use the app's JSON loader so the same input rules
    (no lone surrogates, no runaway nesting) hold on every endpoint."""

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


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = AppJSONParser()

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
