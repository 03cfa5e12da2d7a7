"""The real OpenTelemetry SDK exports a GenAI trace to a running all-in-one; the Jaeger-compatible
API (what Grafana's Jaeger datasource calls) must show every span as the SDK made it.

The spans are captured in memory on the client side too, and each one is compared field by
field with the Jaeger JSON: ids, parent and link references, µs times, tags (attributes, the
OTLP translator's conventions, the GenAI columns with their types), logs and the process.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from allinone import AllInOne
from test_sdk_end_to_end import expected_str

pytestmark = pytest.mark.integration

SERVICE = "jaeger-sdk-app"
SCOPE = ("tracehouse.jaeger.tests", "0.3")
KIND = {SpanKind.INTERNAL: "internal", SpanKind.SERVER: "server", SpanKind.CLIENT: "client",
        SpanKind.PRODUCER: "producer", SpanKind.CONSUMER: "consumer"}
INPUT_TOKENS, OUTPUT_TOKENS = 1200, 300


@dataclass
class Sent:
    spans: dict[str, ReadableSpan]  # by name
    trace_id: str                   # the GenAI trace
    linked_trace_id: str            # the trace its chat span links to
    start_us: int
    end_us: int


def hex_trace(span: ReadableSpan) -> str:
    assert span.context is not None
    return f"{span.context.trace_id:032x}"


def hex_span(span: ReadableSpan) -> str:
    assert span.context is not None
    return f"{span.context.span_id:016x}"


def emit(endpoint: str) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({
        "service.name": SERVICE, "service.version": "2.0.1", "deployment.environment": "jaeger-test",
        "host.name": "box-1", "host.cpu.count": 8,
    }))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", timeout=30)))
    tracer = provider.get_tracer(*SCOPE)
    with tracer.start_as_current_span("enqueue", kind=SpanKind.PRODUCER,
                                      attributes={"messaging.system": "kafka"}) as enqueue:
        pass
    time.sleep(0.002)  # the GenAI trace is the newer one
    with tracer.start_as_current_span("POST /chat", kind=SpanKind.SERVER, attributes={
        "http.request.method": "POST", "http.response.status_code": 200, "user.tier": "gold",
        "sampling.ratio": 0.25, "feature.flags": ["a", "b"], "cache.hit": True,
    }):
        with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes={
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": INPUT_TOKENS,
            "gen_ai.usage.output_tokens": OUTPUT_TOKENS, "gen_ai.request.temperature": 0.2,
        }, links=[Link(enqueue.get_span_context(), {"link.reason": "queued"})]) as chat:
            chat.add_event("gen_ai.choice", {"index": 0, "finish_reason": "stop"})
            with tracer.start_as_current_span("execute_tool lookup", attributes={
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup",
            }) as tool:
                tool.set_status(Status(StatusCode.ERROR, "lookup backend refused"))
    assert provider.force_flush(30_000)
    provider.shutdown()
    return list(memory.get_finished_spans())


def get(server: AllInOne, path: str, **params: Any) -> dict[str, Any]:
    resp = httpx.get(f"{server.query}{path}", params=params, timeout=30)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    assert (body["limit"], body["offset"], body["errors"]) == (0, 0, None)
    assert body["total"] == len(body["data"])
    return body


@pytest.fixture(scope="module")
def sent(all_in_one: AllInOne) -> Iterator[Sent]:
    spans = {s.name: s for s in emit(all_in_one.otlp_http)}
    assert len(spans) == 4
    trace_id = hex_trace(spans["POST /chat"])
    deadline = time.monotonic() + 30
    while True:  # the exporter writes in batches (200 ms): wait until the whole trace is stored
        resp = httpx.get(f"{all_in_one.query}/api/traces/{trace_id}", timeout=10)
        if resp.status_code == 200 and len(resp.json()["data"][0]["spans"]) == 3:
            break
        assert resp.status_code in (200, 404), resp.text
        assert time.monotonic() < deadline, f"trace {trace_id} not stored: {resp.text}"
        time.sleep(0.1)
    starts = [s.start_time for s in spans.values()]
    ends = [s.end_time for s in spans.values()]
    assert all(isinstance(t, int) for t in starts + ends)
    yield Sent(spans, trace_id, hex_trace(spans["enqueue"]),
               min(starts) // 1000 - 1, max(ends) // 1000 + 1)  # type: ignore[type-var, operator]


def expected_tag(key: str, value: Any) -> dict[str, Any]:
    """The tag of an attribute the SDK set: its own type back (ints, doubles, bools), strings
    and arrays as the stored text (Jaeger's translator shows arrays as their JSON)."""
    if isinstance(value, bool):
        return {"key": key, "type": "bool", "value": value}
    if isinstance(value, int):
        return {"key": key, "type": "int64", "value": value}
    if isinstance(value, float):
        return {"key": key, "type": "float64", "value": value}
    return {"key": key, "type": "string", "value": expected_str(value)}


def tag_map(tags: list[dict[str, Any]]) -> dict[str, tuple[str, Any]]:
    keys = [t["key"] for t in tags]
    assert len(keys) == len(set(keys)), f"duplicate keys: {keys}"
    return {t["key"]: (t["type"], t["value"]) for t in tags}


def genai_tags(genai: dict[str, Any], attributes: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    """The GenAI tags a span must show, from the typed columns as /api/v1 reports them."""
    out: dict[str, tuple[str, Any]] = {}
    for field, key in (("provider", "gen_ai.provider.name"), ("operation", "gen_ai.operation.name"),
                       ("request_model", "gen_ai.request.model"), ("response_model", "gen_ai.response.model")):
        if genai[field] and key not in attributes:
            out[key] = ("string", genai[field])
    tokens = ("input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens", "total_tokens")
    for field in tokens:
        if genai[field] is not None:
            out[f"tracehouse.genai.{field}"] = ("int64", genai[field])
    if genai["tokens_estimated"] or any(genai[f] is not None for f in tokens):
        out["tracehouse.genai.tokens_estimated"] = ("bool", genai["tokens_estimated"])
    for field in ("input_cost_usd", "output_cost_usd", "total_cost_usd"):
        if genai[field] is not None:
            out[f"tracehouse.genai.{field}"] = ("float64", genai[field])
    for field, key in (("span_kind", "span_kind"), ("cost_source", "cost_source"), ("prompt_name", "prompt.name"),
                       ("prompt_version", "prompt.version"), ("session_id", "session_id"), ("user_id", "user_id")):
        if genai[field]:
            out[f"tracehouse.genai.{key}"] = ("string", genai[field])
    return out


def test_trace_matches_the_sdk_spans_field_by_field(all_in_one: AllInOne, sent: Sent) -> None:
    body = get(all_in_one, f"/api/traces/{sent.trace_id}")
    [trace] = body["data"]
    assert trace["traceID"] == sent.trace_id and trace["warnings"] is None
    v1 = httpx.get(f"{all_in_one.query}/api/v1/traces/{sent.trace_id}", timeout=30).json()
    v1_spans = {s["span_id"]: s for s in v1["spans"]}
    got = {s["spanID"]: s for s in trace["spans"]}
    expected = [s for s in sent.spans.values() if hex_trace(s) == sent.trace_id]
    assert len(expected) == 3 and set(got) == {hex_span(s) for s in expected} == set(v1_spans)
    [process_id] = {s["processID"] for s in trace["spans"]}
    resource = expected[0].resource.attributes
    assert trace["processes"] == {process_id: {
        "serviceName": SERVICE,
        "tags": [expected_tag(k, v) for k, v in resource.items()]}}
    assert "telemetry.sdk.language" in {t["key"] for t in trace["processes"][process_id]["tags"]}

    for span in expected:
        jaeger = got[hex_span(span)]
        assert jaeger["traceID"] == sent.trace_id
        assert jaeger["operationName"] == span.name
        assert jaeger["flags"] == 1 and jaeger["warnings"] is None
        assert jaeger["startTime"] == span.start_time // 1000  # type: ignore[operator]
        assert jaeger["duration"] == (span.end_time - span.start_time) // 1000  # type: ignore[operator]
        references = []
        if span.parent is not None:
            references.append({"refType": "CHILD_OF", "traceID": sent.trace_id,
                               "spanID": f"{span.parent.span_id:016x}"})
        references += [{"refType": "FOLLOWS_FROM", "traceID": f"{lk.context.trace_id:032x}",
                        "spanID": f"{lk.context.span_id:016x}"} for lk in span.links]
        assert jaeger["references"] == references
        attributes = {k: expected_str(v) for k, v in (span.attributes or {}).items()}
        # the attributes first, in order, with the types the SDK gave them
        tags = [expected_tag(k, v) for k, v in (span.attributes or {}).items()]
        assert jaeger["tags"][:len(attributes)] == tags
        want = {t["key"]: (t["type"], t["value"]) for t in tags}
        want.update({"otel.scope.name": ("string", SCOPE[0]), "otel.scope.version": ("string", SCOPE[1]),
                     "span.kind": ("string", KIND[span.kind])})
        if span.status.status_code is StatusCode.ERROR:
            want.update({"otel.status_code": ("string", "ERROR"), "error": ("bool", True),
                         "otel.status_description": ("string", span.status.description)})
        want.update(genai_tags(v1_spans[hex_span(span)]["genai"], attributes))
        assert tag_map(jaeger["tags"]) == want, span.name
        assert jaeger["logs"] == [
            {"timestamp": e.timestamp // 1000,
             "fields": [{"key": "event", "type": "string", "value": e.name}]
             + [expected_tag(k, v) for k, v in (e.attributes or {}).items()]}
            for e in span.events]

    chat = tag_map(got[hex_span(sent.spans["chat gpt-4o-mini"])]["tags"])
    assert chat["gen_ai.usage.input_tokens"] == ("int64", INPUT_TOKENS)  # the SDK's int, not a string
    assert chat["gen_ai.request.temperature"] == ("float64", 0.2)
    assert chat["tracehouse.genai.input_tokens"] == ("int64", INPUT_TOKENS)
    assert chat["tracehouse.genai.output_tokens"] == ("int64", OUTPUT_TOKENS)
    assert chat["tracehouse.genai.span_kind"] == ("string", "llm")
    assert chat["tracehouse.genai.tokens_estimated"] == ("bool", False)
    assert chat["gen_ai.provider.name"] == ("string", "openai")  # the attribute, once
    kind, cost = chat["tracehouse.genai.total_cost_usd"]
    assert kind == "float64" and cost > 0
    assert cost == v1["totals"]["total_cost_usd"] == v1_spans[hex_span(sent.spans["chat gpt-4o-mini"])][
        "genai"]["total_cost_usd"]
    # OpenAI's list price for gpt-4o-mini: $0.15 / M input, $0.60 / M output tokens
    assert cost == pytest.approx((INPUT_TOKENS * 0.15 + OUTPUT_TOKENS * 0.60) / 1e6, rel=1e-9)
    tool = tag_map(got[hex_span(sent.spans["execute_tool lookup"])]["tags"])
    assert tool["error"] == ("bool", True) and tool["otel.status_code"] == ("string", "ERROR")
    root = tag_map(got[hex_span(sent.spans["POST /chat"])]["tags"])
    assert "error" not in root and "otel.status_code" not in root  # status unset
    assert not [k for k in root if k.startswith(("gen_ai.", "tracehouse.genai."))]


def test_api_v3_shows_the_sdk_spans_with_their_types(all_in_one: AllInOne, sent: Sent) -> None:
    resp = httpx.get(f"{all_in_one.query}/api/v3/traces/{sent.trace_id}", timeout=30)
    assert resp.status_code == 200, resp.text
    spans = {sp["spanId"]: sp for rs in resp.json()["result"]["resourceSpans"]
             for ss in rs["scopeSpans"] for sp in ss["spans"]}
    root, chat = sent.spans["POST /chat"], sent.spans["chat gpt-4o-mini"]
    assert set(spans) == {hex_span(s) for s in sent.spans.values() if hex_trace(s) == sent.trace_id}
    attrs = {kv["key"]: kv["value"] for kv in spans[hex_span(chat)]["attributes"]}
    assert attrs["gen_ai.usage.input_tokens"] == {"intValue": str(INPUT_TOKENS)}
    assert attrs["gen_ai.request.temperature"] == {"doubleValue": 0.2}
    root_attrs = {kv["key"]: kv["value"] for kv in spans[hex_span(root)]["attributes"]}
    assert root_attrs["feature.flags"] == {"arrayValue": {"values": [{"stringValue": "a"}, {"stringValue": "b"}]}}
    assert root_attrs["cache.hit"] == {"boolValue": True} and root_attrs["sampling.ratio"] == {"doubleValue": 0.25}
    assert spans[hex_span(chat)]["kind"] == 3 and spans[hex_span(chat)]["parentSpanId"] == hex_span(root)


def test_services_and_operations(all_in_one: AllInOne, sent: Sent) -> None:
    services = get(all_in_one, "/api/services")["data"]
    assert SERVICE in services and services == sorted(services)
    operations = get(all_in_one, f"/api/services/{SERVICE}/operations")["data"]
    assert operations == sorted(sent.spans) == ["POST /chat", "chat gpt-4o-mini", "enqueue", "execute_tool lookup"]
    kinds = get(all_in_one, "/api/operations", service=SERVICE)["data"]
    assert kinds == [{"name": name, "spanKind": KIND[sent.spans[name].kind]} for name in sorted(sent.spans)]
    assert get(all_in_one, "/api/operations", service=SERVICE, spanKind="producer")["data"] == [
        {"name": "enqueue", "spanKind": "producer"}]


def test_search_finds_the_trace(all_in_one: AllInOne, sent: Sent) -> None:
    window = {"service": SERVICE, "start": sent.start_us, "end": sent.end_us}

    def ids(**params: Any) -> list[str]:
        return [t["traceID"] for t in get(all_in_one, "/api/traces", **{**window, **params})["data"]]

    found = get(all_in_one, "/api/traces", **window, tags=json.dumps({"gen_ai.request.model": "gpt-4o-mini"}))
    [trace] = found["data"]
    assert trace == get(all_in_one, f"/api/traces/{sent.trace_id}")["data"][0]  # the whole trace
    assert ids() == [sent.trace_id, sent.linked_trace_id]  # newest first
    assert ids(operation="enqueue") == [sent.linked_trace_id]
    assert ids(tags='{"error": "true"}') == [sent.trace_id]
    assert ids(tags=json.dumps({"tracehouse.genai.input_tokens": str(INPUT_TOKENS)})) == [sent.trace_id]
    assert ids(tags="gen_ai.provider.name=openai span.kind=client") == [sent.trace_id]
    assert ids(tags='{"host.name": "box-1", "span.kind": "producer"}') == [sent.linked_trace_id]
    longest = max(s.end_time - s.start_time for s in sent.spans.values())  # type: ignore[operator]
    assert ids(minDuration=f"{longest // 1000 + 1}us") == []
    assert ids(minDuration=f"{longest // 1000}us") != []
    assert ids(start=sent.end_us + 1, end=sent.end_us + 1_000_000) == []
