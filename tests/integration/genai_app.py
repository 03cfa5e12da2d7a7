"""A small GenAI app on the real OpenTelemetry SDK, and how to read its traces back.

Shared by the end-to-end tests (all-in-one, and sidecar -> Kafka -> writer). Prices are
OpenAI's published list prices per million tokens, written here independently of the
price table: gpt-4o input 2.50, cached input 1.25, output 10.00.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import httpx
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

M = Decimal(1_000_000)
TEMPLATE_V1 = "What should I wear in {city}?"
TEMPLATE_V2 = "What should I wear in {city} today? Answer in one line."


def gpt4o_cost(inp: int, cached: int, out: int) -> Decimal:
    return ((inp - cached) * Decimal("2.50") + cached * Decimal("1.25") + out * Decimal("10.00")) / M


def send(endpoint: str, scenario: list[dict[str, Any]]) -> dict[str, str]:
    """Emit one trace per scenario item (agent span + chat span); returns name -> trace id."""
    provider = TracerProvider(resource=Resource.create({"service.name": "wardrobe-app"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
    tracer = provider.get_tracer("wardrobe", "1.0")
    ids = {}
    for item in scenario:
        with tracer.start_as_current_span("invoke_agent stylist", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "stylist",
            "gen_ai.conversation.id": item["session"], "user.id": "user-9",
        }) as agent:
            attributes = {**item["chat"], "gen_ai.conversation.id": item["session"]}
            with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes=attributes) as chat:
                if item.get("error"):
                    chat.set_status(Status(StatusCode.ERROR, "upstream 500"))
        ids[item["name"]] = format(agent.get_span_context().trace_id, "032x")
    provider.shutdown()
    return ids


def chat(template: str | None, usage: tuple[int, int, int] | None = None) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "Paris?"}]}]),
        "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
            {"type": "text", "content": "A light coat and an umbrella."}]}]),
    }
    if usage:
        attrs.update({"gen_ai.usage.input_tokens": usage[0], "gen_ai.usage.cache_read.input_tokens": usage[1],
                      "gen_ai.usage.output_tokens": usage[2]})
    if template:
        attrs.update({"traceloop.prompt.managed": True, "traceloop.prompt.key": "wardrobe",
                      "traceloop.prompt.template": template})
    return attrs


def wait_for_traces(api: str, ids: dict[str, str], timeout: float = 30) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    got: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline and len(got) < len(ids):
        for name, trace_id in ids.items():
            response = httpx.get(f"{api}/api/v1/traces/{trace_id}", timeout=10)
            if response.status_code == 200 and len(response.json()["spans"]) == 2:
                got[name] = response.json()
        time.sleep(0.2)
    assert len(got) == len(ids), f"traces not queryable: {set(ids) - set(got)}"
    return got


def chat_span(trace: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in trace["spans"] if s["name"] == "chat gpt-4o")
