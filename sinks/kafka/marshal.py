"""OTLP requests as Kafka messages: the Collector's `otlp_proto` encoding.

A message value is a serialized `ExportTraceServiceRequest` (logs: `ExportLogsServiceRequest`,
metrics: `ExportMetricsServiceRequest`, on their own topics). With
`partition_traces_by_id`, each message holds exactly one trace (every span keeps its
resource and scope) and its key is the trace id in lowercase hex, as the Collector's
`traceutil.TraceIDToHexOrEmptyString` writes it, so one trace lands on one partition.
A message over the size limit is split in halves (resource spans, then scope spans,
then spans) until every part fits; a single span that cannot fit is a permanent error.

Logs and metrics: with `partition_{logs,metrics}_by_resource_attributes` (the Collector's
keys), each message holds one resource's data and its key is a hash of the resource's
attributes, so a service instance's data keeps to one partition (and a client's retry of
it to the same writer). Oversize messages are halved as the batch splits (by resources,
then by log records or data points).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka.record.default_records import DefaultRecordBatchBuilder
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from tracehouse.core.auth import TENANT_ATTRIBUTE
from tracehouse.core.component import Signal
from tracehouse.core.errors import PermanentError
from tracehouse.core.native import otlpwire
from tracehouse.core.pdata import BATCH_TYPES, OtlpBatch, TraceBatch, count_spans

_NO_HEADERS: list[tuple[str, bytes]] = []


@dataclass(frozen=True, slots=True)
class ProducedRecord:
    key: bytes | None
    value: bytes
    item_count: int

    @property
    def size(self) -> int:
        return message_size(self.key, self.value)


def message_size(key: bytes | None, value: bytes) -> int:
    """The size aiokafka checks against `max_request_size` (a record batch holding only this record)."""
    return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, _NO_HEADERS))


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return n, pos
        shift += 7


def with_resource_attribute(value: bytes, attribute: bytes) -> bytes:
    """`value` (a serialized Export{Trace,Logs,Metrics}ServiceRequest) with the serialized
    KeyValue `attribute` added to every resource, without re-serializing any item.

    Each `resource_spans` (`resource_logs`, `resource_metrics`) element (field 1) gets one more `resource` field appended; a
    message field that occurs twice is merged by every protobuf parser, so the resource
    gains the attribute. Only the elements' length prefixes are rewritten: the cost is a
    copy of the bytes, whatever the spans hold."""
    patch = _field(1, _field(1, attribute))  # ResourceSpans.resource { Resource.attributes }
    out = bytearray()
    pos = 0
    while pos < len(value):
        tag, body = _read_varint(value, pos)
        if tag != 0x0A:  # not resource_spans (the request has no other field): keep as it is
            raise ValueError(f"unexpected field tag {tag} in an OTLP export request")
        length, body = _read_varint(value, body)
        out += b"\x0a" + _varint(length + len(patch)) + value[body:body + length] + patch
        pos = body + length
    return bytes(out)


def trace_key(trace_id: bytes) -> bytes:
    """Hex trace id as ASCII; empty for an all-zero (or missing) id, like the Collector."""
    return trace_id.hex().encode() if any(trace_id) else b""


def to_messages(batch: TraceBatch, *, by_trace_id: bool, max_bytes: int) -> list[ProducedRecord]:
    if batch.span_count == 0:
        return []
    if not by_trace_id:
        # The wire bytes go out as they came in: nothing is re-serialized.
        return _fit(None, batch, max_bytes)
    traces = _split_by_trace(batch)
    if len(traces) == 1:
        # Already a single trace: send the received bytes as they are.
        return _fit(traces[0].key, batch, max_bytes)
    messages: list[ProducedRecord] = []
    for record in traces:
        if record.size <= max_bytes:
            messages.append(record)
        else:
            messages.extend(split_message(record, max_bytes))
    return messages


def _split_by_trace(batch: TraceBatch) -> list[ProducedRecord]:
    """One record per trace, in the order of each trace's first span."""
    if otlpwire is not None:
        try:
            return [ProducedRecord(trace_key(trace_id), value, spans)
                    for trace_id, value, spans in otlpwire.split_by_trace(batch.to_bytes())]
        except ValueError:  # a wire form the C reader does not take: the walk below
            pass
    groups = _group_by_trace(batch.resources())
    cache: dict[int, bytes] = {}
    return [ProducedRecord(trace_key(trace_id), batch.to_bytes() if len(groups) == 1 else _encode(parts, cache),
                           sum(len(spans) for _, _, spans in parts))
            for trace_id, parts in groups.items()]


def split_message(message: ProducedRecord, max_bytes: int, signal: Signal = Signal.TRACES) -> list[ProducedRecord]:
    """Split a message the broker refused as too large into parts of at most `max_bytes`."""
    if signal is not Signal.TRACES:
        return _split_batch(BATCH_TYPES[signal].from_bytes(message.value), message.key, max_bytes)
    request = ExportTraceServiceRequest()
    request.ParseFromString(message.value)
    return _split(request, message.key, max_bytes)


def resource_key(resource: Any) -> bytes:
    """16 bytes hashed from a resource's attributes (in key order; the tenant attribute
    excluded), like the Collector's partitioning by resource attributes."""
    digest = hashlib.blake2b(digest_size=16)
    for kv in sorted(resource.attributes, key=lambda kv: kv.key):
        if kv.key != TENANT_ATTRIBUTE:
            digest.update(kv.SerializeToString(deterministic=True))
    return digest.digest()


def to_signal_messages(batch: OtlpBatch[Any], *, by_resource: bool, max_bytes: int) -> list[ProducedRecord]:
    """Logs or metrics as messages: the batch whole (its wire bytes as they came in), or one
    message per resource keyed by its attributes."""
    if batch.item_count == 0:
        return []
    if not by_resource:
        return _split_batch(batch, None, max_bytes)
    groups: dict[bytes, list[Any]] = {}
    for resource in batch.resources():
        groups.setdefault(resource_key(resource.resource), []).append(resource)
    if len(groups) == 1:
        return _split_batch(batch, next(iter(groups)), max_bytes)
    messages: list[ProducedRecord] = []
    for key, resources in groups.items():
        request = batch.request_type()
        getattr(request, batch.resources_field).extend(resources)
        part = type(batch).from_request(request)
        if part.item_count:
            messages.extend(_split_batch(part, key, max_bytes))
    return messages


def _split_batch(batch: OtlpBatch[Any], key: bytes | None, max_bytes: int) -> list[ProducedRecord]:
    value = batch.to_bytes()
    if message_size(key, value) <= max_bytes:
        return [ProducedRecord(key, value, batch.item_count)]
    if batch.item_count < 2:
        item = batch.signal.items.removesuffix("s")
        raise PermanentError(f"a single {item} is {message_size(key, value)} bytes as a Kafka message (with its "
                             f"resource and scope), over producer.max_message_bytes ({max_bytes})")
    return [m for half in batch.split() for m in _split_batch(half, key, max_bytes)]


# A trace's spans as (resource_spans, scope_spans, spans) runs, in input order.
_Parts = list[tuple[ResourceSpans, ScopeSpans, list[Span]]]


def _group_by_trace(resources: Iterable[ResourceSpans]) -> dict[bytes, _Parts]:
    """One pass over the spans: for each trace, its spans under each (resource, scope)."""
    groups: dict[bytes, _Parts] = {}
    for rs in resources:
        for ss in rs.scope_spans:
            by_trace: dict[bytes, list[Span]] = {}
            for span in ss.spans:
                trace_id = span.trace_id
                run = by_trace.get(trace_id)
                if run is None:
                    by_trace[trace_id] = [span]
                else:
                    run.append(span)
            for trace_id, spans in by_trace.items():
                groups.setdefault(trace_id, []).append((rs, ss, spans))
    return groups


def _encode(parts: _Parts, cache: dict[int, bytes]) -> bytes:
    """Serialize one trace's request from serialized pieces.

    Serialized protobuf is a concatenation of (tag, length, bytes) fields, so a span's
    own bytes go in once, and each resource and scope is serialized once per request
    (`cache`) rather than copied into every trace's message. Field numbers are those of
    the stable OTLP v1 messages: ExportTraceServiceRequest.resource_spans = 1;
    ResourceSpans.resource = 1, .scope_spans = 2, .schema_url = 3; ScopeSpans.scope = 1,
    .spans = 2, .schema_url = 3.
    """
    out: list[bytes] = []
    rs_body: list[bytes] = []
    last_rs: ResourceSpans | None = None
    for rs, ss, spans in parts:
        if rs is not last_rs:
            # Spans of one trace under one resource stay in one ResourceSpans.
            if rs_body:
                out.append(_field(1, b"".join(rs_body)))
            rs_body = [_cached(cache, rs)]
            last_rs = rs
        ss_body = [_cached(cache, ss)]
        ss_body.extend(_field(2, span.SerializeToString()) for span in spans)
        rs_body.append(_field(2, b"".join(ss_body)))
    if rs_body:
        out.append(_field(1, b"".join(rs_body)))
    return b"".join(out)


def _cached(cache: dict[int, bytes], holder: ResourceSpans | ScopeSpans) -> bytes:
    """A ResourceSpans' resource and schema_url, or a ScopeSpans' scope and schema_url, serialized."""
    key = id(holder)
    piece = cache.get(key)
    if piece is None:
        inner = holder.resource if isinstance(holder, ResourceSpans) else holder.scope
        piece = _field(1, inner.SerializeToString())
        if holder.schema_url:
            piece += _field(3, holder.schema_url.encode())
        cache[key] = piece
    return piece


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2); numbers here are < 16, so the tag is one byte."""
    return bytes((number << 3 | 2,)) + _varint(len(payload)) + payload


def _varint(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _fit(key: bytes | None, batch: TraceBatch, max_bytes: int) -> list[ProducedRecord]:
    """The batch's bytes as they are when they fit; else split (the only use of the batch as one request)."""
    value = batch.to_bytes()
    if message_size(key, value) <= max_bytes:
        return [ProducedRecord(key, value, batch.span_count)]
    return _split(batch.request, key, max_bytes)


def _split(request: ExportTraceServiceRequest, key: bytes | None, max_bytes: int) -> list[ProducedRecord]:
    # ByteSize() is cheap next to serializing: serialize only parts that will fit.
    size = request.ByteSize() + message_size(key, b"")
    if size <= max_bytes:
        value = request.SerializeToString()
        if message_size(key, value) <= max_bytes:
            return [ProducedRecord(key, value, count_spans(request))]
    halves = _halve(request)
    if halves is None:
        raise PermanentError(f"a single span is {size} bytes as a Kafka message (with its resource and scope), "
                             f"over producer.max_message_bytes ({max_bytes})")
    return [m for half in halves for m in _split(half, key, max_bytes)]


def _halve(request: ExportTraceServiceRequest) -> tuple[ExportTraceServiceRequest, ExportTraceServiceRequest] | None:
    rss = request.resource_spans
    if len(rss) > 1:
        mid = len(rss) // 2
        return (ExportTraceServiceRequest(resource_spans=rss[:mid]),
                ExportTraceServiceRequest(resource_spans=rss[mid:]))
    if not rss:
        return None
    rs = rss[0]
    if len(rs.scope_spans) > 1:
        mid = len(rs.scope_spans) // 2
        return _with_scopes(rs, rs.scope_spans[:mid]), _with_scopes(rs, rs.scope_spans[mid:])
    if not rs.scope_spans or len(rs.scope_spans[0].spans) <= 1:
        return None
    ss = rs.scope_spans[0]
    mid = len(ss.spans) // 2
    return _with_spans(rs, ss, ss.spans[:mid]), _with_spans(rs, ss, ss.spans[mid:])


def _with_scopes(rs: ResourceSpans, scopes: list[ScopeSpans]) -> ExportTraceServiceRequest:
    out = ExportTraceServiceRequest()
    out_rs = out.resource_spans.add()
    out_rs.resource.CopyFrom(rs.resource)
    out_rs.schema_url = rs.schema_url
    out_rs.scope_spans.extend(scopes)
    return out


def _with_spans(rs: ResourceSpans, ss: ScopeSpans, spans: list[Span]) -> ExportTraceServiceRequest:
    out = ExportTraceServiceRequest()
    out_rs = out.resource_spans.add()
    out_rs.resource.CopyFrom(rs.resource)
    out_rs.schema_url = rs.schema_url
    out_ss = out_rs.scope_spans.add()
    out_ss.scope.CopyFrom(ss.scope)
    out_ss.schema_url = ss.schema_url
    out_ss.spans.extend(spans)
    return out
