"""Per-span checks a receiver makes before accepting data.

A span that cannot be stored or linked is removed and reported through
`partial_success`, so the valid spans of the same request are kept and the client does
not retry them (the OTLP spec's answer to data the server will never accept):

- ids that are not the lengths OTLP requires (16-byte trace id, 8-byte span id, parent
  empty or 8 bytes) or are all zero;
- a start, end or event time after 2262-04-11T23:47:16.854775807Z. OTLP times are
  fixed64 nanoseconds, but ClickHouse's DateTime64(9) (the Collector's otel_traces
  schema) holds them as an Int64: a later time can never be inserted, and letting it
  through would fail the insert of every span batched with it. Such a span is rejected,
  not clamped: moving a time would store a span that says something else than what the
  client sent, and the client is told which field was refused.
"""

from __future__ import annotations

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tracehouse.core.pdata import SPAN_ID_LEN, TRACE_ID_LEN, TraceBatch

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
    rejected = 0
    first_problem = ""
    for rs in batch.request.resource_spans:
        for ss in rs.scope_spans:
            bad = []
            for i, span in enumerate(ss.spans):
                problem = _problem(span)
                if problem:
                    bad.append(i)
                    if not first_problem:
                        first_problem = f"span {span.name!r}: {problem}"
            for i in reversed(bad):
                del ss.spans[i]
            rejected += len(bad)
    if not rejected:
        return 0, ""
    batch.span_count -= rejected
    batch.mark_mutated()
    more = f" (and {rejected - 1} more)" if rejected > 1 else ""
    return rejected, f"{rejected} span(s) rejected: {first_problem}{more}"
