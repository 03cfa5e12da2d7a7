"""The unit of data flowing between pipeline stages.

A `TraceBatch` wraps one parsed OTLP `ExportTraceServiceRequest` and keeps the wire
bytes it came from, so stages that only forward (the sidecar's Kafka exporter) never
re-serialize and nobody materializes per-span Python objects unless it has to. Crossing
from protobuf (upb) into Python objects is the dominant cost on the hot path; see
../shared/reference/architecture-anchors.md §4.3.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span

from tracehouse.core.errors import BadRequestError

TRACE_ID_LEN = 16
SPAN_ID_LEN = 8

# `extras` key naming the exact source records of a batch (the kafka receiver sets
# `topic/partition/first-last`); the ClickHouse exporter passes it as the insert's
# deduplication token, so replaying the same records is idempotent.
INSERT_DEDUP_TOKEN = "clickhouse.insert_deduplication_token"


def count_spans(request: ExportTraceServiceRequest) -> int:
    return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)


@dataclass(slots=True)
class TraceBatch:
    """One or more OTLP export requests' worth of spans.

    `raw` is the serialized form while it is known to match `request`; a stage that
    changes the request must call `mark_mutated()` so the bytes are rebuilt on demand.
    `extras` is where enrichment processors hang column-wise results (e.g. GenAI
    columns) aligned with `iter_spans()` order, so later stages never rescan attributes.
    """

    request: ExportTraceServiceRequest
    span_count: int
    raw: bytes | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_bytes(cls, raw: bytes) -> TraceBatch:
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(raw)
        except DecodeError as exc:
            raise BadRequestError(f"malformed OTLP protobuf: {exc}") from None
        return cls(request=request, span_count=count_spans(request), raw=raw)

    @classmethod
    def from_request(cls, request: ExportTraceServiceRequest) -> TraceBatch:
        return cls(request=request, span_count=count_spans(request))

    @classmethod
    def merge(cls, batches: Iterable[TraceBatch]) -> TraceBatch:
        """Concatenate batches. Serialized protobuf messages concatenate into the merge of
        their repeated fields, so merging raw bytes is exact and avoids a re-serialize."""
        parts = list(batches)
        if len(parts) == 1:
            return parts[0]
        request = ExportTraceServiceRequest()
        for part in parts:
            request.resource_spans.extend(part.request.resource_spans)
        raw: bytes | None = None
        if all(p.raw is not None for p in parts):
            raw = b"".join(p.raw for p in parts)  # type: ignore[misc]
        return cls(request=request, span_count=sum(p.span_count for p in parts), raw=raw,
                   extras=_merge_extras(parts))

    @property
    def nbytes(self) -> int:
        """Wire size; what queues and memory limits are measured in."""
        return len(self.raw) if self.raw is not None else self.request.ByteSize()

    def to_bytes(self) -> bytes:
        if self.raw is None:
            self.raw = self.request.SerializeToString()
        return self.raw

    def mark_mutated(self) -> None:
        self.raw = None

    def iter_spans(self) -> Iterator[tuple[ResourceSpans, Any, Span]]:
        """(resource_spans, scope_spans, span) in wire order."""
        for rs in self.request.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    yield rs, ss, span


def _merge_extras(parts: list[TraceBatch]) -> dict[str, Any]:
    """Column-wise extras (anything with a `concat` classmethod) survive merging only when
    every part has them; otherwise they would no longer line up with the spans."""
    merged: dict[str, Any] = {}
    for key, first in parts[0].extras.items():
        values = [p.extras.get(key) for p in parts]
        if hasattr(type(first), "concat") and all(type(v) is type(first) for v in values):
            merged[key] = type(first).concat(values)
    return merged


def any_value(value: Any) -> AnyValue:
    """A Python value as an OTLP AnyValue (sequences become arrays, mappings kvlists)."""
    # bool before int: bool is a subclass of int.
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    out = AnyValue()
    if isinstance(value, dict):
        out.kvlist_value.values.extend(key_values(value))
    else:
        out.array_value.values.extend(any_value(v) for v in value)
    return out


def key_values(attrs: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in attrs.items()]
