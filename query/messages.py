"""A span's chat messages, read back from its stored attributes for the trace view.

The same extraction the `genai_normalize` processor runs at ingest (every convention:
OTel GenAI, OpenAI-style lists, OpenInference and OpenLLMetry flattened keys, MLflow,
Vercel AI, Langfuse, the deprecated message events), applied to the stored strings: an
attribute is stored as the Collector's AsString text, and arrays and maps as JSON, which
the extraction parses the same way. Messages are not stored twice.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tracehouse.core.genai import ChatMessage
from tracehouse.processors.genai_normalize.messages import (
    INPUT_EXTRACTORS,
    MESSAGE_KEYS,
    OUTPUT_EXTRACTORS,
    first,
    from_events,
)


@dataclass(frozen=True, slots=True)
class _Event:
    name: str
    attributes: list[KeyValue]


class _AsAny(Mapping[str, AnyValue]):
    """Stored attributes as the extraction reads them (AnyValue strings), each made when
    read: the extractors look up a few keys of a span's many."""

    __slots__ = ("_attributes",)

    def __init__(self, attributes: Mapping[str, str]) -> None:
        self._attributes = attributes

    def __getitem__(self, key: str) -> AnyValue:
        return AnyValue(string_value=self._attributes[key])

    def get(self, key: str, default: Any = None) -> Any:  # Mapping's would raise and catch per missing key
        value = self._attributes.get(key)
        return default if value is None else AnyValue(string_value=value)

    def __contains__(self, key: object) -> bool:
        return key in self._attributes

    def __iter__(self) -> Iterator[str]:
        return iter(self._attributes)

    def __len__(self) -> int:
        return len(self._attributes)


def span_messages(attributes: Mapping[str, str], events: Sequence[tuple[str, Mapping[str, str]]]
                  ) -> tuple[list[ChatMessage] | None, list[ChatMessage] | None]:
    """(input messages, output messages) of one stored span; None where it has none."""
    inputs: list[ChatMessage] | None = None
    outputs: list[ChatMessage] | None = None
    if not MESSAGE_KEYS.isdisjoint(attributes):  # else no extractor has a key to start from (tool, agent spans)
        attrs = _AsAny(attributes)
        inputs, outputs = first(INPUT_EXTRACTORS, attrs), first(OUTPUT_EXTRACTORS, attrs)
    if (inputs is None or outputs is None) and events:
        from_ev_in, from_ev_out = from_events(
            [_Event(name, [KeyValue(key=k, value=v) for k, v in _AsAny(a).items()]) for name, a in events])
        inputs, outputs = inputs or from_ev_in, outputs or from_ev_out
    return inputs, outputs
