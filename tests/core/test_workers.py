"""`service.workers`: the enrichment processors run in worker processes (core/workers.py).

The shipped all-in-one pipeline runs twice on the session's chDB engine, in-process and
with workers, on every captured payload: both store the same rows. The counters the
processors move in the workers reach the owner's /metrics; a worker that dies fails only
its in-flight requests, retryably, and is started again; stopping the service stops them.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from inprocess_all_in_one import all_in_one, component, running
from otlp_fixtures import fixture_payloads, load_batch
from redaction_helpers import inject_secrets, markers
from tracehouse.core.component import Kind
from tracehouse.core.config import load_config_dict
from tracehouse.core.errors import ConfigError
from tracehouse.core.pdata import key_values
from tracehouse.core.service import Service
from tracehouse.core.workers import WorkerStage
from tracehouse.ingest.otlp.receiver import OtlpReceiver
from tracehouse.sinks.clickhouse.client import open_client

pytestmark = pytest.mark.integration

EVENTS = Path(__file__).parents[1] / "fixtures" / "genai-events"


def content_type(path: Path) -> str:
    return "application/json" if path.name.endswith(".json") else "application/x-protobuf"


async def post(service: Service, path: str, body: bytes, ctype: str = "application/x-protobuf") -> httpx.Response:
    receiver = component(service, Kind.RECEIVER, OtlpReceiver)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{receiver.http_port}", timeout=60) as http:
        return await http.post(path, content=body, headers={"Content-Type": ctype})


def stage(service: Service) -> WorkerStage:
    return next(n.component for n in service._nodes if isinstance(n.component, WorkerStage)
                and n.pipeline == "traces")


def table_text(chdb_endpoint: str, database: str, table: str, order: str) -> list[tuple[Any, ...]]:
    client = open_client(chdb_endpoint)
    try:
        return client.query(f"SELECT * APPLY(toString) FROM {database}.{table} ORDER BY {order}").result_rows
    finally:
        client.close()


def secrets_payload() -> bytes:
    """The OpenInference capture with secrets in its messages, as other traces (new trace
    ids: the capture itself is sent too, and its spans would be duplicates)."""
    batch = load_batch("openinference/http-protobuf.pb")
    assert inject_secrets(batch) > 0
    for _, _, sp in batch.iter_spans():
        sp.trace_id = bytes(b ^ 0xFF for b in sp.trace_id)
    batch.mark_mutated()
    return batch.to_bytes()


@pytest.fixture
async def with_workers(chdb_endpoint: str, database: str) -> AsyncIterator[Service]:
    async with running(chdb_endpoint, database, workers=2) as svc:
        yield svc


async def test_workers_store_the_rows_the_in_process_pipeline_stores(with_workers: Service, chdb_endpoint: str,
                                                                     database: str) -> None:
    bodies = [(p.read_bytes(), content_type(p)) for p in fixture_payloads()]
    bodies.append((secrets_payload(), "application/x-protobuf"))
    logs = [(EVENTS / v / "logs.pb").read_bytes() for v in ("current", "legacy")]
    # The GenAI processors ran in the workers: the owner built none of them.
    assert {n.id.type for n in with_workers._nodes if n.kind is Kind.PROCESSOR} == {
        "memory_limiter", "workers", "batch"}
    reference = database + "_inproc"
    async with running(chdb_endpoint, reference, workers=0) as in_process:
        for service in (with_workers, in_process):
            for body, ctype in bodies:
                resp = await post(service, "/v1/traces", body, ctype)
                assert resp.status_code == 200, resp.text
            for body in logs:
                assert (await post(service, "/v1/logs", body)).status_code == 200
    spans = table_text(chdb_endpoint, database, "otel_traces", "TraceId, SpanId")
    assert len(spans) >= 20  # every captured library's spans
    assert spans == table_text(chdb_endpoint, reference, "otel_traces", "TraceId, SpanId")
    stored_logs = table_text(chdb_endpoint, database, "otel_logs", "TraceId, SpanId, Timestamp, Body")
    assert stored_logs and stored_logs == table_text(chdb_endpoint, reference, "otel_logs",
                                                     "TraceId, SpanId, Timestamp, Body")
    prompts = table_text(chdb_endpoint, database, "otel_traces_prompts", "Name, Version")
    assert prompts and [p[:3] for p in prompts] == [
        p[:3] for p in table_text(chdb_endpoint, reference, "otel_traces_prompts", "Name, Version")]
    text = repr(spans) + repr(stored_logs)
    assert "[REDACTED:openai_api_key]" in text
    assert not any(m.decode() in text for m in markers())


async def test_counters_moved_in_workers_reach_the_owners_metrics(with_workers: Service) -> None:
    assert (await post(with_workers, "/v1/traces", secrets_payload())).status_code == 200
    # A chat span with its messages and no usage: its tokens are estimated in a worker.
    messages = {"gen_ai.input.messages": [{"role": "user", "parts": [{"type": "text", "content": "Rain in Paris?"}]}],
                "gen_ai.output.messages": [{"role": "assistant", "parts": [{"type": "text", "content": "Yes."}]}]}
    span = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="chat gpt-4o", attributes=key_values({
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
        **{k: json.dumps(v) for k, v in messages.items()}}))
    body = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])])
    assert (await post(with_workers, "/v1/traces", body.SerializeToString())).status_code == 200
    metrics = with_workers.telemetry.render().decode()
    masked = [line for line in metrics.splitlines()
              if line.startswith("tracehouse_processor_redaction_masked_values_total{") and "openai_api_key" in line]
    assert masked and float(masked[0].rsplit(" ", 1)[1]) > 0
    assert 'tracehouse_genai_estimated_spans_total{direction="input"} 1.0' in metrics


async def test_a_worker_that_dies_fails_its_requests_retryably_and_is_started_again(
        chdb_endpoint: str, database: str) -> None:
    body = load_batch("openinference/http-protobuf.pb").to_bytes()
    async with running(chdb_endpoint, database, workers=1) as service:
        pool = stage(service)._pool
        (pid,) = pool.pids()
        os.kill(pid, signal.SIGSTOP)  # the request will be in the worker when it dies
        request = asyncio.create_task(post(service, "/v1/traces", body))
        while not any(w.in_flight for w in pool._workers):
            await asyncio.sleep(0.01)
        os.kill(pid, signal.SIGKILL)
        resp = await request
        assert resp.status_code == 503, resp.text
        assert "processor worker 0 exited" in resp.text
        # It is started again at once, not on the next request; the client's retry is served.
        for _ in range(1200):
            if pool.restarted:
                break
            await asyncio.sleep(0.05)
        assert pool.restarted == 1 and pool.pids() != [pid]
        resp = await post(service, "/v1/traces", body)
        assert resp.status_code == 200, resp.text
        pids = pool.pids()
    for p in pids:  # stopping the service stopped its workers
        with pytest.raises(ProcessLookupError):
            os.kill(p, 0)
    rows = table_text(chdb_endpoint, database, "otel_traces", "SpanId")
    assert len(rows) == 6  # the one stored request; nothing of the failed one


@pytest.mark.parametrize("value", [-1, 1000, "two"])
def test_workers_must_be_a_small_non_negative_count(chdb_endpoint: str, value: Any) -> None:
    raw = all_in_one(chdb_endpoint, "unused")
    raw["service"]["workers"] = value
    with pytest.raises(ConfigError, match="service::workers"):
        load_config_dict(raw)
