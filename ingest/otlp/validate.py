"""Per-item checks a receiver makes before accepting data (spans, log records, data points).

An item that cannot be stored or linked is removed and reported through
`partial_success`, so the valid items of the same request are kept and the client does
not retry them (the OTLP spec's answer to data the server will never accept).

Spans:

- ids that are not the lengths OTLP requires (16-byte trace id, 8-byte span id, parent
  empty or 8 bytes) or are all zero;
- a start, end or event time after 2262-04-11T23:47:16.854775807Z. OTLP times are
  fixed64 nanoseconds, but ClickHouse's DateTime64(9) (the Collector's otel_traces
  schema) holds them as an Int64: a later time can never be inserted, and letting it
  through would fail the insert of every span batched with it. Such a span is rejected,
  not clamped: moving a time would store a span that says something else than what the
  client sent, and the client is told which field was refused.

Log records: a trace_id that is neither empty nor 16 bytes, a span_id neither empty nor 8
bytes (all-zero ids mean "none", as in the Collector, and are stored empty); a time or an
observed time past 2262. Metric data points (and their exemplars): a start time, time or
exemplar time past 2262, exemplar ids of the wrong length.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tracehouse.core.component import Signal
from tracehouse.core.native import otlpwire
from tracehouse.core.pdata import SPAN_ID_LEN, TRACE_ID_LEN, OtlpBatch, TraceBatch, metric_points

# The same checks in C (core/native.py); without it every request is walked.
spans_valid: Callable[[bytes], bool] | None = otlpwire.spans_valid if otlpwire else None

_ZERO_TRACE = bytes(TRACE_ID_LEN)
_ZERO_SPAN = bytes(SPAN_ID_LEN)
# The latest time DateTime64(9) stores: 2**63 - 1 ns after the epoch (2262-04-11).
MAX_TIME_NS = 2**63 - 1


def _time_problem(field: str, value: int) -> str:
    return (f"{field} {value} is after 2262-04-11T23:47:16Z, the latest time that can be stored "
            f"(nanoseconds since the epoch must fit an Int64)")


def _problem(span: Span) -> str | None:
    trace_id, span_id, parent = span.trace_id, span.span_id, span.parent_span_id
    if len(trace_id) != TRACE_ID_LEN or trace_id == _ZERO_TRACE:
        return f"invalid trace_id {trace_id.hex()!r}: must be 16 bytes, not all zero"
    if len(span_id) != SPAN_ID_LEN or span_id == _ZERO_SPAN:
        return f"invalid span_id {span_id.hex()!r}: must be 8 bytes, not all zero"
    if parent and len(parent) != SPAN_ID_LEN:
        return f"invalid parent_span_id {parent.hex()!r}: must be empty or 8 bytes"
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    if start > MAX_TIME_NS:
        return _time_problem("start_time_unix_nano", start)
    if end > MAX_TIME_NS:
        return _time_problem("end_time_unix_nano", end)
    for i, event in enumerate(span.events):
        if event.time_unix_nano > MAX_TIME_NS:
            return _time_problem(f"events[{i}].time_unix_nano", event.time_unix_nano)
    return None


def drop_invalid_spans(batch: TraceBatch) -> tuple[int, str]:
    """Remove invalid spans in place. Returns (rejected count, message for partial_success)."""
    return drop_invalid(batch)


def _optional_id(field: str, value: bytes, length: int) -> str | None:
    if value and len(value) != length:
        return f"invalid {field} {value.hex()!r}: must be empty or {length} bytes"
    return None


def _log_problem(record: LogRecord) -> str | None:
    problem = (_optional_id("trace_id", record.trace_id, TRACE_ID_LEN)
               or _optional_id("span_id", record.span_id, SPAN_ID_LEN))
    if problem:
        return problem
    if record.time_unix_nano > MAX_TIME_NS:
        return _time_problem("time_unix_nano", record.time_unix_nano)
    if record.observed_time_unix_nano > MAX_TIME_NS:
        return _time_problem("observed_time_unix_nano", record.observed_time_unix_nano)
    return None


def _point_problem(point: Any) -> str | None:
    for field in ("start_time_unix_nano", "time_unix_nano"):
        value = getattr(point, field)
        if value > MAX_TIME_NS:
            return _time_problem(field, value)
    for i, exemplar in enumerate(getattr(point, "exemplars", ())):
        if exemplar.time_unix_nano > MAX_TIME_NS:
            return _time_problem(f"exemplars[{i}].time_unix_nano", exemplar.time_unix_nano)
        problem = (_optional_id(f"exemplars[{i}].trace_id", exemplar.trace_id, TRACE_ID_LEN)
                   or _optional_id(f"exemplars[{i}].span_id", exemplar.span_id, SPAN_ID_LEN))
        if problem:
            return problem
    return None


def _drop(container: Any, problem: Callable[[Any], str | None], name: Callable[[Any], str],
          first: list[str]) -> int:
    """Delete the items of a repeated field that have a problem; the first one is described."""
    bad = []
    for i, item in enumerate(container):
        found = problem(item)
        if found:
            bad.append(i)
            if not first:
                first.append(f"{name(item)}: {found}")
    for i in reversed(bad):
        del container[i]
    return len(bad)


def _drop_spans(batch: Any, first: list[str]) -> int:
    return sum(_drop(ss.spans, _problem, lambda s: f"span {s.name!r}", first)
               for rs in batch.resources() for ss in rs.scope_spans)


def _drop_log_records(batch: Any, first: list[str]) -> int:
    return sum(_drop(sl.log_records, _log_problem, lambda r: "log record", first)
               for rl in batch.resources() for sl in rl.scope_logs)


def _drop_data_points(batch: Any, first: list[str]) -> int:
    rejected = 0
    for rm in batch.resources():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                points = metric_points(metric)
                if points:
                    label = f"metric {metric.name!r}"
                    rejected += _drop(points, _point_problem, lambda _point: label, first)
    return rejected


_DROPPERS: dict[Signal, Callable[[Any, list[str]], int]] = {
    Signal.TRACES: _drop_spans, Signal.LOGS: _drop_log_records, Signal.METRICS: _drop_data_points}
_NOUN = {Signal.TRACES: "span(s)", Signal.LOGS: "log record(s)", Signal.METRICS: "data point(s)"}


def drop_invalid(batch: OtlpBatch[Any]) -> tuple[int, str]:
    """Remove the items of any signal that can never be stored, in place. Returns
    (rejected count, message for partial_success)."""
    if batch.signal is Signal.TRACES and spans_valid is not None and batch.raw is not None:
        try:
            if spans_valid(batch.raw):  # the same checks in C on the wire form: no walk for a valid request
                return 0, ""
        except ValueError:  # bytes upb took and the C reader does not: the walk decides
            pass
    first: list[str] = []
    rejected = _DROPPERS[batch.signal](batch, first)
    if not rejected:
        return 0, ""
    batch.item_count -= rejected
    batch.mark_mutated()
    more = f" (and {rejected - 1} more)" if rejected > 1 else ""
    return rejected, f"{rejected} {_NOUN[batch.signal]} rejected: {first[0]}{more}"
