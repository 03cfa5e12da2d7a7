"""The trace view reads a span's chat messages back from its stored attributes: for every
captured client payload, what comes back equals what the normalize processor extracted
from the same span at ingest (so storing attributes as strings loses no message)."""

from __future__ import annotations

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from otlp_fixtures import FIXTURES, fixture_payloads, load_batch
from tracehouse.processors.genai_normalize.messages import INPUT_EXTRACTORS, OUTPUT_EXTRACTORS, first, from_events
from tracehouse.query.messages import span_messages
from tracehouse.sinks.clickhouse.columns import attrs_to_map


@pytest.mark.parametrize("path", fixture_payloads(), ids=lambda p: str(p.relative_to(FIXTURES)))
def test_messages_read_back_from_stored_attributes_equal_those_seen_at_ingest(path) -> None:
    batch = load_batch(str(path.relative_to(FIXTURES)))
    with_messages = 0
    for _, _, span in batch.iter_spans():
        attrs = {kv.key: kv.value for kv in span.attributes}
        events_in, events_out = from_events(span.events)
        at_ingest = (first(INPUT_EXTRACTORS, attrs) or events_in, first(OUTPUT_EXTRACTORS, attrs) or events_out)
        stored = span_messages(attrs_to_map(span.attributes),
                               [(e.name, attrs_to_map(e.attributes)) for e in span.events])
        assert stored == at_ingest, span.name
        with_messages += bool(stored[0] or stored[1])
    if "otel-genai" in str(path) or "openinference" in str(path) or "mlflow" in str(path):
        assert with_messages, "an LLM library's capture has messages"


# One span per convention, its messages under the key the extractors start from: the trace
# view skips the extractors for spans with none of MESSAGE_KEYS, so each must be one.
USER = '[{"role": "user", "content": "hi"}]'
CONVENTIONS: dict[str, dict[str, str]] = {
    "otel input": {"gen_ai.input.messages": '[{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]'},
    "otel output": {"gen_ai.output.messages": '[{"role": "assistant", "parts": [{"type": "text", "content": "hi"}]}]'},
    "openinference input": {"llm.input_messages.0.message.content": "hi"},
    "openinference input role": {"llm.input_messages.0.message.role": "user"},
    "openinference output": {"llm.output_messages.0.message.content": "hi"},
    "openllmetry prompt": {"gen_ai.prompt.0.content": "hi"},
    "openllmetry completion": {"gen_ai.completion.0.role": "assistant"},
    "mlflow inputs": {"mlflow.spanInputs": '{"messages": ' + USER + "}"},
    "mlflow outputs": {"mlflow.spanOutputs": '{"choices": [{"message": {"role": "assistant", "content": "hi"}}]}'},
    "vercel prompt": {"ai.prompt.messages": USER},
    "vercel response": {"ai.response.text": "hi"},
    "langfuse input": {"langfuse.observation.input": USER},
    "langfuse output": {"langfuse.observation.output": '{"role": "assistant", "content": "hi"}'},
    "legacy prompt": {"gen_ai.prompt": USER},
    "legacy completion": {"gen_ai.completion": USER},
}


@pytest.mark.parametrize("attributes", CONVENTIONS.values(), ids=CONVENTIONS.keys())
def test_every_convention_is_read_back_from_a_span_holding_only_it(attributes: dict[str, str]) -> None:
    attrs = {key: AnyValue(string_value=value) for key, value in attributes.items()}
    at_ingest = (first(INPUT_EXTRACTORS, attrs), first(OUTPUT_EXTRACTORS, attrs))
    assert at_ingest != (None, None)
    assert span_messages({"gen_ai.request.model": "gpt-4o", **attributes}, []) == at_ingest
