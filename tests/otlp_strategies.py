"""Hypothesis strategies for OTLP trace requests: every AnyValue kind, nested, the doubles
whose text is subtle, repeated keys, enums out of range, events (evaluation results among
them) and links. For tests that compare two readings of the same requests."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tracehouse.core.auth import TENANT_ATTRIBUTE
from tracehouse.sinks.clickhouse.scores import EVALUATION_EVENT

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
