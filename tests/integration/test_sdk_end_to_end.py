"""The real OpenTelemetry Python SDK exports to a running all-in-one, and every span comes back.

Each protocol sends 1,000+ spans across 150 traces (server, chat, tool and internal spans;
attributes of every type; events; links; errors). Spans are captured in memory on the
client side too, and every field the query API returns is compared with what the SDK made.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from allinone import AllInOne

pytestmark = pytest.mark.integration

TRACES = 150
KIND = {SpanKind.INTERNAL: "Internal", SpanKind.SERVER: "Server", SpanKind.CLIENT: "Client",
        SpanKind.PRODUCER: "Producer", SpanKind.CONSUMER: "Consumer"}
STATUS = {StatusCode.UNSET: "Unset", StatusCode.OK: "Ok", StatusCode.ERROR: "Error"}


def expected_str(value: Any) -> str:
    """How the Collector's clickhouseexporter (and so tracehouse) stringifies a value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value), separators=(",", ":"))
    return str(value)


def emit_traces(exporter: SpanExporter, service: str) -> list[ReadableSpan]:
    """Emit the scenario through `exporter`; return the spans as the SDK recorded them."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({
        "service.name": service, "service.version": "1.4.2", "deployment.environment": "test",
    }))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=256))
    tracer = provider.get_tracer("tracehouse.tests", "0.1")
    previous: trace.SpanContext | None = None
    for i in range(TRACES):
        with tracer.start_as_current_span("POST /chat", kind=SpanKind.SERVER, attributes={
            "http.request.method": "POST", "http.response.status_code": 200, "user.tier": "gold",
            "sampling.ratio": 0.25, "feature.flags": ["a", "b"], "retry.counts": [1, 2, 3],
            "cache.hit": i % 2 == 0,
        }) as root:
            with tracer.start_as_current_span("invoke_agent planner", attributes={
                "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner",
            }):
                for step in range(2):
                    with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes={
                        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                        "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 42 + step,
                        "gen_ai.usage.output_tokens": 17, "gen_ai.request.temperature": 0.2,
                    }) as chat:
                        chat.add_event("gen_ai.user.message", {"content": f"question {i}.{step}", "index": step})
                    with tracer.start_as_current_span("execute_tool get_weather", attributes={
                        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather",
                    }) as tool:
                        if i % 10 == 0 and step == 1:
                            try:
                                raise TimeoutError(f"weather service timed out ({i})")
                            except TimeoutError as exc:
                                tool.record_exception(exc)
                                tool.set_status(Status(StatusCode.ERROR, str(exc)))
            links = [Link(previous, {"link.reason": "follows"})] if previous is not None else []
            with tracer.start_as_current_span("persist", links=links) as persist:
                persist.set_status(Status(StatusCode.OK))
            previous = root.get_span_context()
    assert provider.force_flush(60_000)
    provider.shutdown()
    return list(memory.get_finished_spans())


def fetch_trace(client: httpx.Client, trace_id: str) -> dict[str, Any]:
    resp = client.get(f"/api/v1/traces/{trace_id}")
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def assert_stored_exactly(server: AllInOne, spans: Sequence[ReadableSpan], service: str) -> None:
    assert len(spans) >= 1000
    by_trace: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        by_trace.setdefault(f"{span.context.trace_id:032x}", []).append(span)
    assert len(by_trace) == TRACES
    with httpx.Client(base_url=server.query, timeout=30) as client:
        for trace_id, expected in by_trace.items():
            body = fetch_trace(client, trace_id)
            got = {s["span_id"]: s for s in body["spans"]}
            assert len(body["spans"]) == len(expected) == len(got), trace_id
            for span in expected:
                assert_span(got[f"{span.context.span_id:016x}"], span, trace_id, service)
            assert body["totals"]["span_count"] == len(expected)


def assert_span(stored: dict[str, Any], span: ReadableSpan, trace_id: str, service: str) -> None:
    assert stored["trace_id"] == trace_id
    assert stored["parent_span_id"] == (f"{span.parent.span_id:016x}" if span.parent else "")
    assert stored["name"] == span.name
    assert stored["kind"] == KIND[span.kind]
    assert stored["service_name"] == service
    assert stored["start_time_unix_nano"] == str(span.start_time)
    assert stored["end_time_unix_nano"] == str(span.end_time)
    assert stored["duration_ns"] == span.end_time - span.start_time  # type: ignore[operator]
    assert stored["status"]["code"] == STATUS[span.status.status_code]
    assert stored["status"]["message"] == (span.status.description or "")
    assert stored["attributes"] == {k: expected_str(v) for k, v in (span.attributes or {}).items()}
    resource = {k: expected_str(v) for k, v in span.resource.attributes.items()}
    assert stored["resource_attributes"] == resource
    assert stored["scope"] == {"name": "tracehouse.tests", "version": "0.1"}
    assert [(e["name"], e["time_unix_nano"], e["attributes"]) for e in stored["events"]] == [
        (e.name, str(e.timestamp), {k: expected_str(v) for k, v in (e.attributes or {}).items()})
        for e in span.events
    ]
    assert [(lk["trace_id"], lk["span_id"], lk["attributes"]) for lk in stored["links"]] == [
        (f"{lk.context.trace_id:032x}", f"{lk.context.span_id:016x}",
         {k: expected_str(v) for k, v in (lk.attributes or {}).items()})
        for lk in span.links
    ]


def search_all(server: AllInOne, service: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    with httpx.Client(base_url=server.query, timeout=30) as client:
        for _ in range(100):
            params: dict[str, Any] = {"service": service, "limit": 40, "start": "2020-01-01T00:00:00Z"}
            if cursor:
                params["cursor"] = cursor
            page = client.get("/api/v1/traces", params=params)
            assert page.status_code == 200, page.text
            rows += page.json()["traces"]
            cursor = page.json().get("next_cursor")
            if not cursor:
                break
    return rows


def test_sdk_over_otlp_http(all_in_one: AllInOne) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    spans = emit_traces(OTLPSpanExporter(endpoint=f"{all_in_one.otlp_http}/v1/traces", timeout=30), "sdk-http")
    assert_stored_exactly(all_in_one, spans, "sdk-http")
    rows = search_all(all_in_one, "sdk-http")
    assert len(rows) == TRACES == len({r["trace_id"] for r in rows})
    assert all(r["root_span_name"] == "POST /chat" and r["span_count"] == 7 for r in rows)
    assert sum(r["status"] == "error" for r in rows) == math.ceil(TRACES / 10)
    metrics = httpx.get(f"{all_in_one.query}/metrics", timeout=10).text
    accepted = [line for line in metrics.splitlines()
                if line.startswith('tracehouse_receiver_accepted_spans_total{receiver="otlp",transport="http"}')]
    assert accepted and float(accepted[0].split()[-1]) >= len(spans)
    for name in ("tracehouse_exporter_sent_spans_total", "tracehouse_processor_batch_send_size_spans_bucket",
                 "tracehouse_receiver_refused_spans", "tracehouse_exporter_send_failed_spans"):
        assert name in metrics


def test_sdk_over_otlp_grpc(all_in_one: AllInOne) -> None:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    spans = emit_traces(OTLPSpanExporter(endpoint=all_in_one.otlp_grpc, insecure=True, timeout=30), "sdk-grpc")
    assert_stored_exactly(all_in_one, spans, "sdk-grpc")
    assert len(search_all(all_in_one, "sdk-grpc")) == TRACES


def test_storing_and_searching_never_loads_pandas(all_in_one: AllInOne) -> None:
    # clickhouse-connect imports pandas (chDB's dependency, so installed) to ask whether each
    # insert is a DataFrame: 48 MB of the all-in-one's idle RSS for a check that is always no.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": "sdk-maps"}))
    provider.add_span_processor(SimpleSpanProcessor(
        OTLPSpanExporter(endpoint=f"{all_in_one.otlp_http}/v1/traces", timeout=30)))
    with provider.get_tracer("maps").start_as_current_span("chat gpt-4o-mini") as span:
        span.set_attribute("gen_ai.request.model", "gpt-4o-mini")
    provider.shutdown()
    # Acknowledged means stored: the search finds it at once.
    assert [r["root_span_name"] for r in search_all(all_in_one, "sdk-maps")] == ["chat gpt-4o-mini"]
    maps = all_in_one.mapped_files()
    assert "chdb" in maps, "the all-in-one stores into the embedded engine"
    assert "/pandas/" not in maps, "the all-in-one loaded pandas"
