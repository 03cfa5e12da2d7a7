"""The unit of data flowing between pipeline stages: one batch type per signal.

A batch wraps one parsed OTLP export request (`ExportTraceServiceRequest`,
`ExportLogsServiceRequest` or `ExportMetricsServiceRequest`) and keeps the wire bytes it
came from, so stages that only forward (the sidecar's Kafka exporter) never re-serialize
and nobody materializes per-item Python objects unless it has to. Crossing from protobuf
(upb) into Python objects is the dominant cost on the hot path; see
../shared/reference/architecture-anchors.md §4.3.

The three requests share one shape (request -> resource_X -> scope_X -> items, with the
same field numbers), so `OtlpBatch` implements merging, cloning, splitting and sizes once
for all of them; `TraceBatch`, `LogBatch` and `MetricBatch` name the fields and how items
are counted: spans, log records, metric data points (what the Collector counts). Generic
stages (batch, memory_limiter, the exporter helper) read `item_count`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Generic, TypeVar

from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span

from tracehouse.core.component import Signal
from tracehouse.core.errors import BadRequestError
from tracehouse.core.genai import GenAIColumns

TRACE_ID_LEN = 16
SPAN_ID_LEN = 8

# The tenant of data sent without authentication and of rows stored before tenants existed
# (the key file calls it `default`); stored as the empty string.
DEFAULT_TENANT = ""

def count_spans(request: ExportTraceServiceRequest) -> int:
    return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)


def count_log_records(request: ExportLogsServiceRequest) -> int:
    return sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)


# The Metric `data` oneof: field name -> whether its data points are in `data_points`.
METRIC_KINDS = ("gauge", "sum", "histogram", "exponential_histogram", "summary")


def metric_points(metric: Metric) -> Any:
    """The data points of a metric (an empty tuple when its `data` is not set)."""
    kind = metric.WhichOneof("data")
    return getattr(metric, kind).data_points if kind else ()


def count_data_points(request: ExportMetricsServiceRequest) -> int:
    return sum(len(metric_points(m)) for rm in request.resource_metrics for sm in rm.scope_metrics
               for m in sm.metrics)


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


R = TypeVar("R", bound=Message)
B = TypeVar("B", bound="OtlpBatch[Any]")


@dataclass(slots=True)
class OtlpBatch(Generic[R]):
    """One or more OTLP export requests' worth of one signal, and what the pipeline knows of them.

    `requests` are the export requests, in order: one as received, several after a merge.
    A merge concatenates the list rather than copying spans into one message, which cost
    ~3.5 µs a span on bench traffic (BENCHMARKS.md). `request` is
    the batch as one message, built from the parts on first use; stages on the hot path
    walk `resources()` instead. `raw` is the serialized form while it is known to match;
    a stage that changes a request must call `mark_mutated()` so the bytes are rebuilt on
    demand.
    `item_count` counts spans, log records or data points. `origin` names the Kafka
    records the batch was read from. `deadline` (monotonic seconds) is when the earliest
    client waiting on these items stops waiting: exporters give up retrying before it.
    `tenant` owns every item of the batch: batches of different tenants are never merged.
    """

    requests: list[R]
    item_count: int
    raw: bytes | None = None
    origin: RecordRange | None = None
    deadline: float | None = None
    tenant: str = DEFAULT_TENANT

    signal: ClassVar[Signal]
    request_type: ClassVar[type[Message]]
    # The request's tree: request.<resources>[].<scopes>[].<items>[] (field number 1, 2, 2).
    resources_field: ClassVar[str]
    scopes_field: ClassVar[str]
    items_field: ClassVar[str]

    @staticmethod
    def count(request: Any) -> int:
        raise NotImplementedError

    @classmethod
    def from_bytes(cls: type[B], raw: bytes, *, deadline: float | None = None) -> B:
        request = cls.request_type()
        try:
            request.ParseFromString(raw)
        except DecodeError as exc:
            raise BadRequestError(f"malformed OTLP protobuf: {exc}") from None
        return cls(requests=[request], item_count=cls.count(request), raw=raw, deadline=deadline)

    @classmethod
    def from_request(cls: type[B], request: Any) -> B:
        return cls(requests=[request], item_count=cls.count(request))

    @classmethod
    def merge(cls: type[B], batches: Iterable[B]) -> B:
        """Concatenate batches. Serialized protobuf messages concatenate into the merge of
        their repeated fields, so merging raw bytes is exact and avoids a re-serialize.

        An origin survives only when all parts share it; the deadline is the earliest, so
        no client waiting on the merge is answered late."""
        parts = list(batches)
        if len(parts) == 1:
            return parts[0]
        tenants = {p.tenant for p in parts}
        if len(tenants) > 1:
            raise ValueError(f"cannot merge batches of different tenants: {sorted(tenants)}")
        raw: bytes | None = None
        if all(p.raw is not None for p in parts):
            raw = b"".join(p.raw for p in parts)  # type: ignore[misc]
        origins = {p.origin for p in parts}
        deadlines = [p.deadline for p in parts if p.deadline is not None]
        merged = cls(requests=[r for p in parts for r in p.requests], item_count=sum(p.item_count for p in parts), raw=raw,
                     origin=origins.pop() if len(origins) == 1 else None,
                     deadline=min(deadlines) if deadlines else None, tenant=parts[0].tenant)
        merged._merged_from(parts)
        return merged

    def _merged_from(self, parts: list[Any]) -> None:
        """Carry what a subclass attaches beyond the request (TraceBatch: GenAI columns)."""

    def clone(self: B) -> B:
        """A deep copy: the clone can be changed without the original seeing it.

        Carries every field; what the Collector's fanout does for a consumer that
        declares it mutates data."""
        request = self.request_type()
        if self.raw is not None:
            request.ParseFromString(self.raw)  # faster than CopyFrom for upb messages
        else:
            for part in self.requests:  # a merge of the parts' repeated fields, as the bytes are
                request.MergeFrom(part)
        copy = type(self)(requests=[request], item_count=self.item_count, raw=self.raw, origin=self.origin,
                          deadline=self.deadline, tenant=self.tenant)
        copy._cloned_from(self)
        return copy

    def _cloned_from(self, original: Any) -> None:
        """Copy what a subclass attaches beyond the request."""

    def split(self: B) -> tuple[B, B]:
        """Two halves of a batch of two items or more: by its resources when it has
        several (a merged batch's requests stay whole), else by its items (metrics: by
        data points, a metric's points shared out between two copies of the metric). The
        origin is dropped (its token names the whole batch), the deadline and tenant kept.
        What an exporter bisects with to find the item a destination refuses."""
        if self.item_count < 2:
            raise ValueError(f"a batch of fewer than two {self.signal.items} cannot be split")
        resources = list(self.resources())
        first, second = self.request_type(), self.request_type()
        if len(resources) > 1:
            half = len(resources) // 2
            getattr(first, self.resources_field).extend(resources[:half])
            getattr(second, self.resources_field).extend(resources[half:])
        if not self.count(first) or not self.count(second):  # one resource, or all items on one side
            first, second = self._split_items(resources, self.item_count // 2)
        halves = [type(self)(requests=[r], item_count=self.count(r), deadline=self.deadline, tenant=self.tenant)
                  for r in (first, second)]
        self._split_into(halves[0], halves[1])
        return halves[0], halves[1]

    def _split_items(self, resources: list[Any], mid: int) -> tuple[Any, Any]:
        """The first `mid` items to one request, the rest to another; every resource and
        scope is copied to the side(s) holding its items."""
        out = (self.request_type(), self.request_type())
        seen = 0
        for rs in resources:
            parts: list[Any] = [None, None]
            for ss in getattr(rs, self.scopes_field):
                scopes: list[Any] = [None, None]
                for item in getattr(ss, self.items_field):
                    for side, piece, n in self._pieces(item, seen, mid):
                        if scopes[side] is None:
                            if parts[side] is None:
                                parts[side] = getattr(out[side], self.resources_field).add()
                                parts[side].resource.CopyFrom(rs.resource)
                                parts[side].schema_url = rs.schema_url
                            scope = getattr(parts[side], self.scopes_field).add()
                            scope.scope.CopyFrom(ss.scope)
                            scope.schema_url = ss.schema_url
                            scopes[side] = scope
                        getattr(scopes[side], self.items_field).append(piece)
                        seen += n
        return out

    def _pieces(self, item: Any, seen: int, mid: int) -> list[tuple[int, Any, int]]:
        """(side, item or part of it, items it counts) for one item, `seen` items before it."""
        return [(0 if seen < mid else 1, item, 1)]

    def _split_into(self, first: Any, second: Any) -> None:
        """Share out what a subclass attaches beyond the request between the two halves."""

    def remaining(self, default: float) -> float:
        """Seconds left before the deadline, at most `default` (`default` without one)."""
        if self.deadline is None:
            return default
        return max(0.0, min(default, self.deadline - time.monotonic()))

    @property
    def request(self) -> R:
        """The batch as one request. A merged batch's requests are copied into one here, on
        first use, and the batch keeps that one from then on."""
        requests = self.requests
        if len(requests) != 1:
            merged = self.request_type()
            getattr(merged, self.resources_field).extend(self.resources())
            self.requests = requests = [merged]
        return requests[0]

    @property
    def nbytes(self) -> int:
        """Wire size; what queues and memory limits are measured in."""
        return len(self.raw) if self.raw is not None else sum(r.ByteSize() for r in self.requests)

    def request_bytes(self, request: R) -> bytes:
        """One of the batch's requests on the wire: the bytes received when the batch is that
        one request unchanged, else serialized now. Received bytes may repeat a singular
        field (a reader must take the last one, as protobuf does)."""
        if self.raw is not None and len(self.requests) == 1:
            return self.raw
        return request.SerializeToString()

    def to_bytes(self) -> bytes:
        if self.raw is None:
            self.raw = self._serialized()
        return self.raw

    def _serialized(self) -> bytes:
        # Serialized requests concatenate into the serialized merge of their resources.
        return b"".join(r.SerializeToString() for r in self.requests)

    def mark_mutated(self) -> None:
        self.raw = None

    def resources(self) -> Iterator[Any]:
        """Every request's resource_spans / resource_logs / resource_metrics, in order."""
        field = self.resources_field
        for request in self.requests:
            yield from getattr(request, field)


@dataclass(slots=True)
class TraceBatch(OtlpBatch[ExportTraceServiceRequest]):
    """Spans. `genai` holds the GenAI processors' column-wise results, aligned with
    `iter_spans()` order, so later stages never rescan attributes; it survives a merge
    only when every part has it (else it would no longer line up with the spans), and is
    sliced alongside a split."""

    genai: GenAIColumns | None = None

    signal: ClassVar[Signal] = Signal.TRACES
    request_type: ClassVar[type[Message]] = ExportTraceServiceRequest
    resources_field: ClassVar[str] = "resource_spans"
    scopes_field: ClassVar[str] = "scope_spans"
    items_field: ClassVar[str] = "spans"
    count = staticmethod(count_spans)

    @property
    def span_count(self) -> int:
        return self.item_count

    @span_count.setter
    def span_count(self, value: int) -> None:
        self.item_count = value

    def _merged_from(self, parts: list[Any]) -> None:
        if all(p.genai is not None for p in parts):
            self.genai = GenAIColumns.concat([p.genai for p in parts])

    def _cloned_from(self, original: Any) -> None:
        self.genai = None if original.genai is None else original.genai.copy()

    def _split_into(self, first: Any, second: Any) -> None:
        if self.genai is None:
            return
        offset = 0
        for half in (first, second):
            n = half.item_count
            genai = GenAIColumns(size=n)
            for f in fields(GenAIColumns):
                if f.name != "size":
                    setattr(genai, f.name, getattr(self.genai, f.name)[offset:offset + n])
            half.genai = genai
            offset += n

    def iter_spans(self) -> Iterator[tuple[ResourceSpans, Any, Span]]:
        """(resource_spans, scope_spans, span) in wire order."""
        for rs in self.resources():
            for ss in rs.scope_spans:
                for span in ss.spans:
                    yield rs, ss, span


@dataclass(slots=True)
class LogBatch(OtlpBatch[ExportLogsServiceRequest]):
    """Log records."""

    signal: ClassVar[Signal] = Signal.LOGS
    request_type: ClassVar[type[Message]] = ExportLogsServiceRequest
    resources_field: ClassVar[str] = "resource_logs"
    scopes_field: ClassVar[str] = "scope_logs"
    items_field: ClassVar[str] = "log_records"
    count = staticmethod(count_log_records)

    @property
    def record_count(self) -> int:
        return self.item_count


@dataclass(slots=True)
class MetricBatch(OtlpBatch[ExportMetricsServiceRequest]):
    """Metrics, counted in data points (a metric is one name with any number of them)."""

    signal: ClassVar[Signal] = Signal.METRICS
    request_type: ClassVar[type[Message]] = ExportMetricsServiceRequest
    resources_field: ClassVar[str] = "resource_metrics"
    scopes_field: ClassVar[str] = "scope_metrics"
    items_field: ClassVar[str] = "metrics"
    count = staticmethod(count_data_points)

    @property
    def point_count(self) -> int:
        return self.item_count

    def _pieces(self, item: Any, seen: int, mid: int) -> list[tuple[int, Any, int]]:
        points = metric_points(item)
        n = len(points)
        if seen >= mid or seen + n <= mid:
            return [(0 if seen < mid else 1, item, n)]
        # The metric straddles the middle: each side gets a copy holding its share of the points.
        kind = item.WhichOneof("data")
        cut = mid - seen
        out = []
        for side, share in ((0, points[:cut]), (1, points[cut:])):
            piece = Metric()
            piece.CopyFrom(item)
            target = getattr(piece, kind).data_points
            del target[:]
            target.extend(share)
            out.append((side, piece, len(share)))
        return out


# The name of an event sent as a log record by SDKs before `LogRecord.event_name` (the OTel
# Python SDK up to 1.29), as an attribute.
EVENT_NAME_ATTRIBUTE = "event.name"


def log_event_name(record: LogRecord) -> str:
    """The event a log record is: its `event_name`, else its `event.name` attribute ("" for
    a plain log line)."""
    name: str = record.event_name
    if name:
        return name
    for kv in record.attributes:
        if kv.key == EVENT_NAME_ATTRIBUTE:
            return str(kv.value.string_value)
    return ""


BATCH_TYPES: dict[Signal, type[OtlpBatch[Any]]] = {
    Signal.TRACES: TraceBatch, Signal.LOGS: LogBatch, Signal.METRICS: MetricBatch}


def any_value(value: Any) -> AnyValue:
    """A Python value as an OTLP AnyValue (sequences become arrays, mappings kvlists, None
    the empty value: what `to_python` reads an empty AnyValue as)."""
    if value is None:
        return AnyValue()
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
