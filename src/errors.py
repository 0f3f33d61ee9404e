"""One JSON error shape everywhere: {"error": code, "message": text, "errors"?: {field: [..]}}."""
import logging

from flask import jsonify
from marshmallow import ValidationError
from pymongo.errors import ConnectionFailure, DuplicateKeyError
from werkzeug.exceptions import HTTPException

from src import outages

# Errors that mean MongoDB is unreachable or not answering: 503, not 500. (AutoReconnect,
# NetworkTimeout and ServerSelectionTimeoutError are all ConnectionFailure subclasses.)
UNAVAILABLE_ERRORS = (ConnectionFailure,)

log = logging.getLogger(__name__)

ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


class ApiError(Exception):
    """Raised below the views for a client error; becomes the JSON error shape."""

    status = 400
    error = None

    def __init__(self, message, status=None, error=None, errors=None):
        super().__init__(message)
        self.message = message
        self.status = status or self.status
        self.error = error or self.error or ERROR_CODES.get(self.status, "error")
        self.errors = errors


class RangeTooLarge(ApiError):
    """An aggregate over more history than a request may read."""

    status = 422
    error = "range_too_large"

    def __init__(self, detail):
        super().__init__(f"The range is too large for one request: {detail}. City-wide and district aggregates "
                         "take any range; for raw data over long ranges submit a data_export task.")


def error_body(status, message=None, error=None, errors=None):
    """The error dict for `status`; shared by REST responses and socket acks."""
    body = {"error": error or ERROR_CODES.get(status, "error"), "message": message or ""}
    if errors:
        body["errors"] = errors
    return body


def error_response(status, message=None, error=None, errors=None, headers=None):
    """Build the JSON error response. The only place the shape is made."""
    response = jsonify(error_body(status, message, error, errors))
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _flatten_webargs(messages):
    """webargs nests messages by location ({"json": {...}}); users want the fields."""
    if isinstance(messages, dict) and len(messages) == 1:
        (location, inner), = messages.items()
        if location in ("json", "query", "querystring", "form", "headers", "view_args", "path"):
            return inner
    return messages


def _normalise(errors):
    """Marshmallow gives lists, dicts or strings; `errors` is always an object."""
    if isinstance(errors, dict):
        return errors
    if isinstance(errors, list):
        return {"_schema": errors}
    return {"_schema": [str(errors)]}


def handle_http_exception(exc):
    """Any werkzeug/flask-smorest HTTPException, including abort() from views."""
    data = getattr(exc, "data", None) or {}
    status = exc.code or 500
    errors = data.get("errors")
    if "messages" in data:  # webargs validation failure
        errors = _flatten_webargs(data["messages"])
    message = data.get("message")
    if not message:
        message = {
            413: "Request body is larger than the allowed limit",
            422: "The request data is invalid",
            429: "Too many requests",
        }.get(status) or (exc.description if isinstance(exc.description, str) else exc.name)
    if status == 429:
        message = f"Rate limit exceeded: {exc.description}"
    elif status == 400 and "messages" in data:
        message = "The request body is not valid JSON"
    headers = {}
    response = exc.get_response()
    for name in ("Retry-After", "Allow", "WWW-Authenticate"):
        if name in response.headers:
            headers[name] = response.headers[name]
    if status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return error_response(status, message, data.get("error"), _normalise(errors) if errors else None, headers)


def handle_api_error(exc):
    """An ApiError raised by a service or helper."""
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return error_response(exc.status, exc.message, exc.error, exc.errors, headers)


def handle_validation_error(exc):
    """A marshmallow ValidationError raised below the views."""
    return error_response(422, "The request data is invalid", errors=_normalise(exc.messages))


def handle_duplicate_key(exc):
    """A unique index said no; the race-free way to detect duplicates."""
    key = (getattr(exc, "details", None) or {}).get("keyValue") or {}
    field = next(iter(key), None)
    errors = {field: ["already exists"]} if field else None
    return error_response(409, "A record with this value already exists", "conflict", errors)


def handle_unstorable_text(exc):
    """Text that cannot be stored (a lone surrogate) that got past the JSON loader."""
    return error_response(400, "The request contains text that is not valid Unicode", "bad_request")


def handle_database_unavailable(exc):
    """MongoDB is unreachable; say so without a stack trace (the outage is logged once, not per request)."""
    outages.mongodb.failed(exc)
    return error_response(503, "The database is unreachable; try again shortly", "database_unavailable",
                          headers={"Retry-After": "5"})


def handle_unexpected(exc):
    """Anything else: log the traceback, answer a plain 500."""
    if isinstance(exc, HTTPException):
        return handle_http_exception(exc)
    log.exception("unhandled error")
    return error_response(500, "An unexpected error occurred", "internal_error")


def register_error_handlers(app):
    """Route every error to the single JSON shape (after flask-smorest's own handler)."""
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(ApiError, handle_api_error)
    app.register_error_handler(ValidationError, handle_validation_error)
    app.register_error_handler(DuplicateKeyError, handle_duplicate_key)
    app.register_error_handler(UnicodeEncodeError, handle_unstorable_text)
    for exc_class in UNAVAILABLE_ERRORS:
        app.register_error_handler(exc_class, handle_database_unavailable)
    app.register_error_handler(Exception, handle_unexpected)
