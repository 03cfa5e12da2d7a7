"""Jaeger's envelope `{"data", "total", "limit", "offset", "errors"}` and its errors: every
failure of a Jaeger route (a bad parameter, an unknown trace, ClickHouse failing, anything
unexpected) answers in it, never in the rest of the API's `{"error": ...}` shape."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import structlog
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from tracehouse.query.access import AccessError
from tracehouse.query.store import StoreError

log = structlog.get_logger("tracehouse.query.jaeger")

JAEGER_PATHS = ("/api/services", "/api/operations", "/api/traces")


def is_jaeger_path(path: str) -> bool:
    """A request path the Jaeger routes own (their errors use Jaeger's envelope)."""
    return any(path == p or path.startswith(p + "/") for p in JAEGER_PATHS)


# ------------------------------------------------------------------------------ envelope


class JaegerError(Exception):
    def __init__(self, code: int, msg: str):
        super().__init__(msg)
        self.code = code
        self.msg = msg


def envelope(data: Any, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    total = len(data) if isinstance(data, list) else 0
    return {"data": data, "total": total, "limit": 0, "offset": 0, "errors": errors or None}


def jaeger_error(code: int, msg: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(envelope(None, [{"code": code, "msg": msg}]), status_code=code,
                        headers=dict(headers) if headers else None)


class JaegerRoute(APIRoute):
    """Turns whatever a Jaeger route raises into Jaeger's error envelope (never the app's
    `{"error": ...}` shape, never a stack trace)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def jaeger_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except JaegerError as exc:
                return jaeger_error(exc.code, exc.msg)
            except AccessError as exc:
                return jaeger_error(exc.code, exc.message, exc.headers)
            except StoreError as exc:
                return jaeger_error(503, f"the trace store could not answer: {exc}", {"Retry-After": "5"})
            except RequestValidationError as exc:
                errors = exc.errors()
                first = errors[0] if errors else {}
                loc = [str(p) for p in first.get("loc", ())]
                loc = loc[1:] if loc and loc[0] in ("query", "path", "body", "header") else loc
                message = str(first.get("msg", "invalid request"))
                return jaeger_error(400, f"{loc[0]}: {message}" if loc else message)
            except StarletteHTTPException as exc:
                return jaeger_error(exc.status_code, str(exc.detail), exc.headers)
            except Exception as exc:
                log.error("Jaeger API request failed", path=request.url.path, error=repr(exc))
                return jaeger_error(500, "internal error (see the service log)")

        return jaeger_handler
