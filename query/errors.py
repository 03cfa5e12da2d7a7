"""Errors of the query API: every one is JSON, `{"error": {"code", "message", "parameter"}}`.

A bad parameter is a 400 naming it (FastAPI's default 422 is replaced, in the answers and in
the OpenAPI document), an unknown trace or prompt a 404, a ClickHouse failure a 503 with a
one-line reason and `Retry-After` (never a stack trace). The Jaeger-compatible routes answer
in Jaeger's shapes instead (query/jaeger/errors.py); the 404/405 handler here asks
`is_jaeger_path` first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tracehouse.query.access import AccessError
from tracehouse.query.jaeger.errors import is_jaeger_path, jaeger_error_for
from tracehouse.query.models import ErrorResponse
from tracehouse.query.store import StoreError

log = structlog.get_logger("tracehouse.query.app")  # the app's logger: these handlers answer for it


class ApiError(Exception):
    def __init__(self, code: int, message: str, parameter: str | None = None, *,
                 headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.parameter = parameter
        self.headers = headers


def error_response(code: int, message: str, parameter: str | None = None,
                   headers: Mapping[str, str] | None = None) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message}
    if parameter is not None:
        error["parameter"] = parameter
    return JSONResponse({"error": error}, status_code=code, headers=dict(headers) if headers else None)


# The error answers every `/api/v1` route documents (plus its own 404 where it has one).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "A parameter is invalid; `error.parameter` names it."},
    503: {"model": ErrorResponse, "description": "ClickHouse could not answer."},
}


def install_error_handlers(app: FastAPI) -> None:
    """Exception handlers turning whatever a route raises into the `{"error": ...}` envelope."""

    @app.exception_handler(AccessError)
    async def _access_error(_: Request, exc: AccessError) -> JSONResponse:
        return error_response(exc.code, exc.message, headers=exc.headers)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.code, exc.message, exc.parameter, headers=exc.headers)

    @app.exception_handler(StoreError)
    async def _store_error(_: Request, exc: StoreError) -> JSONResponse:
        return error_response(503, f"the trace store could not answer: {exc}", headers={"Retry-After": "5"})

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        loc = [str(p) for p in first.get("loc", ())]
        loc = loc[1:] if loc and loc[0] in ("query", "path", "body", "header") else loc
        parameter = loc[0] if loc else None
        message = str(first.get("msg", "invalid request"))
        return error_response(400, f"{parameter}: {message}" if parameter else message, parameter)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("query API request failed", error=repr(exc))
        return error_response(500, "internal error (see the service log)")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if is_jaeger_path(request.url.path):  # e.g. a 404/405 under /api/traces: Jaeger's shape
            return jaeger_error_for(request.url.path, exc.status_code, str(exc.detail), exc.headers)
        return error_response(exc.status_code, str(exc.detail), headers=exc.headers)


def document_400_not_422(app: FastAPI) -> None:
    """The OpenAPI document without FastAPI's 422 (a bad parameter is a 400 here, documented
    per route) and without the validation-error schemas only the 422 used."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
