"""The receivers' span checks run first in C on the wire form (core/_otlpwire.c `spans_valid`),
so a valid request is not walked from Python: the C answer is "every span passes" exactly
when validate.py's own checks find no problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otlp_fixtures import FIXTURES, fixture_payloads, load_batch
from otlp_strategies import requests
from tracehouse.core import _otlpwire
from tracehouse.core.pdata import TraceBatch
from tracehouse.ingest.otlp import validate
from tracehouse.ingest.otlp.validate import MAX_TIME_NS, drop_invalid

ID = b"\x01" * 16


def python_says_valid(request: ExportTraceServiceRequest) -> bool:
    return all(validate._problem(sp) is None for rs in request.resource_spans for ss in rs.scope_spans
               for sp in ss.spans)


@pytest.mark.parametrize("path", fixture_payloads(), ids=lambda p: str(p.relative_to(FIXTURES)))
def test_captured_payloads_are_valid_both_ways(path: Path) -> None:
    request = load_batch(str(path.relative_to(FIXTURES))).requests[0]
    assert _otlpwire.spans_valid(request.SerializeToString()) is True and python_says_valid(request)


def one_span(**fields: Any) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add(trace_id=ID, span_id=ID[:8], name="s")
    for key, value in fields.items():
        if key == "event_time":
            span.events.add(name="e", time_unix_nano=value)
        else:
            setattr(span, key, value)
    return request


@pytest.mark.parametrize("fields", [
    {}, {"trace_id": bytes(16)}, {"trace_id": ID[:15]}, {"span_id": bytes(8)}, {"span_id": ID[:9]},
    {"parent_span_id": ID[:8]}, {"parent_span_id": ID[:4]}, {"start_time_unix_nano": MAX_TIME_NS},
    {"start_time_unix_nano": MAX_TIME_NS + 1}, {"end_time_unix_nano": 2**64 - 1}, {"event_time": MAX_TIME_NS + 1},
    {"event_time": 5},
], ids=str)
def test_each_check_gives_the_same_answer(fields: dict[str, Any]) -> None:
    request = one_span(**fields)
    assert _otlpwire.spans_valid(request.SerializeToString()) is python_says_valid(request)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests(), st.booleans())
def test_generated_requests(request: ExportTraceServiceRequest, zero_first: bool) -> None:
    spans = [sp for rs in request.resource_spans for ss in rs.scope_spans for sp in ss.spans]
    if zero_first and spans:
        spans[0].span_id = bytes(8)
    assert _otlpwire.spans_valid(request.SerializeToString()) is python_says_valid(request)


def test_an_invalid_span_is_still_found_described_and_dropped() -> None:
    request = one_span(end_time_unix_nano=MAX_TIME_NS + 1)
    request.resource_spans[0].scope_spans[0].spans.add(trace_id=ID, span_id=b"\x02" * 8, name="ok")
    batch = TraceBatch.from_bytes(request.SerializeToString())
    rejected, message = drop_invalid(batch)
    assert rejected == 1 and "end_time_unix_nano" in message and batch.item_count == 1
