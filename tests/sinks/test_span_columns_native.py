"""The spans table's columns read in C from serialized OTLP (_otlpwire.c) are exactly the
columns the Python walk over the upb messages builds: same values, same text renderings,
same map order, same score rows. Captured payloads, the seed flows and the bench traffic
after the GenAI processors, and generated edge cases (every AnyValue kind, non-finite and
exponent doubles, repeated keys, enums out of range, events and links)."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from client_flows import FLOWS, load_flow
from otlp_fixtures import FIXTURES, fixture_payloads, load_batch
from tracehouse.bench import traffic
from tracehouse.bench.genai_processors import NOW_NS, Processors, plant_secrets
from tracehouse.core.auth import TENANT_ATTRIBUTE
from tracehouse.core.pdata import TraceBatch
from tracehouse.sinks.clickhouse import columns
from tracehouse.sinks.clickhouse.columns import BASE_COLUMNS, batch_to_columns, native_base_columns, python_base_columns
from tracehouse.sinks.clickhouse.scores import EVALUATION_EVENT

native = columns.native


def test_the_extension_is_built() -> None:
    # Without it the exporter silently takes the Python walk, ~20 µs a span slower: an install
    # that lost it (no compiler, a packaging slip) must fail here, not only in the bench.
    assert native is not None, "tracehouse.core._otlpwire was not built (gcc and Python headers?)"
    assert native.N_COLUMNS == len(BASE_COLUMNS)


def ordered(value: Any) -> Any:
    """Dicts as their item lists: ClickHouse's Map keeps the order it was given."""
    if isinstance(value, dict):
        return [(k, ordered(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [ordered(v) for v in value]
    return value


def assert_same_columns(batch: TraceBatch) -> int:
    py_scores: list[dict[str, Any]] = []
    expected = python_base_columns(batch, py_scores)
    got = native_base_columns(batch)
    c_scores: list[dict[str, Any]] = []
    columns._evaluation_scores(got, c_scores)
    for name, want, have in zip(BASE_COLUMNS, expected, got, strict=True):
        assert ordered(have) == ordered(want), name
    assert [_stable(r) for r in c_scores] == [_stable(r) for r in py_scores]
    return len(expected[0])


def _stable(score: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in score.items() if k != "UpdatedAt"}  # the time the row was made


pytestmark = pytest.mark.skipif(native is None, reason="the C extension is not built")


@pytest.mark.parametrize("path", fixture_payloads(), ids=lambda p: str(p.relative_to(FIXTURES)))
def test_captured_payloads(path: Path) -> None:
    assert assert_same_columns(load_batch(str(path.relative_to(FIXTURES)))) > 0


@pytest.mark.parametrize("flow", FLOWS)
def test_seed_flows_merged_as_the_batch_processor_does(flow: str) -> None:
    batches = load_flow(flow)
    assert assert_same_columns(TraceBatch.merge(batches)) == sum(b.item_count for b in batches)


def test_bench_traffic_after_the_genai_processors_and_redaction() -> None:
    procs = Processors()  # the shipped chain and redaction, as the bench runs them
    procs.start()
    processed = []
    for payload in traffic.pregenerate(seed=7, total_spans=2_000, spans_per_request=500, now_ns=NOW_NS):
        batch = TraceBatch.from_bytes(plant_secrets(payload.body))
        procs.chain(batch)
        procs.redaction.process(batch)
        processed.append(batch)
    merged = TraceBatch.merge(processed)
    assert merged.genai is not None
    assert assert_same_columns(merged) == merged.item_count
    names, data = batch_to_columns(merged, {}, [])
    assert names[:len(BASE_COLUMNS)] == list(BASE_COLUMNS) and len(data) == len(names)


def test_a_malformed_body_appends_no_row() -> None:
    good = load_batch("mlflow/http-protobuf.pb").requests[0].SerializeToString()
    data: list[list[Any]] = [[] for _ in BASE_COLUMNS]
    assert native.append_spans(good, data, TENANT_ATTRIBUTE) > 0
    rows = len(data[0])
    with pytest.raises(ValueError, match="malformed OTLP protobuf"):
        native.append_spans(good + good[: len(good) // 2], data, TENANT_ATTRIBUTE)
    assert {len(column) for column in data} == {rows}


# Generated requests: every AnyValue kind, nested, and the doubles whose text is subtle.
doubles = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, 1e16, 1e-5, 1.5e300, 5e-324, 0.1, 123456789012345.6, math.nan, -math.inf]),
)
scalars = st.one_of(
    st.builds(lambda s: AnyValue(string_value=s), st.text(max_size=12)),
    st.builds(lambda b: AnyValue(bool_value=b), st.booleans()),
    st.builds(lambda i: AnyValue(int_value=i), st.integers(-(2**63), 2**63 - 1)),
    st.builds(lambda d: AnyValue(double_value=d), doubles),
    st.builds(lambda b: AnyValue(bytes_value=b), st.binary(max_size=8)),
    st.just(AnyValue()),
)


def _array(values: list[AnyValue]) -> AnyValue:
    v = AnyValue()
    v.array_value.values.extend(values)
    return v


def _kvlist(pairs: list[tuple[str, AnyValue]]) -> AnyValue:
    v = AnyValue()
    v.kvlist_value.values.extend(KeyValue(key=k, value=x) for k, x in pairs)
    return v


keys = st.sampled_from(["a", "b", "gen_ai.request.model", "service.name", "ключ", ""])
any_values = st.recursive(scalars, lambda inner: st.one_of(
    st.builds(_array, st.lists(inner, max_size=3)),
    st.builds(_kvlist, st.lists(st.tuples(keys, inner), max_size=3)),
), max_leaves=8)
attributes = st.lists(st.one_of(st.builds(lambda k, v: KeyValue(key=k, value=v), keys, any_values),
                                st.builds(lambda k: KeyValue(key=k), keys)), max_size=5)
ids = st.one_of(st.binary(min_size=16, max_size=16), st.just(b""))
enum_values = st.sampled_from([0, 1, 2, 3, 5, 6, 99, -1])
times = st.integers(0, 2**64 - 1)


@st.composite
def requests(draw: Any) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(1, 2))):
        rs = request.resource_spans.add()
        rs.resource.attributes.extend(draw(attributes))
        if draw(st.booleans()):
            rs.resource.attributes.add(key=TENANT_ATTRIBUTE).value.string_value = "acme"
        for _ in range(draw(st.integers(0, 2))):
            ss = rs.scope_spans.add()
            ss.scope.name = draw(st.text(max_size=6))
            ss.scope.version = draw(st.text(max_size=4))
            for _ in range(draw(st.integers(0, 3))):
                span = ss.spans.add(trace_id=draw(ids), span_id=draw(ids)[:8], parent_span_id=draw(ids)[:8],
                                    trace_state=draw(st.text(max_size=5)), name=draw(st.text(max_size=8)),
                                    kind=draw(enum_values), start_time_unix_nano=draw(times),
                                    end_time_unix_nano=draw(times))
                span.attributes.extend(draw(attributes))
                span.status.code = draw(enum_values)
                span.status.message = draw(st.text(max_size=5))
                for _ in range(draw(st.integers(0, 2))):
                    event = span.events.add(time_unix_nano=draw(times) or 1,  # 0 is "now" for a score
                                            name=draw(st.sampled_from(["e", EVALUATION_EVENT])))
                    event.attributes.extend(draw(attributes))
                    if event.name == EVALUATION_EVENT:
                        event.attributes.add(key="gen_ai.evaluation.name").value.string_value = "relevance"
                        event.attributes.add(key="gen_ai.evaluation.score.value").value.double_value = 0.5
                for _ in range(draw(st.integers(0, 2))):
                    link = span.links.add(trace_id=draw(ids), span_id=draw(ids)[:8], trace_state=draw(st.text(max_size=3)))
                    link.attributes.extend(draw(attributes))
    return request


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(requests(), min_size=1, max_size=3))
def test_generated_requests(parts: list[ExportTraceServiceRequest]) -> None:
    assert_same_columns(TraceBatch.merge([TraceBatch.from_request(r) for r in parts]))


def test_doubles_render_as_the_collector_does() -> None:
    rng = random.Random(3)
    values = [rng.uniform(-1e20, 1e20) for _ in range(200)] + [2.0 ** e for e in range(-60, 70, 7)]
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add(trace_id=b"\1" * 16, span_id=b"\2" * 8)
    for i, v in enumerate(values):
        span.attributes.add(key=f"d{i}").value.double_value = v
    data: list[list[Any]] = [[] for _ in BASE_COLUMNS]
    native.append_spans(request.SerializeToString(), data, TENANT_ATTRIBUTE)
    texts = list(data[BASE_COLUMNS.index("SpanAttributes")][0].values())
    assert texts == [columns._format_double(v) for v in values]
    assert "e" not in "".join(texts)  # no exponent, as Go's FormatFloat(v, 'f', -1, 64)
