"""The Blueprint every route module uses: flask-smorest's, parsing JSON like the rest of the app."""
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
