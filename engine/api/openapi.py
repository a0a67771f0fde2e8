"""The published OpenAPI document, made to tell the truth about errors.

FastAPI documents every operation as answering its success status or a 422 `application/json` validation
error. Ours refuse with RFC 9457 problems (`application/problem+json`, see `problems.py`) and can refuse for
more reasons: no or a bad token (401), a role too low (403), an unknown id (404), a command the contact's or
case's state does not allow (409), a malformed or too large body (400, 413), the store or engine down (503).
This lists, per operation, the statuses it can answer, from what the route is: whether it needs a token, has
path parameters or a body, changes state. Open311 routes answer the GeoReport error list in JSON or XML
instead (`cti/open311.py`), and their documents say so. `tests/engine/test_api_fuzz.py` holds the document to
what the server really answers.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from engine.api.problems import PROBLEM_JSON

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "description": "/problems/<code>: one per kind of problem"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string", "description": "what exactly went wrong"},
        "instance": {"type": "string"},
        "errors": {"type": "array", "description": "each bad field, for validation problems",
                   "items": {"type": "object", "properties": {"field": {"type": "string"},
                                                              "message": {"type": "string"},
                                                              "type": {"type": "string"}}}},
    },
}

OPEN311_ERRORS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "description": "GeoReport v2 errors (XML: <errors><error><code/><description/></error></errors>)",
    "items": {"type": "object", "required": ["code", "description"],
              "properties": {"code": {"type": "integer"}, "description": {"type": "string"}}},
}

WHY: dict[int, str] = {
    400: "Malformed request body",
    401: "No token, or a bad or expired one",
    403: "Not allowed for this user",
    404: "Not found",
    409: "Not possible in the current state",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Invalid request",
    503: "Store or engine unavailable; retry after the Retry-After seconds",
}

_OPEN311_TYPES = ("application/json", "text/xml")


def install(app: FastAPI) -> None:
    """Replace `app.openapi` with one that documents the real error statuses (built once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            describe_errors(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def describe_errors(schema: dict[str, Any]) -> None:
    """Add the error responses to every operation of `schema`, judged from the operation as documented."""
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"], schemas["Open311Errors"] = PROBLEM_SCHEMA, OPEN311_ERRORS_SCHEMA
    for path, operations in schema.get("paths", {}).items():
        for method, op in operations.items():
            if path.startswith("/open311/"):
                _open311(op, method)
            elif path.startswith("/api/"):
                _problems(op, method)


def _statuses(op: dict[str, Any], method: str) -> set[int]:
    has_body = "requestBody" in op
    # and any the route declares itself (`responses=` on its decorator), e.g. 401 on the login
    statuses = {422, 503} | {int(code) for code in op.get("responses", {}) if code.isdigit() and int(code) >= 400}
    if has_body:
        statuses |= {400, 413}
    if op.get("security"):
        statuses |= {401, 403}
    if has_body or any(p.get("in") == "path" for p in op.get("parameters", ())):
        statuses.add(404)  # an unknown id in the path, or one the body names (a queue, an agent, a resident)
    if method != "get":
        statuses.add(409)
    return statuses


def _problems(op: dict[str, Any], method: str) -> None:
    responses = op.setdefault("responses", {})
    for status in sorted(_statuses(op, method)):
        entry = responses.setdefault(str(status), {"description": WHY[status]})
        if status == 422:
            entry["description"] = WHY[422]
        entry.update(_problem_content())


def _open311(op: dict[str, Any], method: str) -> None:
    responses = op.setdefault("responses", {})
    responses.pop("422", None)  # validation failures are 400s in the GeoReport error list
    for entry in responses.values():  # the path's .json or .xml picks the format
        entry["content"] = {t: {"schema": {}} for t in _OPEN311_TYPES}
    errors = {"content": {t: {"schema": {"$ref": "#/components/schemas/Open311Errors"}} for t in _OPEN311_TYPES}}
    for status in (400, 403, 404, 503):
        responses[str(status)] = {"description": WHY[status], **errors}
    if method == "post":  # the body limit refuses before the route: an RFC 9457 problem like the API's
        responses["413"] = {"description": WHY[413], **_problem_content()}


def _problem_content() -> dict[str, Any]:
    return {"content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
