"""RFC 9457 problem details for every error the API returns.

`type` is a stable URI per kind of problem (`/problems/<code>`), `title` the kind in words, `detail` what
exactly went wrong, `status` the HTTP status; validation problems add `errors` naming each bad field.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from acd import errors as acd_errors
from engine.auth import AuthError, Forbidden
from engine.core import EngineUnavailable

PROBLEM_JSON = "application/problem+json"


class ApiProblem(Exception):
    def __init__(self, status: int, code: str, title: str, detail: str = "", **extra: Any):
        self.status, self.code, self.title, self.detail, self.extra = status, code, title, detail, extra
        super().__init__(detail or title)


def problem(status: int, code: str, title: str, detail: str = "", instance: str | None = None,
            **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": f"/problems/{code}", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extra)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


# typed core errors -> HTTP status
_ACD_STATUS: dict[type[acd_errors.AcdError], int] = {
    acd_errors.UnknownAgent: 404,
    acd_errors.UnknownQueue: 404,
    acd_errors.UnknownContact: 404,
    acd_errors.DuplicateContact: 409,
    acd_errors.InvalidTransition: 409,
    acd_errors.WrapUpCodeRequired: 422,
    acd_errors.InvalidWrapUpCode: 422,
    acd_errors.InvalidReason: 422,
    acd_errors.InvalidContact: 422,
}


def _acd_status(exc: acd_errors.AcdError) -> int:
    for cls in type(exc).__mro__:
        if cls in _ACD_STATUS:
            return _ACD_STATUS[cls]
    return 409


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiProblem)
    async def _api_problem(request: Request, exc: ApiProblem) -> JSONResponse:
        return problem(exc.status, exc.code, exc.title, exc.detail, request.url.path, **exc.extra)

    @app.exception_handler(acd_errors.AcdError)
    async def _acd(request: Request, exc: acd_errors.AcdError) -> JSONResponse:
        title = type(exc).__name__.replace("_", " ")
        return problem(_acd_status(exc), exc.code, title, str(exc), request.url.path)

    @app.exception_handler(acd_errors.ConfigError)
    async def _config(request: Request, exc: acd_errors.ConfigError) -> JSONResponse:
        return problem(422, "invalid-config", "Configuration refused", str(exc), request.url.path,
                       errors=[{"field": i.path, "message": i.message} for i in exc.issues])

    @app.exception_handler(AuthError)
    async def _auth(request: Request, exc: AuthError) -> JSONResponse:
        return problem(401, "unauthorized", "Authentication required", str(exc), request.url.path)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> JSONResponse:
        return problem(403, "forbidden", "Not allowed", str(exc), request.url.path)

    @app.exception_handler(EngineUnavailable)
    async def _unavailable(request: Request, exc: EngineUnavailable) -> JSONResponse:
        resp = problem(503, "unavailable", "Service unavailable", str(exc), request.url.path)
        resp.headers["Retry-After"] = "2"
        return resp

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errs = []
        malformed = False
        for e in exc.errors():
            if e.get("type") == "json_invalid":
                malformed = True
            loc = [str(p) for p in e.get("loc", ())]
            errs.append({"field": ".".join(loc), "message": e.get("msg", ""), "type": e.get("type", "")})
        if malformed:
            return problem(400, "malformed-json", "Malformed JSON body",
                           "the request body is not valid JSON", request.url.path, errors=errs)
        return problem(422, "validation-error", "Invalid request",
                       "; ".join(f"{x['field']}: {x['message']}" for x in errs), request.url.path, errors=errs)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # 400 comes from the framework's body parser (e.g. JSON nested past the parser's depth)
        codes = {400: "malformed-json", 404: "not-found", 405: "method-not-allowed", 413: "too-large",
                 415: "unsupported-media-type"}
        resp = problem(exc.status_code, codes.get(exc.status_code, "http-error"), str(exc.detail),
                       f"{request.method} {request.url.path}: {exc.detail}", request.url.path)
        resp.headers.update(exc.headers or {})
        if exc.status_code == 405:  # the router names only the first route on the path: list them all
            resp.headers["Allow"] = ", ".join(_allowed(request.app, request.url.path)) or resp.headers.get("Allow", "")
        return resp


def _allowed(app: FastAPI, path: str) -> list[str]:
    for template, ops in app.openapi()["paths"].items():
        if re.fullmatch(re.sub(r"\{[^/}]+\}", "[^/]+", template), path):
            return sorted(m.upper() for m in ops)
    return []
