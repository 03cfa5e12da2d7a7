"""`GET /healthz`, `GET /readyz` and `GET /metrics`: the service's health and its own metrics."""

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response

from tracehouse.extensions.health_check.health import PROMETHEUS_CONTENT_TYPE, HealthSource, readiness_body
from tracehouse.core.auth import Principal
from tracehouse.query.access import OPEN, Access
from tracehouse.query.models import HealthResponse, ReadyResponse


def health_router(health: HealthSource, metrics_access: Access = OPEN) -> APIRouter:
    """Probes are always open; `/metrics` takes `metrics_access` (a read key when `metrics_auth`)."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz", response_model=HealthResponse,
                responses={503: {"model": HealthResponse, "description": "A component failed fatally."}})
    async def healthz() -> JSONResponse:
        """Liveness: 200 unless a component of the service failed fatally."""
        ok = health.healthy()
        return JSONResponse({"status": "ok" if ok else "unhealthy"}, status_code=200 if ok else 503)

    @router.get("/readyz", response_model=ReadyResponse,
                responses={503: {"model": ReadyResponse,
                                 "description": "Not ready; see the component statuses."}})
    async def readyz() -> JSONResponse:
        """Readiness: 200 once every component started and none failed permanently."""
        status, body = readiness_body(health)
        return JSONResponse(body, status_code=status)

    @router.get("/metrics", response_class=Response,
                responses={200: {"content": {PROMETHEUS_CONTENT_TYPE: {}},
                                 "description": "The pipeline's own metrics, Prometheus text format."}})
    async def metrics(_principal: Annotated[Principal, Depends(metrics_access.read)]) -> Response:
        """The pipeline's own metrics (received, refused, dropped, queued, exported)."""
        return Response(health.telemetry.render(), media_type=PROMETHEUS_CONTENT_TYPE)

    return router
