"""GET /api/v1/experiments, /api/v1/experiments/{id}, /api/v1/runs/{id} and the scores and
MLflow trace info of GET /api/v1/traces/{id}, over rows written straight into the MLflow
receiver's tables (migration 008, applied by the exporter's `migrate`) on the session's chDB:
two tenants, nested runs, a metric history logged out of order and retried, a run renamed
(a newer row), a deleted tag, run and experiment; trace info with the spans of one trace (the
per-trace rollup sums their tokens and cost); scores, one deleted."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tracehouse.core.auth import KeyKind, Principal
from tracehouse.core.errors import UnauthenticatedError
from tracehouse.query.access import Access
from tracehouse.query.app import create_app
from tracehouse.query.config import QueryClickHouseConfig
from tracehouse.query.store import TraceStore
from tracehouse.sinks.clickhouse.client import open_client
from tracehouse.sinks.clickhouse.schema import migrate, schema_params

DEFAULT, ACME = "", "acme"  # the default tenant (no keys) is the empty string
KEYS = {"default-key": DEFAULT, "acme-key": ACME}
T0 = int(datetime(2026, 5, 1, 12, 0, tzinfo=UTC).timestamp() * 1000)  # ms, MLflow's unit
EXP, OLD_EXP, DELETED_EXP = "1", "0", "2"
PARENT, CHILD_A, CHILD_B, GRANDCHILD, DELETED_RUN, LONE = "run-parent", "run-child-a", "run-child-b", \
    "run-grandchild", "run-deleted", "run-lone"
TRACE_A, TRACE_B, TRACE_C, TRACE_ACME = "a" * 32, "b" * 32, "c" * 32, "d" * 32
LOSS = [(2, T0 + 3000, 0.5), (0, T0 + 1000, 0.9), (1, T0 + 2000, 0.7)]  # as logged: out of order


class Health:
    def healthy(self) -> bool:
        return True

    def ready(self) -> bool:
        return True

    def statuses(self) -> dict[str, tuple[str, str | None]]:
        return {}


class Keys:
    """A bearer-key authenticator for two tenants (read keys)."""

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        key = headers.get("authorization", "").removeprefix("Bearer ")
        if key not in KEYS:
            raise UnauthenticatedError("unknown key")
        return Principal(KEYS[key], KeyKind.READ, key)

    def admit(self, tenant: str, spans: int, nbytes: int) -> None:
        pass


def ms(t: int) -> datetime:
    return datetime.fromtimestamp(t / 1000, UTC)


def iso(t_ms: int) -> str:
    return ms(t_ms).strftime("%Y-%m-%dT%H:%M:%S") + f".{t_ms % 1000:03d}000000Z"


def seed(endpoint: str, database: str) -> None:
    client = open_client(endpoint)
    try:
        migrate(client, schema_params(database, "otel_traces", 0, 1000))
        t = f"{database}.otel_traces"

        def insert(table: str, rows: list[dict[str, Any]]) -> None:
            names = list(rows[0])
            client.insert(f"{t}_{table}", [[r[n] for n in names] for r in rows], column_names=names)

        def experiment(tenant: str, eid: str, name: str, created: int, stage: str = "active",
                       tags: dict[str, str] | None = None) -> dict[str, Any]:
            return {"Tenant": tenant, "ExperimentId": eid, "Name": name, "ArtifactLocation": "", "LifecycleStage": stage,
                    "CreationTime": created, "LastUpdateTime": created + 5, "Tags": tags or {}}

        insert("experiments", [
            experiment(DEFAULT, OLD_EXP, "Default", T0 - 10_000),
            experiment(DEFAULT, EXP, "chatbot-eval", T0, tags={"team": "search"}),
            experiment(DEFAULT, DELETED_EXP, "gone", T0 + 1, stage="deleted"),
            experiment(ACME, EXP, "acme-secret", T0 + 2)])

        def run(tenant: str, rid: str, name: str, start: int, end: int | None, status: str,
                stage: str = "active", experiment_id: str = EXP) -> dict[str, Any]:
            return {"Tenant": tenant, "RunId": rid, "ExperimentId": experiment_id, "RunName": name, "UserId": "ana",
                    "Status": status, "StartTime": start, "EndTime": end, "LifecycleStage": stage,
                    "ArtifactUri": "", "ModelOutputs": []}

        insert("runs", [run(DEFAULT, PARENT, "first-name", T0, None, "RUNNING")])
        insert("runs", [  # a later version of the parent: renamed and finished
            run(DEFAULT, PARENT, "sweep", T0, T0 + 5000, "FINISHED"),
            run(DEFAULT, CHILD_A, "trial-a", T0 + 100, T0 + 2100, "FINISHED"),
            run(DEFAULT, CHILD_B, "trial-b", T0 + 200, None, "RUNNING"),
            run(DEFAULT, GRANDCHILD, "trial-a-1", T0 + 300, T0 + 400, "FAILED"),
            run(DEFAULT, DELETED_RUN, "deleted", T0 + 50, T0 + 60, "FINISHED", stage="deleted"),
            run(DEFAULT, LONE, "lone", T0 - 5000, T0 - 4000, "FINISHED", experiment_id=OLD_EXP),
            run(ACME, PARENT, "acme-run", T0, T0 + 1, "FINISHED")])

        def tags(tenant: str, rid: str, values: dict[str, str], deleted: int = 0) -> list[dict[str, Any]]:
            return [{"Tenant": tenant, "RunId": rid, "Key": k, "Value": v, "Deleted": deleted} for k, v in values.items()]

        insert("run_tags", [
            *tags(DEFAULT, PARENT, {"mlflow.runName": "sweep", "stage": "dev", "temporary": "yes"}),
            *tags(DEFAULT, CHILD_A, {"mlflow.runName": "trial-a", "mlflow.parentRunId": PARENT}),
            *tags(DEFAULT, CHILD_B, {"mlflow.runName": "trial-b", "mlflow.parentRunId": PARENT}),
            *tags(DEFAULT, GRANDCHILD, {"mlflow.parentRunId": CHILD_A}),
            *tags(DEFAULT, DELETED_RUN, {"mlflow.parentRunId": PARENT}),
            *tags(ACME, "acme-child", {"mlflow.parentRunId": PARENT})])
        insert("run_tags", tags(DEFAULT, PARENT, {"temporary": ""}, deleted=1))  # delete-tag: a newer row

        def params(tenant: str, rid: str, values: dict[str, str]) -> list[dict[str, Any]]:
            return [{"Tenant": tenant, "RunId": rid, "Key": k, "Value": v} for k, v in values.items()]

        insert("run_params", [*params(DEFAULT, PARENT, {"lr": "0.01", "model": "gpt-4o-mini"}),
                              *params(DEFAULT, CHILD_A, {"lr": "0.1"}), *params(ACME, PARENT, {"secret": "x"})])

        def metric(tenant: str, rid: str, key: str, step: int, ts: int, value: float) -> dict[str, Any]:
            return {"Tenant": tenant, "RunId": rid, "Key": key, "Step": step, "Timestamp": ts, "Value": value}

        insert("run_metrics", [metric(DEFAULT, PARENT, "loss", s, ts, v) for s, ts, v in LOSS]
               + [metric(DEFAULT, PARENT, "accuracy", 0, T0 + 1000, 0.6),
                  metric(DEFAULT, PARENT, "accuracy", 1, T0 + 2000, 0.8),
                  metric(DEFAULT, PARENT, "diverged", 0, T0 + 1000, math.nan),
                  metric(DEFAULT, CHILD_A, "loss", 0, T0 + 1500, 0.4),
                  metric(ACME, PARENT, "loss", 7, T0, 99.0)])
        insert("run_metrics", [metric(DEFAULT, PARENT, "loss", 1, T0 + 2000, 0.7)])  # a retried log-metric

        def info(tenant: str, trace: str, request_ms: int, run_id: str, name: str,
                 state: str = "OK") -> dict[str, Any]:
            metadata = {"mlflow.sourceRun": run_id} if run_id else {}
            return {"Tenant": tenant, "TraceId": trace, "RequestId": f"tr-{trace}", "ExperimentId": EXP,
                    "RequestTime": request_ms, "ExecutionDuration": 1500, "State": state, "RequestPreview": "",
                    "ResponsePreview": "", "Metadata": {**metadata, "mlflow.trace.tokenUsage": '{"input_tokens": 120}'},
                    "Tags": {"mlflow.traceName": name}}

        insert("trace_info", [info(DEFAULT, TRACE_A, T0 + 1000, PARENT, "answer"),
                              info(DEFAULT, TRACE_B, T0 + 2000, CHILD_A, "retrieve", "ERROR"),
                              info(DEFAULT, TRACE_C, T0 + 3000, "", "adhoc"),
                              info(ACME, TRACE_ACME, T0 + 4000, PARENT, "acme-trace")])

        span_columns = ["Timestamp", "TraceId", "SpanId", "ParentSpanId", "SpanName", "ServiceName", "Duration",
                        "StatusCode", "Tenant", "GenAIInputTokens", "GenAIOutputTokens", "GenAITotalTokens",
                        "GenAITotalCostUSD"]
        client.insert(t, [
            [ms(T0 + 1000), TRACE_A, "a1", "", "answer", "bot", 1_500_000_000, "Ok", DEFAULT, None, None, None, None],
            [ms(T0 + 1100), TRACE_A, "a2", "a1", "chat gpt-4o-mini", "bot", 900_000_000, "Ok", DEFAULT, 100, 20, 120,
             Decimal("0.000027")],
            [ms(T0 + 1200), TRACE_A, "a3", "a1", "chat gpt-4o-mini", "bot", 300_000_000, "Ok", DEFAULT, 50, 10, 60,
             Decimal("0.000013")],
            [ms(T0 + 4000), TRACE_ACME, "x1", "", "acme", "acme-bot", 1000, "Ok", ACME, 7, 7, 14, Decimal("1")],
        ], column_names=span_columns)

        def score(tenant: str, sid: str, name: str, data_type: str, number: float | None, text: str, *,
                  span: str = "", at: int = T0 + 5000, deleted: int = 0, trace: str = TRACE_A) -> dict[str, Any]:
            return {"Tenant": tenant, "ScoreId": sid, "TraceId": trace, "SpanId": span, "Name": name,
                    "DataType": data_type, "NumericValue": number, "StringValue": text, "Comment": f"why {name}",
                    "Source": "llm_judge", "Author": "judge-1", "Kind": "feedback", "Error": "", "Metadata": {},
                    "RunId": PARENT, "Timestamp": ms(at), "Deleted": deleted}

        insert("scores", [score(DEFAULT, "s-rel", "relevance", "numeric", 0.8, "", span="a2", at=T0 + 6000),
                          score(DEFAULT, "s-safe", "safe", "boolean", 1.0, "true", at=T0 + 5000),
                          score(DEFAULT, "s-tone", "tone", "categorical", None, "friendly", at=T0 + 7000),
                          score(DEFAULT, "s-gone", "removed", "numeric", 1.0, "", at=T0 + 8000),
                          score(ACME, "s-acme", "acme-score", "numeric", 5.0, "")])
        insert("scores", [score(DEFAULT, "s-gone", "removed", "numeric", 1.0, "", at=T0 + 8000, deleted=1)])
    finally:
        client.close()


@pytest.fixture(scope="module")
def database(chdb_endpoint: str) -> str:
    name = f"tx_{datetime.now(UTC).strftime('%H%M%S%f')}"
    seed(chdb_endpoint, name)
    return name


@pytest.fixture(scope="module")
def app(chdb_endpoint: str, database: str) -> Iterator[FastAPI]:
    store = TraceStore(QueryClickHouseConfig(endpoint=chdb_endpoint, database=database), max_workers=2)
    yield create_app(store, Health(), access=Access(Keys()))  # type: ignore[arg-type]
    asyncio.run(store.close())


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://query",
                                 headers={"authorization": "Bearer default-key"}) as client:
        yield client


async def get_json(api: httpx.AsyncClient, path: str, key: str = "default-key") -> dict[str, Any]:
    resp = await api.get(path, headers={"authorization": f"Bearer {key}"})
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


# ------------------------------------------------------------------------------ experiments


async def test_the_list_has_the_tenant_s_active_experiments_newest_first_with_counts(api: httpx.AsyncClient) -> None:
    body = await get_json(api, "/api/v1/experiments")
    assert [e["experiment_id"] for e in body["experiments"]] == [EXP, OLD_EXP], "deleted ones left out"
    exp = body["experiments"][0]
    assert exp == {"experiment_id": EXP, "name": "chatbot-eval", "lifecycle_stage": "active",
                   "creation_time": iso(T0), "last_update_time": iso(T0 + 5), "tags": {"team": "search"},
                   "run_count": 4, "trace_count": 3}  # parent, 2 children, grandchild; not the deleted run
    assert body["experiments"][1]["run_count"] == 1 and body["experiments"][1]["trace_count"] == 0


async def test_another_tenant_sees_only_its_own_experiments_runs_and_traces(api: httpx.AsyncClient) -> None:
    acme = await get_json(api, "/api/v1/experiments", key="acme-key")
    assert [(e["name"], e["run_count"], e["trace_count"]) for e in acme["experiments"]] == [("acme-secret", 1, 1)]
    run = (await get_json(api, f"/api/v1/runs/{PARENT}", key="acme-key"))["run"]
    assert run["run_name"] == "acme-run" and run["params"] == {"secret": "x"}
    assert run["metrics"] == {"loss": [{"step": 7, "timestamp": iso(T0), "value": 99.0}]}
    assert [t["trace_id"] for t in run["traces"]] == [TRACE_ACME] and run["children"] == []
    mine = (await get_json(api, f"/api/v1/runs/{PARENT}"))["run"]
    assert TRACE_ACME not in [t["trace_id"] for t in mine["traces"]]
    assert "acme-child" not in [c["run_id"] for c in mine["children"]]
    # A trace of the other tenant is not found, nor are its scores read.
    assert (await api.get(f"/api/v1/traces/{TRACE_ACME}")).status_code == 404
    detail = await get_json(api, f"/api/v1/traces/{TRACE_A}")
    assert "s-acme" not in [s["score_id"] for s in detail["scores"]]
    assert (await api.get("/api/v1/experiments", headers={"authorization": "Bearer nope"})).status_code == 401


async def test_an_experiment_lists_its_runs_nested_by_parent_and_its_traces(api: httpx.AsyncClient) -> None:
    body = await get_json(api, f"/api/v1/experiments/{EXP}")
    assert body["name"] == "chatbot-eval" and body["run_count"] == 4
    runs = {r["run_id"]: r for r in body["runs"]}
    assert [r["run_id"] for r in body["runs"]] == [GRANDCHILD, CHILD_B, CHILD_A, PARENT], "newest first"
    assert {k: r["parent_run_id"] for k, r in runs.items()} == {PARENT: None, CHILD_A: PARENT, CHILD_B: PARENT,
                                                                GRANDCHILD: CHILD_A}
    parent = runs[PARENT]
    assert parent == {
        "run_id": PARENT, "run_name": "sweep", "experiment_id": EXP, "status": "FINISHED", "lifecycle_stage": "active",
        "start_time": iso(T0), "end_time": iso(T0 + 5000), "duration_ms": 5000, "parent_run_id": None,
        "user_id": "ana", "latest_metrics": {"accuracy": 0.8, "diverged": None, "loss": 0.5},
        "params": {"lr": "0.01", "model": "gpt-4o-mini"}, "tags": {"mlflow.runName": "sweep", "stage": "dev"}}
    assert runs[CHILD_B]["end_time"] is None and runs[CHILD_B]["duration_ms"] is None
    traces = body["traces"]
    assert [t["trace_id"] for t in traces] == [TRACE_C, TRACE_B, TRACE_A], "newest first; not the other tenant's"
    a = traces[2]
    assert a["request_id"] == f"tr-{TRACE_A}" and a["name"] == "answer" and a["state"] == "OK"
    assert (a["start_time"], a["duration_ms"], a["source_run_id"], a["span_count"]) == (iso(T0 + 1000), 1500, PARENT, 3)
    assert (a["input_tokens"], a["output_tokens"], a["total_tokens"]) == (150, 30, 180)
    assert a["total_cost_usd"] == pytest.approx(0.00004, abs=1e-15)
    b = traces[1]  # its spans never arrived: nothing summed, not zero
    assert (b["state"], b["source_run_id"], b["span_count"], b["input_tokens"], b["total_cost_usd"]) == \
        ("ERROR", CHILD_A, 0, None, None)
    assert traces[0]["source_run_id"] is None


async def test_a_deleted_experiment_is_still_readable_by_id(api: httpx.AsyncClient) -> None:
    body = await get_json(api, f"/api/v1/experiments/{DELETED_EXP}")
    assert (body["lifecycle_stage"], body["runs"], body["traces"]) == ("deleted", [], [])


# ------------------------------------------------------------------------------ runs


async def test_a_run_has_its_full_metric_history_in_step_order_its_children_and_its_traces(
        api: httpx.AsyncClient) -> None:
    run = (await get_json(api, f"/api/v1/runs/{PARENT}"))["run"]
    assert run["experiment_name"] == "chatbot-eval" and run["run_name"] == "sweep"
    assert run["metrics"]["loss"] == [{"step": s, "timestamp": iso(ts), "value": v} for s, ts, v in sorted(LOSS)], \
        "by step, each once although logged out of order and retried"
    assert [p["value"] for p in run["metrics"]["accuracy"]] == [0.6, 0.8]
    assert run["metrics"]["diverged"] == [{"step": 0, "timestamp": iso(T0 + 1000), "value": None}]
    assert run["latest_metrics"] == {"accuracy": 0.8, "diverged": None, "loss": 0.5}
    assert [c["run_id"] for c in run["children"]] == [CHILD_B, CHILD_A], "direct children, not deleted ones"
    assert run["children"][1]["latest_metrics"] == {"loss": 0.4} and run["children"][1]["params"] == {"lr": "0.1"}
    assert [t["trace_id"] for t in run["traces"]] == [TRACE_A]
    child = (await get_json(api, f"/api/v1/runs/{CHILD_A}"))["run"]
    assert child["parent_run_id"] == PARENT and [c["run_id"] for c in child["children"]] == [GRANDCHILD]
    assert [t["trace_id"] for t in child["traces"]] == [TRACE_B] and child["metrics"]["loss"][0]["value"] == 0.4


async def test_a_deleted_run_is_readable_by_id_but_not_listed(api: httpx.AsyncClient) -> None:
    run = (await get_json(api, f"/api/v1/runs/{DELETED_RUN}"))["run"]
    assert run["lifecycle_stage"] == "deleted"
    listed = await get_json(api, f"/api/v1/experiments/{EXP}")
    assert DELETED_RUN not in [r["run_id"] for r in listed["runs"]]


@pytest.mark.parametrize("path", ["/api/v1/experiments/999", "/api/v1/runs/no-such-run",
                                  "/api/v1/runs/run-child-a%27%20OR%201%3D1"])
async def test_unknown_ids_are_404_in_the_api_s_error_shape(api: httpx.AsyncClient, path: str) -> None:
    resp = await api.get(path)
    assert resp.status_code == 404, resp.text
    error = resp.json()["error"]
    assert error["code"] == 404 and "not found" in error["message"]


async def test_another_tenant_s_ids_are_404(api: httpx.AsyncClient) -> None:
    assert (await api.get(f"/api/v1/runs/{CHILD_A}", headers={"authorization": "Bearer acme-key"})).status_code == 404
    assert (await api.get(f"/api/v1/experiments/{OLD_EXP}",
                          headers={"authorization": "Bearer acme-key"})).status_code == 404


# ------------------------------------------------------------------------------ trace detail


async def test_the_trace_detail_has_its_scores_and_mlflow_trace_info(api: httpx.AsyncClient) -> None:
    body = await get_json(api, f"/api/v1/traces/{TRACE_A}")
    assert len(body["spans"]) == 3 and body["totals"]["input_tokens"] == 150
    unfailed = {"label": "", "error": "", "metadata": {}}
    assert body["scores"] == [
        {"score_id": "s-safe", "name": "safe", "data_type": "boolean", "value": True, "comment": "why safe",
         "source": "llm_judge", "author": "judge-1", "timestamp": iso(T0 + 5000), "span_id": "", "kind": "feedback",
         "run_id": PARENT, **unfailed},
        {"score_id": "s-rel", "name": "relevance", "data_type": "numeric", "value": 0.8, "comment": "why relevance",
         "source": "llm_judge", "author": "judge-1", "timestamp": iso(T0 + 6000), "span_id": "a2",
         "kind": "feedback", "run_id": PARENT, **unfailed},
        {"score_id": "s-tone", "name": "tone", "data_type": "categorical", "value": "friendly",
         "comment": "why tone", "source": "llm_judge", "author": "judge-1", "timestamp": iso(T0 + 7000),
         "span_id": "", "kind": "feedback", "run_id": PARENT, **unfailed}], "oldest first; the deleted one left out"
    assert body["mlflow"] == {"experiment_id": EXP, "request_id": f"tr-{TRACE_A}",
                              "tags": {"mlflow.traceName": "answer"},
                              "metadata": {"mlflow.sourceRun": PARENT,
                                           "mlflow.trace.tokenUsage": '{"input_tokens": 120}'}}
    assert list(body) == ["trace_id", "spans", "totals", "truncated", "scores", "mlflow"]


async def test_openapi_documents_the_experiment_routes(api: httpx.AsyncClient) -> None:
    doc = (await api.get("/openapi.json")).json()
    paths = doc["paths"]
    for path in ("/api/v1/experiments", "/api/v1/experiments/{experiment_id}", "/api/v1/runs/{run_id}"):
        responses = paths[path]["get"]["responses"]
        assert "503" in responses and "422" not in responses, path
    assert "404" in paths["/api/v1/runs/{run_id}"]["get"]["responses"]
    schemas = doc["components"]["schemas"]
    for name in ("ExperimentSummary", "ExperimentDetailResponse", "RunSummary", "RunDetail", "MetricPoint",
                 "MlflowTraceSummary", "Score", "MlflowTraceInfo"):
        assert name in schemas, name
    assert "scores" in schemas["TraceDetailResponse"]["properties"]
