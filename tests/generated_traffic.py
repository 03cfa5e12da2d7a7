"""Seeded GenAI agent traffic (the `make bench` generator) as serialized OTLP request bodies."""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracehouse.bench.traffic import pregenerate


def traffic_bodies(spans: int, spans_per_request: int = 500, seed: int = 1) -> list[bytes]:
    return [p.body for p in pregenerate(seed, spans, spans_per_request)]


def span_ids_of(bodies: list[bytes]) -> set[tuple[str, str]]:
    """(trace id hex, span id hex) of every span in the bodies, as ClickHouse stores them."""
    ids = set()
    for body in bodies:
        for rs in ExportTraceServiceRequest.FromString(body).resource_spans:
            for ss in rs.scope_spans:
                ids.update((s.trace_id.hex(), s.span_id.hex()) for s in ss.spans)
    return ids
