"""genai_normalize reads span attributes in C from the request's wire form (plain values)
where the package has the C module, and through upb otherwise: the two readings are the same
values, and normalizing with either gives the same GenAI columns, on the captured payloads,
the seed flows, the bench traffic and generated requests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from client_flows import FLOWS, load_flow
from otlp_fixtures import FIXTURES, fixture_payloads, load_batch
from otlp_strategies import requests
from tracehouse.bench import traffic
from tracehouse.bench.genai_processors import NOW_NS
from tracehouse.core import _otlpwire
from tracehouse.core.anyvalue import to_python
from tracehouse.core.component import ComponentID, Kind, Settings
from tracehouse.core.genai import GenAIColumns
from tracehouse.core.pdata import TraceBatch
from tracehouse.core.testing import TracesSink
from tracehouse.processors.genai_normalize import processor as normalize
from tracehouse.processors.genai_normalize.config import GenAINormalizeConfig


def columns(parts: list[TraceBatch], *, native: bool, monkeypatch: pytest.MonkeyPatch) -> GenAIColumns:
    with monkeypatch.context() as patch:
        if not native:
            patch.setattr(normalize, "attribute_values", None)
        processor = normalize.NormalizeProcessor(Settings(ComponentID("genai_normalize"), Kind.PROCESSOR, "traces"),
                                                 GenAINormalizeConfig(), TracesSink())
        batch = TraceBatch.merge([TraceBatch.from_bytes(p.to_bytes()) for p in parts])
        return copy.deepcopy(processor.process(batch))


def cases() -> list[tuple[str, list[TraceBatch]]]:
    payloads = traffic.pregenerate(seed=9, total_spans=1_000, spans_per_request=250, now_ns=NOW_NS)
    out = [("bench", [TraceBatch.from_bytes(p.body) for p in payloads])]
    out += [(str(p.relative_to(FIXTURES)), [load_batch(str(p.relative_to(FIXTURES)))]) for p in fixture_payloads()]
    out += [(flow, load_flow(flow)) for flow in FLOWS]
    return out


@pytest.mark.parametrize(("name", "parts"), cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_both_readings_give_the_same_genai_columns(name: str, parts: list[TraceBatch],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    with_c = columns(parts, native=True, monkeypatch=monkeypatch)
    with_upb = columns(parts, native=False, monkeypatch=monkeypatch)
    assert with_c == with_upb
    assert any(with_c.span_kind), "the case exercises the normalizer"


def comparable(value: Any) -> Any:
    """Map order kept, types kept, floats by repr (NaN equals NaN)."""
    if isinstance(value, dict):
        return [(k, comparable(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return (type(value).__name__, repr(value) if isinstance(value, float) else value)


def assert_same_values(request: ExportTraceServiceRequest) -> None:
    expected = [{kv.key: to_python(kv.value) for kv in sp.attributes}
                for rs in request.resource_spans for ss in rs.scope_spans for sp in ss.spans]
    got = _otlpwire.attribute_values(request.SerializeToString())
    assert comparable(got) == comparable(expected)


@pytest.mark.parametrize("path", fixture_payloads(), ids=lambda p: str(p.relative_to(FIXTURES)))
def test_the_c_reading_is_to_python_of_every_attribute(path: Path) -> None:
    assert_same_values(load_batch(str(path.relative_to(FIXTURES))).requests[0])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_the_c_reading_of_generated_requests(request: Any) -> None:
    assert_same_values(request)
