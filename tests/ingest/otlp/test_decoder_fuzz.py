"""Arbitrary input never crashes a decoder: it decodes, or it is a BadRequestError (HTTP 400)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from otlp_fixtures import FIXTURES
from tracehouse.core.errors import BadRequestError
from tracehouse.core.pdata import TraceBatch
from tracehouse.ingest.otlp.encoding import decode_json
from tracehouse.ingest.otlp.validate import drop_invalid_spans

SEED_PB = (FIXTURES / "mlflow" / "http-protobuf.pb").read_bytes()
SEED_JSON = json.loads((FIXTURES / "otel-js-vercel-ai-style" / "http-json.otlp.json").read_text())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_as_protobuf(data: bytes) -> None:
    try:
        batch = TraceBatch.from_bytes(data)
    except BadRequestError:
        return
    drop_invalid_spans(batch)  # whatever parsed must also survive validation


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(SEED_PB) - 1), st.binary(min_size=1, max_size=8))
def test_corrupted_real_payload_as_protobuf(offset: int, garbage: bytes) -> None:
    data = SEED_PB[:offset] + garbage + SEED_PB[offset + len(garbage):]
    try:
        batch = TraceBatch.from_bytes(data)
    except BadRequestError:
        return
    drop_invalid_spans(batch)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=30,
)
otlp_keys = st.sampled_from(["traceId", "spanId", "parentSpanId", "kind", "startTimeUnixNano", "attributes",
                             "intValue", "stringValue", "arrayValue", "values", "status", "code", "events", "name"])


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_random_json_documents(doc: object) -> None:
    try:
        decode_json(json.dumps(doc).encode())
    except BadRequestError:
        pass


@settings(max_examples=300, deadline=None)
@given(otlp_keys, json_values)
def test_real_json_payload_with_one_field_replaced(key: str, value: object) -> None:
    doc = json.loads(json.dumps(SEED_JSON))
    span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span[key] = value
    try:
        decode_json(json.dumps(doc).encode())
    except BadRequestError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_random_text_as_json(text: str) -> None:
    try:
        decode_json(text.encode("utf-8", "surrogatepass"))
    except BadRequestError:
        pass
