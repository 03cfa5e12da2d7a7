"""`GET /api/v1/experiments`, `GET /api/v1/experiments/{experiment_id}` and
`GET /api/v1/runs/{run_id}`: what MLflow clients logged to tracehouse's MLflow receiver
(experiments, runs with their params, tags and metric history, nesting, and the traces each
run produced), read from the receiver's tables (sinks/clickhouse/migrations/008_mlflow.sql)."""

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Path

from tracehouse.core.auth import Principal
from tracehouse.query.access import OPEN, Access
from tracehouse.query.errors import ERROR_RESPONSES, ApiError
from tracehouse.query.models import (
    ErrorResponse,
    ExperimentDetailResponse,
    ExperimentListResponse,
    RunDetail,
    RunDetailResponse,
)
from tracehouse.query.rows import experiment_from_row, metric_history, mlflow_trace_from_row, run_from_row
from tracehouse.query.store import TraceStore


def experiments_router(store: TraceStore, access: Access = OPEN) -> APIRouter:
    router = APIRouter(tags=["experiments"])

    @router.get("/api/v1/experiments", response_model=ExperimentListResponse, responses=ERROR_RESPONSES)
    async def list_experiments(principal: Annotated[Principal, Depends(access.read)]) -> ExperimentListResponse:
        """The MLflow experiments of the caller's tenant (active ones, newest first), each with
        its number of runs and traces."""
        rows = await store.experiments(active_only=True, tenant=principal.tenant)
        return ExperimentListResponse(experiments=[experiment_from_row(r) for r in rows])

    @router.get("/api/v1/experiments/{experiment_id}", response_model=ExperimentDetailResponse,
                responses={**ERROR_RESPONSES, 404: {"model": ErrorResponse,
                                                    "description": "The tenant has no such experiment."}})
    async def get_experiment(
        principal: Annotated[Principal, Depends(access.read)],
        experiment_id: Annotated[str, Path(description="MLflow's experiment id (`0` is the Default experiment).")],
    ) -> ExperimentDetailResponse:
        """One experiment with its runs (top-level and nested, each naming its parent: params,
        tags and latest metrics) and its most recent traces (with the tokens and cost of their
        stored spans)."""
        tenant = principal.tenant
        found, runs, traces = await asyncio.gather(
            store.experiments(experiment_id, active_only=False, tenant=tenant),
            store.runs(experiment_id=experiment_id, tenant=tenant),
            store.mlflow_traces(experiment_id=experiment_id, tenant=tenant))
        if not found:
            raise ApiError(404, f"experiment {experiment_id!r} not found")
        experiment = experiment_from_row(found[0])
        return ExperimentDetailResponse(**experiment.model_dump(), runs=[run_from_row(r) for r in runs],
                                        traces=[mlflow_trace_from_row(r) for r in traces])

    @router.get("/api/v1/runs/{run_id}", response_model=RunDetailResponse,
                responses={**ERROR_RESPONSES, 404: {"model": ErrorResponse,
                                                    "description": "The tenant has no such run."}})
    async def get_run(
        principal: Annotated[Principal, Depends(access.read)],
        run_id: Annotated[str, Path(description="MLflow's run id.")],
    ) -> RunDetailResponse:
        """One run: params, tags, the full history of every metric, the runs nested under it,
        and the traces it produced (trace metadata `mlflow.sourceRun`)."""
        tenant = principal.tenant
        found, history, children, traces = await asyncio.gather(
            store.runs(run_id=run_id, active_only=False, limit=1, tenant=tenant),
            store.run_metric_history(run_id, tenant=tenant),
            store.runs(parent_run_id=run_id, tenant=tenant),
            store.mlflow_traces(run_id=run_id, tenant=tenant))
        if not found:
            raise ApiError(404, f"run {run_id!r} not found")
        run = run_from_row(found[0])
        experiments = await store.experiments(run.experiment_id, active_only=False, tenant=tenant)
        return RunDetailResponse(run=RunDetail(
            **run.model_dump(), experiment_name=experiments[0]["name"] if experiments else "",
            metrics=metric_history(history), children=[run_from_row(r) for r in children],
            traces=[mlflow_trace_from_row(r) for r in traces]))

    return router
