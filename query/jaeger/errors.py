"""Jaeger's envelopes and their errors: every failure of a Jaeger route (a bad parameter, an
unknown trace, ClickHouse failing, anything unexpected) answers in its API's shape, never in
the rest of the API's `{"error": ...}` shape. The v2-compatible routes (`/api/services`,
`/api/traces`, `/api/dependencies`...) answer `{"data", "total", "limit", "offset",
"errors"}`; the API v3 routes (`/api/v3/...`) answer Jaeger's HTTP gateway error,
`{"error": {"httpCode", "message"}}` (api_v3.GRPCGatewayError)."""

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

JAEGER_PATHS = ("/api/services", "/api/operations", "/api/traces", "/api/dependencies")
V3_PREFIX = "/api/v3"


def is_v3_path(path: str) -> bool:
    """A request path of Jaeger's API v3 (its errors use the gateway's error shape)."""
    return path == V3_PREFIX or path.startswith(V3_PREFIX + "/")


def is_jaeger_path(path: str) -> bool:
    """A request path the Jaeger routes own (their errors use one of Jaeger's shapes)."""
    return is_v3_path(path) or any(path == p or path.startswith(p + "/") for p in JAEGER_PATHS)


def jaeger_error_for(path: str, code: int, msg: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The error in the shape of the Jaeger API `path` belongs to."""
    return (v3_error if is_v3_path(path) else jaeger_error)(code, msg, headers)


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


def v3_error(code: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """Jaeger's API v3 HTTP gateway error (api_v3.GRPCGatewayError, http_gateway.go)."""
    return JSONResponse({"error": {"httpCode": code, "message": message}}, status_code=code,
                        headers=dict(headers) if headers else None)


ErrorAnswer = Callable[[int, str, Mapping[str, str] | None], JSONResponse]


def _validation_message(exc: RequestValidationError, v3: bool) -> str:
    errors = exc.errors()
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ())]
    loc = loc[1:] if loc and loc[0] in ("query", "path", "body", "header") else loc
    message = str(first.get("msg", "invalid request"))
    if not loc:
        return message
    # v3: the gateway's wording for a bad parameter ("malformed parameter query.startTimeMin: ...")
    return f"malformed parameter {loc[0]}: {message}" if v3 else f"{loc[0]}: {message}"


def _answer_errors(handler: Callable[[Request], Coroutine[Any, Any, Response]], answer: ErrorAnswer,
                   v3: bool) -> Callable[[Request], Coroutine[Any, Any, Response]]:
    async def jaeger_handler(request: Request) -> Response:
        try:
            return await handler(request)
        except JaegerError as exc:
            return answer(exc.code, exc.msg, None)
        except AccessError as exc:
            return answer(exc.code, exc.message, exc.headers)
        except StoreError as exc:
            return answer(503, f"the trace store could not answer: {exc}", {"Retry-After": "5"})
        except RequestValidationError as exc:
            return answer(400, _validation_message(exc, v3), None)
        except StarletteHTTPException as exc:
            return answer(exc.status_code, str(exc.detail), exc.headers)
        except Exception as exc:
            log.error("Jaeger API request failed", path=request.url.path, error=repr(exc))
            return answer(500, "internal error (see the service log)", None)

    return jaeger_handler


class JaegerRoute(APIRoute):
    """Turns whatever a Jaeger v2-compatible route raises into Jaeger's error envelope (never
    the app's `{"error": ...}` shape, never a stack trace)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return _answer_errors(super().get_route_handler(), jaeger_error, v3=False)


class JaegerV3Route(APIRoute):
    """The same for the API v3 routes, in the gateway's `{"error": {"httpCode", "message"}}`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return _answer_errors(super().get_route_handler(), v3_error, v3=True)
