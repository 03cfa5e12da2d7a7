"""OTLP/JSON codec: real fixtures, the spec's edge cases, malformed input, a round-trip property."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from google.rpc import code_pb2, error_details_pb2, status_pb2
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    EntityRef,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from tracehouse.core.errors import BadRequestError
from tracehouse.ingest.otlp.encoding import (
    MAX_NESTING_DEPTH,
    decode_json,
    encode_export_response,
    encode_json,
    encode_status,
)

from otlp_fixtures import FIXTURES  # noqa: E402
JSON_FIXTURE = FIXTURES / "otel-js-vercel-ai-style" / "http-json.otlp.json"
PB_FIXTURES = sorted(FIXTURES.glob("*/*.pb"))

TRACE_HEX = "52aed636f507702527ef4b00ae12f4f9"
SPAN_HEX = "fd8f76e86b045671"


def _body(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def _request(span: dict[str, Any]) -> bytes:
    """One span in the smallest envelope."""
    return _body({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})


def _only_span(request: ExportTraceServiceRequest) -> Span:
    spans = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert len(spans) == 1
    return spans[0]


def _decode_span(span: dict[str, Any]) -> Span:
    return _only_span(decode_json(_request(span)))


def _attr(value: dict[str, Any]) -> AnyValue:
    return _decode_span({"attributes": [{"key": "k", "value": value}]}).attributes[0].value


def _bad(body: bytes) -> str:
    with pytest.raises(BadRequestError) as info:
        decode_json(body)
    return str(info.value)


# --- real payloads -------------------------------------------------------------------------


def test_json_fixture_values() -> None:
    request = decode_json(JSON_FIXTURE.read_bytes())
    (rs,) = request.resource_spans
    assert rs.resource.attributes[0].key == "service.name"
    assert rs.resource.attributes[0].value.string_value == "node-ai-app"
    (ss,) = rs.scope_spans
    assert ss.scope.name == "ai"
    child, parent = ss.spans
    assert child.trace_id == bytes.fromhex(TRACE_HEX) and len(child.trace_id) == 16
    assert child.span_id == bytes.fromhex(SPAN_HEX) and len(child.span_id) == 8
    assert child.parent_span_id == parent.span_id == bytes.fromhex("fcabc958b50572e8")
    assert parent.parent_span_id == b""
    assert child.flags == 257
    assert child.kind == Span.SPAN_KIND_INTERNAL == 1
    assert child.start_time_unix_nano == 1795364734925000000
    assert child.end_time_unix_nano == 1795364734925268129  # not rounded through a float
    assert parent.end_time_unix_nano == 1795364734926300134
    attrs = {kv.key: kv.value for kv in child.attributes}
    assert attrs["gen_ai.usage.input_tokens"].WhichOneof("value") == "int_value"
    assert attrs["gen_ai.usage.input_tokens"].int_value == 42
    assert attrs["ai.response.text"].string_value == "Rainy."
    assert child.HasField("status") and child.status.code == Status.STATUS_CODE_UNSET


def test_json_fixture_matches_its_protobuf_twin() -> None:
    request = decode_json(JSON_FIXTURE.read_bytes())
    assert decode_json(encode_json(request)) == request
    twin = ExportTraceServiceRequest.FromString(request.SerializeToString())
    assert twin == request
    assert decode_json(encode_json(twin)).SerializeToString() == request.SerializeToString()


@pytest.mark.parametrize("path", PB_FIXTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_protobuf_fixture_round_trips_through_json(path: Path) -> None:
    raw = path.read_bytes()
    parsed = ExportTraceServiceRequest.FromString(raw)
    decoded = decode_json(encode_json(parsed))
    assert decoded == parsed
    assert decoded.SerializeToString() == raw


@pytest.mark.parametrize("path", PB_FIXTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_human_decoding_of_fixture_decodes_to_the_same_message(path: Path) -> None:
    # The *.decoded.json files use enum names ("SPAN_KIND_CLIENT"): the lenient path.
    decoded = decode_json(path.with_suffix(".decoded.json").read_bytes())
    assert decoded == ExportTraceServiceRequest.FromString(path.read_bytes())


# --- spec edge cases -----------------------------------------------------------------------


def test_uppercase_hex_ids() -> None:
    span = _decode_span(
        {"traceId": TRACE_HEX.upper(), "spanId": SPAN_HEX.upper(), "parentSpanId": "FCABC958b50572E8"}
    )
    assert span.trace_id == bytes.fromhex(TRACE_HEX)
    assert span.span_id == bytes.fromhex(SPAN_HEX)
    assert span.parent_span_id == bytes.fromhex("fcabc958b50572e8")


@pytest.mark.parametrize("parent", ["", None])
def test_empty_or_null_parent_span_id(parent: str | None) -> None:
    assert _decode_span({"spanId": SPAN_HEX, "parentSpanId": parent}).parent_span_id == b""


def test_id_length_is_not_validated_here() -> None:
    span = _decode_span({"traceId": "ab" * 15, "spanId": "cd" * 9})
    assert len(span.trace_id) == 15 and len(span.span_id) == 9


def test_int64_as_number_or_string() -> None:
    as_string = _decode_span({"startTimeUnixNano": "1795364734925268129", "flags": "257"})
    as_number = _decode_span({"startTimeUnixNano": 1795364734925268129, "flags": 257})
    assert as_string == as_number
    assert as_number.start_time_unix_nano == 1795364734925268129
    assert _attr({"intValue": "42"}) == _attr({"intValue": 42}) == AnyValue(int_value=42)


@pytest.mark.parametrize(
    "value", [-1, -(2**63), 2**63 - 1, 0, "-9223372036854775808", "9223372036854775807"]
)
def test_int_value_extremes(value: int | str) -> None:
    assert _attr({"intValue": value}).int_value == int(value)


@pytest.mark.parametrize("value", ["1e3", 1e3, "1000.0", "+1000", "0001000"])
def test_integers_in_other_notations(value: Any) -> None:
    assert _attr({"intValue": value}).int_value == 1000


def test_uint64_max_timestamp() -> None:
    assert _decode_span({"endTimeUnixNano": str(2**64 - 1)}).end_time_unix_nano == 2**64 - 1


@pytest.mark.parametrize(
    "kind, expected",
    [(2, Span.SPAN_KIND_SERVER), ("SPAN_KIND_SERVER", Span.SPAN_KIND_SERVER), (0, 0), (99, 99)],
)
def test_enum_as_integer_or_name(kind: Any, expected: int) -> None:
    # Open proto3 enum: unknown numbers are kept, as protobuf does.
    assert _decode_span({"kind": kind}).kind == expected


def test_status_code_and_message() -> None:
    by_number = _decode_span({"status": {"code": 2, "message": "boom"}})
    by_name = _decode_span({"status": {"code": "STATUS_CODE_ERROR", "message": "boom"}})
    assert by_number == by_name
    assert by_number.status.code == Status.STATUS_CODE_ERROR
    assert by_number.status.message == "boom"


def test_unknown_fields_ignored_at_every_level() -> None:
    extra: dict[str, Any] = {"futureField": {"nested": [1, 2, {"x": None}]}, "anotherOne": "v"}
    doc = {
        **extra,
        "resourceSpans": [
            {
                **extra,
                "resource": {
                    **extra,
                    "attributes": [{**extra, "key": "a", "value": {**extra, "intValue": 1}}],
                },
                "scopeSpans": [
                    {
                        **extra,
                        "scope": {**extra, "name": "s"},
                        "spans": [
                            {
                                **extra,
                                "traceId": TRACE_HEX,
                                "events": [{**extra, "name": "e"}],
                                "links": [{**extra, "spanId": SPAN_HEX}],
                                "status": {**extra, "code": 1},
                            }
                        ],
                    }
                ],
            }
        ],
    }
    expected = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=[KeyValue(key="a", value=AnyValue(int_value=1))]),
                scope_spans=[
                    ScopeSpans(
                        scope=InstrumentationScope(name="s"),
                        spans=[
                            Span(
                                trace_id=bytes.fromhex(TRACE_HEX),
                                events=[Span.Event(name="e")],
                                links=[Span.Link(span_id=bytes.fromhex(SPAN_HEX))],
                                status=Status(code=Status.STATUS_CODE_OK),
                            )
                        ],
                    )
                ],
            )
        ]
    )
    assert decode_json(_body(doc)) == expected


def test_snake_case_field_names_accepted_like_the_collector() -> None:
    span = _decode_span({"trace_id": TRACE_HEX, "start_time_unix_nano": "5", "dropped_attributes_count": 3})
    assert span.trace_id == bytes.fromhex(TRACE_HEX)
    assert span.start_time_unix_nano == 5 and span.dropped_attributes_count == 3


@pytest.mark.parametrize(
    "text, check",
    [
        ("NaN", math.isnan),
        ("Infinity", lambda v: v == math.inf),
        ("-Infinity", lambda v: v == -math.inf),
        ("0.25", lambda v: v == 0.25),  # quoted numbers are allowed too
    ],
)
def test_double_value_special_strings(text: str, check: Any) -> None:
    assert check(_attr({"doubleValue": text}).double_value)


def test_double_value_numbers() -> None:
    assert _attr({"doubleValue": 0.2}).double_value == 0.2
    assert _attr({"doubleValue": 3}).double_value == 3.0
    assert _attr({"doubleValue": -0.0}).double_value == 0.0


@pytest.mark.parametrize("encoded", ["AAEC/w==", "AAEC/w", "AAEC_w=="])  # std, unpadded, URL-safe
def test_bytes_value_is_base64(encoded: str) -> None:
    assert _attr({"bytesValue": encoded}).bytes_value == b"\x00\x01\x02\xff"


def test_bool_and_empty_values() -> None:
    assert _attr({"boolValue": False}) == AnyValue(bool_value=False)
    assert _attr({"stringValue": ""}).WhichOneof("value") == "string_value"  # presence kept
    assert _attr({}).WhichOneof("value") is None


def test_nested_array_and_kvlist_values() -> None:
    value = _attr(
        {
            "arrayValue": {
                "values": [
                    {"stringValue": "a"},
                    {"intValue": "7"},
                    {"kvlistValue": {"values": [{"key": "inner", "value": {"arrayValue": {"values": []}}}]}},
                ]
            }
        }
    )
    expected = AnyValue(
        array_value=ArrayValue(
            values=[
                AnyValue(string_value="a"),
                AnyValue(int_value=7),
                AnyValue(
                    kvlist_value=KeyValueList(
                        values=[KeyValue(key="inner", value=AnyValue(array_value=ArrayValue()))]
                    )
                ),
            ]
        )
    )
    assert value == expected


def test_links_with_hex_ids() -> None:
    span = _decode_span(
        {
            "links": [
                {"traceId": TRACE_HEX.upper(), "spanId": SPAN_HEX, "traceState": "k=v", "flags": 256,
                 "attributes": [{"key": "a", "value": {"boolValue": True}}], "droppedAttributesCount": 1}
            ]
        }
    )
    (link,) = span.links
    assert link.trace_id == bytes.fromhex(TRACE_HEX) and link.span_id == bytes.fromhex(SPAN_HEX)
    assert (link.trace_state, link.flags, link.dropped_attributes_count) == ("k=v", 256, 1)
    assert link.attributes[0].value.bool_value is True


def test_events_with_attributes() -> None:
    span = _decode_span(
        {
            "events": [
                {"timeUnixNano": "1795364734925000001", "name": "gen_ai.choice",
                 "attributes": [{"key": "index", "value": {"intValue": 0}}], "droppedAttributesCount": 2}
            ],
            "droppedEventsCount": 3,
        }
    )
    (event,) = span.events
    assert event.time_unix_nano == 1795364734925000001
    assert event.name == "gen_ai.choice"
    assert event.attributes[0] == KeyValue(key="index", value=AnyValue(int_value=0))
    assert event.dropped_attributes_count == 2 and span.dropped_events_count == 3


@pytest.mark.parametrize("body", [b"{}", b'{"resourceSpans": []}', b'{"resourceSpans": null}', b" {} \n"])
def test_empty_requests(body: bytes) -> None:
    assert decode_json(body) == ExportTraceServiceRequest()


def test_empty_envelopes_are_kept() -> None:
    request = decode_json(b'{"resourceSpans": [{"scopeSpans": [{"spans": []}]}]}')
    assert len(request.resource_spans) == 1 and len(request.resource_spans[0].scope_spans) == 1


def test_null_means_unset() -> None:
    span = _decode_span({"name": None, "kind": None, "status": None, "attributes": None})
    assert span == Span()


def test_utf8_bom_and_non_ascii_text() -> None:
    body = "\ufeff".encode() + _request({"name": "héllo ☂ 🌧"})
    assert _only_span(decode_json(body)).name == "héllo ☂ 🌧"


def test_lone_surrogate_replaced_like_the_collector() -> None:
    # JSON.stringify of a string cut inside a surrogate pair yields a lone "\ud83c".
    body = b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"rain \\ud83c",' \
           b'"attributes":[{"key":"k\\udc00","value":{"stringValue":"ok \\ud83c\\udf27"}}]}]}]}]}'
    span = _only_span(decode_json(body))
    assert span.name == "rain \ufffd"
    assert span.attributes[0].key == "k\ufffd"
    assert span.attributes[0].value.string_value == "ok 🌧"  # a proper pair is untouched


def test_entity_refs_and_schema_urls() -> None:
    body = _body(
        {
            "resourceSpans": [
                {
                    "resource": {"entityRefs": [{"type": "service", "idKeys": ["service.name"]}]},
                    "schemaUrl": "https://opentelemetry.io/schemas/1.30.0",
                    "scopeSpans": [
                        {"schemaUrl": "s", "scope": {"version": "1", "droppedAttributesCount": 0}}
                    ],
                }
            ]
        }
    )
    rs = decode_json(body).resource_spans[0]
    assert rs.resource.entity_refs[0] == EntityRef(type="service", id_keys=["service.name"])
    assert rs.schema_url == "https://opentelemetry.io/schemas/1.30.0"
    assert rs.scope_spans[0].schema_url == "s" and rs.scope_spans[0].scope.version == "1"


def _nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"intValue": 1}
    for _ in range(levels):
        value = {"arrayValue": {"values": [value]}}
    return value


def test_nesting_limit_matches_what_protobuf_can_parse_back() -> None:
    # A span attribute AnyValue sits at depth 5; each array level adds 2.
    deepest_ok = (MAX_NESTING_DEPTH - 5) // 2
    request = decode_json(_request({"attributes": [{"key": "k", "value": _nested(deepest_ok)}]}))
    assert ExportTraceServiceRequest.FromString(request.SerializeToString()) == request
    message = _bad(_request({"attributes": [{"key": "k", "value": _nested(deepest_ok + 1)}]}))
    assert "nested deeper" in message and "arrayValue.values[0]" in message


def test_encode_json_uses_otlp_conventions() -> None:
    request = decode_json(_request({"traceId": TRACE_HEX.upper(), "kind": "SPAN_KIND_CLIENT",
                                    "startTimeUnixNano": 12, "flags": 1,
                                    "attributes": [{"key": "b", "value": {"bytesValue": "AAE="}},
                                                   {"key": "d", "value": {"doubleValue": "NaN"}}]}))
    span = json.loads(encode_json(request))["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert span["traceId"] == TRACE_HEX
    assert span["kind"] == 3
    assert span["startTimeUnixNano"] == "12"
    assert span["flags"] == 1
    assert span["attributes"] == [
        {"key": "b", "value": {"bytesValue": "AAE="}},
        {"key": "d", "value": {"doubleValue": "NaN"}},
    ]


# --- malformed input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, fragments",
    [
        (b'{"resourceSpans": [', ["invalid JSON"]),
        (b"", ["invalid JSON"]),
        (b'{"resourceSpans": []} trailing', ["invalid JSON"]),
        (b'{"a": NaN}', ["invalid JSON", "NaN"]),
        (b'{"resourceSpans": "\xff\xfe"}', ["not valid UTF-8"]),
        ('{"resourceSpans": []}'.encode("utf-16"), ["not valid UTF-8"]),
        (b"[]", ["top level must be an object", "array"]),
        (b'"text"', ["top level must be an object", "string"]),
        (b'{"resourceSpans": {}}', ["resourceSpans", "expected an array, got object"]),
        (b'{"resourceSpans": [{"resource": []}]}', ["resourceSpans[0].resource", "expected an object"]),
    ],
)
def test_malformed_documents(body: bytes, fragments: list[str]) -> None:
    message = _bad(body)
    assert message.startswith("malformed OTLP/JSON")
    for fragment in fragments:
        assert fragment in message


SPAN_PATH = "resourceSpans[0].scopeSpans[0].spans[0]"


@pytest.mark.parametrize(
    "span, fragments",
    [
        ({"traceId": "zz" * 16}, [f"{SPAN_PATH}.traceId: invalid hex"]),
        ({"traceId": TRACE_HEX[:-1]}, [f"{SPAN_PATH}.traceId", "odd number of digits"]),
        ({"spanId": "fd8f 76e86b04567"}, [f"{SPAN_PATH}.spanId: invalid hex"]),
        ({"parentSpanId": 12}, [f"{SPAN_PATH}.parentSpanId", "expected a hex string, got number"]),
        ({"links": [{}, {"traceId": "xyz0"}]}, [f"{SPAN_PATH}.links[1].traceId: invalid hex"]),
        ({"startTimeUnixNano": "-1"}, [f"{SPAN_PATH}.startTimeUnixNano", "-1 out of uint64 range"]),
        ({"startTimeUnixNano": -5}, [f"{SPAN_PATH}.startTimeUnixNano", "out of uint64 range"]),
        ({"endTimeUnixNano": str(2**64)}, [f"{SPAN_PATH}.endTimeUnixNano", "out of uint64 range"]),
        ({"startTimeUnixNano": "12 "}, [f"{SPAN_PATH}.startTimeUnixNano", "invalid integer"]),
        ({"startTimeUnixNano": True}, [f"{SPAN_PATH}.startTimeUnixNano", "got boolean"]),
        ({"droppedAttributesCount": 2**32}, [f"{SPAN_PATH}.droppedAttributesCount", "uint32"]),
        ({"kind": "NOT_A_KIND"}, [f"{SPAN_PATH}.kind", "unknown SpanKind value 'NOT_A_KIND'"]),
        ({"kind": "2"}, [f"{SPAN_PATH}.kind", "unknown SpanKind"]),
        ({"kind": 2**31}, [f"{SPAN_PATH}.kind", "int32"]),
        ({"kind": 1.5}, [f"{SPAN_PATH}.kind", "fraction"]),
        ({"name": 5}, [f"{SPAN_PATH}.name", "expected a string, got number"]),
        ({"status": {"code": "ERROR"}}, [f"{SPAN_PATH}.status.code", "StatusCode"]),
        ({"events": {}}, [f"{SPAN_PATH}.events", "expected an array"]),
        ({"events": [None]}, [f"{SPAN_PATH}.events[0]", "got null"]),
        ({"attributes": [{"key": 1}]}, [f"{SPAN_PATH}.attributes[0].key", "expected a string"]),
    ],
)
def test_malformed_span_fields(span: dict[str, Any], fragments: list[str]) -> None:
    message = _bad(_request(span))
    for fragment in fragments:
        assert fragment in message, message


ATTR_PATH = f"{SPAN_PATH}.attributes[1].value"


@pytest.mark.parametrize(
    "value, fragments",
    [
        ({"intValue": "abc"}, [f"{ATTR_PATH}.intValue", "invalid integer 'abc'"]),
        ({"intValue": 2**64}, [f"{ATTR_PATH}.intValue", "out of int64 range"]),
        ({"intValue": str(2**63)}, [f"{ATTR_PATH}.intValue", "out of int64 range"]),
        ({"intValue": 1.5}, [f"{ATTR_PATH}.intValue", "fraction"]),
        ({"intValue": "1e400"}, [f"{ATTR_PATH}.intValue", "out of range"]),
        ({"intValue": "9" * 5000}, [f"{ATTR_PATH}.intValue", "out of range"]),
        ({"intValue": 9.5e50}, [f"{ATTR_PATH}.intValue", "out of range"]),
        ({"doubleValue": "nan"}, [f"{ATTR_PATH}.doubleValue", "invalid double"]),
        ({"doubleValue": "1e999"}, [f"{ATTR_PATH}.doubleValue", "out of double range"]),
        ({"boolValue": "true"}, [f"{ATTR_PATH}.boolValue", "expected true or false"]),
        ({"bytesValue": "not base64!"}, [f"{ATTR_PATH}.bytesValue", "invalid base64"]),
        ({"stringValue": "a", "intValue": 1}, [ATTR_PATH, "more than one", "oneof value"]),
        ({"arrayValue": {"values": [{"intValue": "x"}]}}, [f"{ATTR_PATH}.arrayValue.values[0].intValue"]),
        ({"kvlistValue": {"values": [{"key": "a", "value": []}]}},
         [f"{ATTR_PATH}.kvlistValue.values[0].value", "expected an object, got array"]),
        ("text", [ATTR_PATH, "expected an object, got string"]),
    ],
)
def test_malformed_attribute_values(value: Any, fragments: list[str]) -> None:
    attributes = [{"key": "fine", "value": {"stringValue": "ok"}}, {"key": "k", "value": value}]
    message = _bad(_request({"attributes": attributes}))
    for fragment in fragments:
        assert fragment in message, message
    assert len(message) < 300  # client data is quoted, not echoed whole


def test_double_literal_out_of_range() -> None:
    body = _request({"attributes": [{"key": "k", "value": {"doubleValue": 0}}]}).replace(b"0}", b"1e999}")
    assert "attributes[0].value.doubleValue: number '1E+999' out of double range" in _bad(body)


def test_span_that_is_a_string() -> None:
    body = _body({"resourceSpans": [{"scopeSpans": [{"spans": [{}, {}, {}, "span"]}]}]})
    assert "resourceSpans[0].scopeSpans[0].spans[3]: expected an object, got string" in _bad(body)


def test_error_path_names_the_right_indexes() -> None:
    body = _body(
        {"resourceSpans": [{}, {"scopeSpans": [{}, {"spans": [{}, {}, {}, {"traceId": "nothex"}]}]}]}
    )
    assert "resourceSpans[1].scopeSpans[1].spans[3].traceId: invalid hex 'nothex'" in _bad(body)


def test_json_nested_beyond_the_parser() -> None:
    assert "malformed OTLP/JSON" in _bad(b"[" * 100_000 + b"]" * 100_000)


# --- property: encode_json / decode_json round trip ---------------------------------------

_int32 = st.integers(-(2**31), 2**31 - 1)
_uint32 = st.integers(0, 2**32 - 1)
_uint64 = st.integers(0, 2**64 - 1)
_text = st.text(max_size=12)
_ids = st.binary(max_size=17)

_scalar_values = st.one_of(
    st.builds(AnyValue, string_value=_text),
    st.builds(AnyValue, bool_value=st.booleans()),
    st.builds(AnyValue, int_value=st.integers(-(2**63), 2**63 - 1)),
    # NaN never equals itself, so it is covered by its own test instead.
    st.builds(AnyValue, double_value=st.floats(allow_nan=False)),
    st.builds(AnyValue, bytes_value=st.binary(max_size=8)),
    st.builds(AnyValue, string_value_strindex=_int32),
    st.just(AnyValue()),
)


def _key_values(values: st.SearchStrategy[AnyValue]) -> st.SearchStrategy[list[KeyValue]]:
    key_value = st.one_of(
        st.builds(KeyValue, key=_text, value=values),
        st.builds(KeyValue, key=_text),
        st.builds(KeyValue, key_strindex=_int32),
    )
    return st.lists(key_value, max_size=3)


_any_values = st.recursive(
    _scalar_values,
    lambda children: st.one_of(
        st.builds(lambda vs: AnyValue(array_value=ArrayValue(values=vs)), st.lists(children, max_size=3)),
        st.builds(lambda kvs: AnyValue(kvlist_value=KeyValueList(values=kvs)), _key_values(children)),
    ),
    max_leaves=8,
)
_attributes = _key_values(_any_values)

_events = st.builds(
    Span.Event, time_unix_nano=_uint64, name=_text, attributes=_attributes, dropped_attributes_count=_uint32
)
_links = st.builds(
    Span.Link,
    trace_id=_ids,
    span_id=_ids,
    trace_state=_text,
    attributes=_attributes,
    dropped_attributes_count=_uint32,
    flags=_uint32,
)
_statuses = st.one_of(st.none(), st.builds(Status, code=st.sampled_from([0, 1, 2, 7]), message=_text))


@st.composite
def _spans(draw: st.DrawFn) -> Span:
    kind: Any = draw(st.one_of(st.integers(0, 5), _int32))  # open enum: unknown numbers too
    span = Span(
        trace_id=draw(_ids),
        span_id=draw(_ids),
        trace_state=draw(_text),
        parent_span_id=draw(_ids),
        flags=draw(_uint32),
        name=draw(_text),
        kind=kind,
        start_time_unix_nano=draw(_uint64),
        end_time_unix_nano=draw(_uint64),
        attributes=draw(_attributes),
        dropped_attributes_count=draw(_uint32),
        events=draw(st.lists(_events, max_size=2)),
        dropped_events_count=draw(_uint32),
        links=draw(st.lists(_links, max_size=2)),
        dropped_links_count=draw(_uint32),
    )
    status = draw(_statuses)
    if status is not None:
        span.status.CopyFrom(status)
    return span


_resources = st.one_of(
    st.none(),
    st.builds(
        Resource,
        attributes=_attributes,
        dropped_attributes_count=_uint32,
        entity_refs=st.lists(
            st.builds(EntityRef, schema_url=_text, type=_text, id_keys=st.lists(_text, max_size=2),
                      description_keys=st.lists(_text, max_size=2)),
            max_size=2,
        ),
    ),
)
_scopes = st.one_of(
    st.none(),
    st.builds(InstrumentationScope, name=_text, version=_text, attributes=_attributes,
              dropped_attributes_count=_uint32),
)


@st.composite
def _requests(draw: st.DrawFn) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 2))):
        rs = request.resource_spans.add(schema_url=draw(_text))
        resource = draw(_resources)
        if resource is not None:
            rs.resource.CopyFrom(resource)
        for _ in range(draw(st.integers(0, 2))):
            ss = rs.scope_spans.add(schema_url=draw(_text))
            scope = draw(_scopes)
            if scope is not None:
                ss.scope.CopyFrom(scope)
            ss.spans.extend(draw(st.lists(_spans(), max_size=3)))
    return request


@settings(max_examples=200, deadline=None)
@given(_requests())
def test_json_round_trip_property(request: ExportTraceServiceRequest) -> None:
    decoded = decode_json(encode_json(request))
    assert decoded == request
    assert decoded.SerializeToString(deterministic=True) == request.SerializeToString(deterministic=True)


# --- responses -----------------------------------------------------------------------------


def test_export_response_full_success_leaves_partial_success_unset() -> None:
    response = ExportTraceServiceResponse.FromString(encode_export_response(0, "", json=False))
    assert not response.HasField("partial_success")
    assert encode_export_response(0, "", json=False) == b""
    assert json.loads(encode_export_response(0, "", json=True)) == {}


def test_export_response_partial_success() -> None:
    body = encode_export_response(3, "3 spans had no ids", json=False)
    response = ExportTraceServiceResponse.FromString(body)
    assert response.HasField("partial_success")
    assert response.partial_success.rejected_spans == 3
    assert response.partial_success.error_message == "3 spans had no ids"
    assert json.loads(encode_export_response(3, "3 spans had no ids", json=True)) == {
        "partialSuccess": {"rejectedSpans": "3", "errorMessage": "3 spans had no ids"}
    }


def test_export_response_warning_only() -> None:
    response = ExportTraceServiceResponse.FromString(encode_export_response(0, "slow down", json=False))
    assert response.HasField("partial_success") and response.partial_success.rejected_spans == 0
    assert json.loads(encode_export_response(0, "slow down", json=True)) == {
        "partialSuccess": {"errorMessage": "slow down"}
    }


def test_status_without_retry_info() -> None:
    status = status_pb2.Status.FromString(
        encode_status(code_pb2.INVALID_ARGUMENT, "bad traceId", json=False)
    )
    assert status.code == code_pb2.INVALID_ARGUMENT and status.message == "bad traceId"
    assert len(status.details) == 0
    assert json.loads(encode_status(code_pb2.INVALID_ARGUMENT, "bad traceId", json=True)) == {
        "code": 3,
        "message": "bad traceId",
    }


def test_status_with_retry_info() -> None:
    status = status_pb2.Status.FromString(
        encode_status(code_pb2.RESOURCE_EXHAUSTED, "memory limit", json=False, retry_after_s=1.5)
    )
    assert status.code == code_pb2.RESOURCE_EXHAUSTED
    (detail,) = status.details
    info = error_details_pb2.RetryInfo()
    assert detail.Unpack(info)
    assert (info.retry_delay.seconds, info.retry_delay.nanos) == (1, 500_000_000)

    as_json = json.loads(encode_status(code_pb2.UNAVAILABLE, "busy", json=True, retry_after_s=2))
    assert as_json == {
        "code": 14,
        "message": "busy",
        "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}],
    }
    parsed = json_format.Parse(json.dumps(as_json), status_pb2.Status())
    assert parsed.details[0].Is(error_details_pb2.RetryInfo.DESCRIPTOR)


def test_status_retry_after_zero_and_negative() -> None:
    for delay in (0.0, -3.0):
        status = status_pb2.Status.FromString(encode_status(14, "x", json=False, retry_after_s=delay))
        info = error_details_pb2.RetryInfo()
        assert status.details[0].Unpack(info)
        assert info.retry_delay.ToNanoseconds() == 0


def test_base64_helper_matches_stdlib() -> None:
    # bytesValue output is standard, padded base64 (proto3 JSON).
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.attributes.add(key="b", value=AnyValue(bytes_value=b"\xfb\xff"))
    encoded = json.loads(encode_json(request))
    value = encoded["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"][0]["value"]
    assert value == {"bytesValue": base64.b64encode(b"\xfb\xff").decode()}
