"""The unit of data flowing between pipeline stages.

A `TraceBatch` wraps one parsed OTLP `ExportTraceServiceRequest` and keeps the wire
bytes it came from, so stages that only forward (the sidecar's Kafka exporter) never
re-serialize and nobody materializes per-span Python objects unless it has to. Crossing
from protobuf (upb) into Python objects is the dominant cost on the hot path; see
../shared/reference/architecture-anchors.md §4.3.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span

from tracehouse.core.errors import BadRequestError
from tracehouse.core.genai import GenAIColumns

TRACE_ID_LEN = 16
SPAN_ID_LEN = 8

# The tenant of data sent without authentication and of rows stored before tenants existed
# (the key file calls it `default`); stored as the empty string.
DEFAULT_TENANT = ""


def count_spans(request: ExportTraceServiceRequest) -> int:
    return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)


@dataclass(frozen=True, slots=True)
class RecordRange:
    """Where a batch came from: consecutive offsets of one Kafka partition.

    The ClickHouse exporter passes `token` as the insert's deduplication token, so
    replaying the same records is idempotent."""

    topic: str
    partition: int
    first: int
    last: int

    @property
    def token(self) -> str:
        return f"{self.topic}/{self.partition}/{self.first}-{self.last}"


@dataclass(slots=True)
class TraceBatch:
    """One or more OTLP export requests' worth of spans, and what the pipeline knows of them.

    `raw` is the serialized form while it is known to match `request`; a stage that
    changes the request must call `mark_mutated()` so the bytes are rebuilt on demand.
    `genai` holds the GenAI processors' column-wise results, aligned with `iter_spans()`
    order, so later stages never rescan attributes. `origin` names the Kafka records the
    batch was read from. `deadline` (monotonic seconds) is when the earliest client
    waiting on these spans stops waiting: exporters give up retrying before it. `tenant`
    owns every span of the batch: batches of different tenants are never merged.
    """

    request: ExportTraceServiceRequest
    span_count: int
    raw: bytes | None = None
    genai: GenAIColumns | None = None
    origin: RecordRange | None = None
    deadline: float | None = None
    tenant: str = DEFAULT_TENANT

    @classmethod
    def from_bytes(cls, raw: bytes, *, deadline: float | None = None) -> TraceBatch:
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(raw)
        except DecodeError as exc:
            raise BadRequestError(f"malformed OTLP protobuf: {exc}") from None
        return cls(request=request, span_count=count_spans(request), raw=raw, deadline=deadline)

    @classmethod
    def from_request(cls, request: ExportTraceServiceRequest) -> TraceBatch:
        return cls(request=request, span_count=count_spans(request))

    @classmethod
    def merge(cls, batches: Iterable[TraceBatch]) -> TraceBatch:
        """Concatenate batches. Serialized protobuf messages concatenate into the merge of
        their repeated fields, so merging raw bytes is exact and avoids a re-serialize.

        GenAI columns survive only when every part has them (else they would no longer
        line up with the spans); an origin only when all parts share it; the deadline is
        the earliest, so no client waiting on the merge is answered late."""
        parts = list(batches)
        if len(parts) == 1:
            return parts[0]
        tenants = {p.tenant for p in parts}
        if len(tenants) > 1:
            raise ValueError(f"cannot merge batches of different tenants: {sorted(tenants)}")
        request = ExportTraceServiceRequest()
        for part in parts:
            request.resource_spans.extend(part.request.resource_spans)
        raw: bytes | None = None
        if all(p.raw is not None for p in parts):
            raw = b"".join(p.raw for p in parts)  # type: ignore[misc]
        genai = None
        if all(p.genai is not None for p in parts):
            genai = GenAIColumns.concat([p.genai for p in parts])  # type: ignore[misc]
        origins = {p.origin for p in parts}
        deadlines = [p.deadline for p in parts if p.deadline is not None]
        return cls(request=request, span_count=sum(p.span_count for p in parts), raw=raw, genai=genai,
                   origin=origins.pop() if len(origins) == 1 else None,
                   deadline=min(deadlines) if deadlines else None, tenant=parts[0].tenant)

    def clone(self) -> TraceBatch:
        """A deep copy: the clone can be changed without the original seeing it.

        Carries every field; what the Collector's fanout does for a consumer that
        declares it mutates data."""
        request = ExportTraceServiceRequest()
        if self.raw is not None:
            request.ParseFromString(self.raw)  # faster than CopyFrom for upb messages
        else:
            request.CopyFrom(self.request)
        return TraceBatch(request=request, span_count=self.span_count, raw=self.raw,
                          genai=None if self.genai is None else self.genai.copy(),
                          origin=self.origin, deadline=self.deadline, tenant=self.tenant)

    def remaining(self, default: float) -> float:
        """Seconds left before the deadline, at most `default` (`default` without one)."""
        if self.deadline is None:
            return default
        return max(0.0, min(default, self.deadline - time.monotonic()))

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
