"""The trace view reads a span's chat messages back from its stored attributes: for every
captured client payload, what comes back equals what the normalize processor extracted
from the same span at ingest (so storing attributes as strings loses no message)."""

from __future__ import annotations

import pytest

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
