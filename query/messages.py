"""A span's chat messages, read back from its stored attributes for the trace view.

The same extraction the `genai_normalize` processor runs at ingest (every convention:
OTel GenAI, OpenAI-style lists, OpenInference and OpenLLMetry flattened keys, MLflow,
Vercel AI, Langfuse, the deprecated message events), applied to the stored strings: an
attribute is stored as the Collector's AsString text, and arrays and maps as JSON, which
the extraction parses the same way. Messages are not stored twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tracehouse.core.genai import ChatMessage
from tracehouse.processors.genai_normalize.messages import INPUT_EXTRACTORS, OUTPUT_EXTRACTORS, first, from_events


@dataclass(frozen=True, slots=True)
class _Event:
    name: str
    attributes: list[KeyValue]


def _as_any(attributes: Mapping[str, str]) -> dict[str, AnyValue]:
    return {key: AnyValue(string_value=value) for key, value in attributes.items()}


def span_messages(attributes: Mapping[str, str], events: Sequence[tuple[str, Mapping[str, str]]]
                  ) -> tuple[list[ChatMessage] | None, list[ChatMessage] | None]:
    """(input messages, output messages) of one stored span; None where it has none."""
    attrs = _as_any(attributes)
    inputs, outputs = first(INPUT_EXTRACTORS, attrs), first(OUTPUT_EXTRACTORS, attrs)
    if (inputs is None or outputs is None) and events:
        from_ev_in, from_ev_out = from_events(
            [_Event(name, [KeyValue(key=k, value=v) for k, v in _as_any(a).items()]) for name, a in events])
        inputs, outputs = inputs or from_ev_in, outputs or from_ev_out
    return inputs, outputs
