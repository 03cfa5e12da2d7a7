"""Build spans and run them through the GenAI processors the way the all-in-one wires them."""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from tracehouse.core.component import ComponentID, Kind, Settings
from tracehouse.core.pdata import TraceBatch, key_values
from tracehouse.core.testing import TestHost, TracesSink
from tracehouse.processors.genai_cost.config import GenAICostConfig
from tracehouse.processors.genai_cost.processor import CostProcessor
from tracehouse.processors.genai_normalize.config import GenAINormalizeConfig
from tracehouse.processors.genai_normalize.processor import NormalizeProcessor
from tracehouse.processors.genai_tokens.config import GenAITokensConfig
from tracehouse.processors.genai_tokens.processor import TokensProcessor


async def enrich_all(batches: list[TraceBatch], host: TestHost | None = None) -> list[TraceBatch]:
    """genai_normalize -> genai_tokens -> genai_cost over `batches`; returns them with GenAI columns."""
    sink = TracesSink()
    cost = CostProcessor(Settings(ComponentID("genai_cost"), Kind.PROCESSOR, "traces"), GenAICostConfig(), sink)
    tokens = TokensProcessor(Settings(ComponentID("genai_tokens"), Kind.PROCESSOR, "traces"), GenAITokensConfig(),
                             cost)
    normalize = NormalizeProcessor(Settings(ComponentID("genai_normalize"), Kind.PROCESSOR, "traces"),
                                   GenAINormalizeConfig(), tokens)
    host = host or TestHost()
    for component in (cost, tokens):
        await component.start(host)
    for batch in batches:
        await normalize.consume(batch)
    for component in (tokens, cost):
        await component.shutdown()
    return list(sink.batches)


async def enrich(batch: TraceBatch, host: TestHost | None = None) -> TraceBatch:
    return (await enrich_all([batch], host))[0]


def span(trace: int, span_id: int, start_ns: int, attrs: dict[str, Any], *, parent: int = 0, name: str = "chat",
         duration_ns: int = 1_000_000, error: bool = False) -> Span:
    return Span(trace_id=trace.to_bytes(16, "big"), span_id=span_id.to_bytes(8, "big"),
                parent_span_id=parent.to_bytes(8, "big") if parent else b"", name=name,
                start_time_unix_nano=start_ns, end_time_unix_nano=start_ns + duration_ns,
                attributes=key_values(attrs),
                status=Status(code=Status.STATUS_CODE_ERROR if error else Status.STATUS_CODE_UNSET))


def batch_of(spans: list[Span], service: str = "svc") -> TraceBatch:
    rs = ResourceSpans(resource={"attributes": key_values({"service.name": service})},
                       scope_spans=[ScopeSpans(spans=spans)])
    return TraceBatch.from_request(ExportTraceServiceRequest(resource_spans=[rs]))


def split_per_span(batch: TraceBatch) -> list[TraceBatch]:
    """The same spans, one request each (how a retrying client may re-batch them)."""
    out = []
    for rs, ss, sp in batch.iter_spans():
        one = ResourceSpans(resource=rs.resource, scope_spans=[ScopeSpans(scope=ss.scope, spans=[sp])])
        out.append(TraceBatch.from_request(ExportTraceServiceRequest(resource_spans=[one])))
    return out
