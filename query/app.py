"""The query HTTP API (FastAPI): trace search, trace detail, scores, GenAI usage and score
metrics, the prompt registry, MLflow experiments and runs, health and metrics, plus Jaeger's
query API.

`create_app` only assembles: the error handlers (query/errors.py), one router per resource
(query/routes/), the Jaeger-compatible router (query/jaeger/) and the OpenAPI document
without FastAPI's 422. Parameter parsing is in query/params.py, rows -> models in
query/rows.py, the SQL in query/store.py and query/sql/.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI

from tracehouse.extensions.health_check.health import HealthSource
from tracehouse.query.access import OPEN, Access
from tracehouse.query.budget import ReadBudget, ReadBudgetMiddleware
from tracehouse.query.config import QueryApiConfig
from tracehouse.query.errors import document_400_not_422, install_error_handlers
from tracehouse.query.jaeger.router import jaeger_router
from tracehouse.query.jaeger.v3 import jaeger_v3_router
from tracehouse.query.routes.experiments import experiments_router
from tracehouse.query.routes.genai_metrics import genai_metrics_router
from tracehouse.query.routes.health import health_router
from tracehouse.query.routes.prompts import prompts_router
from tracehouse.query.routes.scores import scores_router
from tracehouse.query.routes.sessions import sessions_router
from tracehouse.query.routes.traces import traces_router
from tracehouse.query.routes.ui import ui_router
from tracehouse.query.store import TraceStore
from tracehouse.query.strict import reject_unknown_parameters


def create_app(store: TraceStore, health: HealthSource, *, settings: QueryApiConfig | None = None,
               access: Access = OPEN) -> FastAPI:
    """`access` decides who reads what (query/access.py); OPEN = no keys, the default tenant."""
    cfg = settings or QueryApiConfig()
    app = FastAPI(
        title="tracehouse query API",
        version="1",
        description="Search GenAI traces and read them span by span; GenAI usage metrics and the "
                    "prompt registry from the rollups; the experiments and runs MLflow clients logged. "
                    "Every error is "
                    "`{\"error\": {\"code\", \"message\", \"parameter\"}}`. A span sent twice "
                    "(same trace id and span id: a client retry) is shown and counted once.",
    )
    install_error_handlers(app)
    app.add_middleware(ReadBudgetMiddleware, budget=ReadBudget(
        cfg.max_concurrent_reads, cfg.max_concurrent_reads_per_client, cfg.read_queue_timeout,
        cfg.max_concurrent_trace_reads, cfg.max_concurrent_exports))
    # The order of the routes is the order of the paths in /openapi.json. Every API route
    # refuses query parameters it does not take (query/strict.py).
    strict = [Depends(reject_unknown_parameters)]
    for router in (
        health_router(health, access if cfg.metrics_auth else OPEN),
        traces_router(store, cfg, access),
        scores_router(store, access),
        genai_metrics_router(store, cfg, access),
        prompts_router(store, access),
        sessions_router(store, cfg, access),
        experiments_router(store, access),
        # Jaeger's query API (/api/services, /api/operations, /api/traces, /api/dependencies) in
        # Jaeger's envelope, with Jaeger's defaults (not `default_lookback`); its API v3 (/api/v3).
        jaeger_router(store, access=access),
        jaeger_v3_router(store, access=access),
    ):
        app.include_router(router, dependencies=strict)
    # The trace explorer (query/ui/): a page over the routes above, not part of the API; its
    # own URL holds the UI's state, so it takes any parameter.
    app.include_router(ui_router())
    document_400_not_422(app)
    return app
