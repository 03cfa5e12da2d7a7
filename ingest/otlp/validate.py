"""Per-span checks a receiver makes before accepting data.

A span whose ids are not the lengths OTLP requires (16-byte trace id, 8-byte span id,
parent empty or 8 bytes) or are all zero cannot be stored or linked. It is removed and
reported through `partial_success`, so the valid spans of the same request are kept and
the client does not retry them.
"""

from __future__ import annotations

from tracehouse.core.pdata import SPAN_ID_LEN, TRACE_ID_LEN, TraceBatch

_ZERO_TRACE = bytes(TRACE_ID_LEN)
_ZERO_SPAN = bytes(SPAN_ID_LEN)


def _problem(trace_id: bytes, span_id: bytes, parent: bytes) -> str | None:
    if len(trace_id) != TRACE_ID_LEN or trace_id == _ZERO_TRACE:
        return f"invalid trace_id {trace_id.hex()!r}: must be 16 bytes, not all zero"
    if len(span_id) != SPAN_ID_LEN or span_id == _ZERO_SPAN:
        return f"invalid span_id {span_id.hex()!r}: must be 8 bytes, not all zero"
    if parent and len(parent) != SPAN_ID_LEN:
        return f"invalid parent_span_id {parent.hex()!r}: must be empty or 8 bytes"
    return None


def drop_invalid_spans(batch: TraceBatch) -> tuple[int, str]:
    """Remove invalid spans in place. Returns (rejected count, message for partial_success)."""
    rejected = 0
    first_problem = ""
    for rs in batch.request.resource_spans:
        for ss in rs.scope_spans:
            bad = []
            for i, span in enumerate(ss.spans):
                problem = _problem(span.trace_id, span.span_id, span.parent_span_id)
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
