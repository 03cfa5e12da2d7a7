"""GenAI events give a span its chat messages: the current `gen_ai.client.inference.operation.details`
event and the deprecated per-message events, as the official OpenAI instrumentation records them
(tests/fixtures/genai-events: real log records, read here as the events they are)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from tracehouse.core.genai import ChatMessage
from tracehouse.processors.genai_normalize.messages import from_events

FIXTURES = Path(__file__).parents[1] / "fixtures" / "genai-events"
SYSTEM = ChatMessage(role="system", content="You answer in one sentence.")
USER = ChatMessage(role="user", content="What is the capital of France?")
ANSWER = ChatMessage(role="assistant", content="A deterministic answer.")


@dataclass
class Event:
    name: str
    attributes: list[KeyValue]


def as_event(record: LogRecord) -> Event:
    """A log record as the event it is: named by `event_name` (or the older `event.name`
    attribute), its map body's fields beside its attributes."""
    attributes = list(record.attributes)
    name = record.event_name or next((kv.value.string_value for kv in attributes if kv.key == "event.name"), "")
    attributes.extend(record.body.kvlist_value.values)
    return Event(name, attributes)


def events_of(variant: str) -> list[Event]:
    request = ExportLogsServiceRequest()
    request.ParseFromString((FIXTURES / variant / "logs.pb").read_bytes())
    return [as_event(r) for rl in request.resource_logs for sl in rl.scope_logs for r in sl.log_records]


def test_the_inference_details_event_carries_the_whole_conversation() -> None:
    assert from_events(events_of("current")) == ([SYSTEM, USER], [ANSWER])


def test_per_message_events_are_read_in_order_with_the_choice_as_output() -> None:
    assert from_events(events_of("legacy")) == ([SYSTEM, USER], [ANSWER])


def test_other_events_give_no_messages() -> None:
    evaluation_only = [e for e in events_of("current") if e.name == "gen_ai.evaluation.result"]
    assert evaluation_only and from_events(evaluation_only) == (None, None)


def test_tool_calls_of_assistant_and_choice_events_are_kept() -> None:
    from tracehouse.core.pdata import key_values
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    events = [Event("gen_ai.assistant.message", key_values({"tool_calls": [call]})),
              Event("gen_ai.tool.message", key_values({"content": "rainy", "id": "call_1"})),
              Event("gen_ai.choice", key_values({"index": 0, "finish_reason": "tool_calls",
                                                  "message": {"role": "assistant", "tool_calls": [call]}}))]
    inputs, outputs = from_events(events)
    weather = [{"name": "get_weather", "arguments": '{"city": "Paris"}'}]
    assert inputs == [ChatMessage(role="assistant", content="", tool_calls=weather),
                      ChatMessage(role="tool", content="rainy")]
    assert outputs == [ChatMessage(role="assistant", content="", tool_calls=weather)]
