"""The `redaction` processor on logs: the GenAI events the official OpenAI instrumentation
sends as log records (tests/fixtures/genai-events, captured from the real library), with
secrets planted in their message texts: the current `gen_ai.client.inference.operation.details`
event (messages as structured attribute values) and the older per-message events (content
in a kvlist body), plus `gen_ai.evaluation.result`'s explanation. The end-to-end run
through the all-in-one is in test_redaction_pipeline.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from redaction_helpers import SECRETS, inject_secrets_logs, markers, redactor, shape_of
from tracehouse.core.anyvalue import to_python
from tracehouse.core.component import ComponentID, Kind, Settings
from tracehouse.core.pdata import LogBatch, any_value, key_values
from tracehouse.core.testing import Sink, TestHost
from tracehouse.processors.redaction.config import RedactionConfig
from tracehouse.processors.redaction.detectors import DETECTOR_KINDS
from tracehouse.processors.redaction.processor import RedactionProcessor

FIXTURES = Path(__file__).parents[1] / "fixtures" / "genai-events"
DETAILS = "gen_ai.client.inference.operation.details"


def captured(variant: str) -> LogBatch:
    return LogBatch.from_bytes((FIXTURES / variant / "logs.pb").read_bytes())


def records(batch: LogBatch) -> list[LogRecord]:
    return [r for rl in batch.request.resource_logs for sl in rl.scope_logs for r in sl.log_records]


def name_of(record: LogRecord) -> str:
    return record.event_name or next(kv.value.string_value for kv in record.attributes if kv.key == "event.name")


def types_of(value: AnyValue) -> Any:
    """The AnyValue kinds of a value, nested: what "types kept" compares."""
    which = value.WhichOneof("value")
    if which == "kvlist_value":
        return {kv.key: types_of(kv.value) for kv in value.kvlist_value.values}
    if which == "array_value":
        return [types_of(v) for v in value.array_value.values]
    return which


def snapshot(batch: LogBatch) -> list[tuple[dict[str, Any], Any]]:
    """Per record: its attributes' and body's kinds, without the summary attributes."""
    return [({kv.key: types_of(kv.value) for kv in r.attributes if not kv.key.startswith("redaction.")},
             types_of(r.body)) for r in records(batch)]


def attrs(record: LogRecord) -> dict[str, Any]:
    return {kv.key: to_python(kv.value) for kv in record.attributes}


def planted(variant: str) -> tuple[LogBatch, bytes]:
    batch = captured(variant)
    assert inject_secrets_logs(batch) == 4
    body = batch.to_bytes()
    assert all(m in body for m in markers())
    return batch, body


def assert_no_secret(batch: LogBatch) -> None:
    batch.mark_mutated()
    wire = batch.to_bytes()
    for marker in markers():
        assert marker not in wire, marker


@pytest.mark.parametrize("mode", ["mask", "drop"])
def test_the_inference_details_event_is_redacted_in_its_structured_messages(mode: str) -> None:
    batch, _ = planted("current")
    before = [(attrs(r), shape_of(to_python(r.body))) for r in records(batch)]
    types = snapshot(batch)
    red = redactor(pipeline="logs", summary="debug", genai={"content": mode})
    assert red.process_logs(batch) == 2  # the details event and the evaluation

    assert_no_secret(batch)
    assert snapshot(batch) == types, "arrays stay arrays, kvlists kvlists, numbers numbers"
    details, evaluation = records(batch)
    assert name_of(details) == DETAILS
    after, was = attrs(details), before[0][0]
    for key in ("gen_ai.input.messages", "gen_ai.output.messages"):
        assert shape_of(after[key], drop=mode == "drop") == shape_of(was[key], drop=mode == "drop")
    [_, user] = after["gen_ai.input.messages"]
    text = user["parts"][0]["content"]
    if mode == "mask":
        assert text.startswith("What is the capital of France? Also: [REDACTED:email] ; [REDACTED:phone]")
        assert all(f"[REDACTED:{kind}]" in text for kind in SECRETS)
        assert red.masked_values == {kind: 4 for kind in DETECTOR_KINDS}  # 3 messages, the explanation
    else:
        assert text == "" and user["role"] == "user" and user["parts"][0]["type"] == "text"
        assert red.masked_values == {"content": 4}
    assert {k: v for k, v in after.items() if not k.startswith(("gen_ai.input", "gen_ai.output", "redaction."))} == \
        {k: v for k, v in was.items() if not k.startswith(("gen_ai.input", "gen_ai.output"))}
    assert after["redaction.masked.keys"] == "gen_ai.input.messages,gen_ai.output.messages"
    assert after["redaction.masked.count"] == 2
    explanation = attrs(evaluation)["gen_ai.evaluation.explanation"]
    if mode == "mask":
        assert explanation.startswith("The answer names the capital. Also: [REDACTED:email] ; [REDACTED:phone]")
    else:
        assert explanation == ""
    assert red.redacted_log_records == 2 and red.redacted_spans == 0


@pytest.mark.parametrize("mode", ["mask", "drop"])
def test_per_message_events_are_redacted_in_their_bodies(mode: str) -> None:
    batch, _ = planted("legacy")
    types = snapshot(batch)
    shapes = [shape_of(to_python(r.body), drop=mode == "drop") for r in records(batch)]
    red = redactor(pipeline="logs", summary="debug", genai={"content": mode})
    assert red.process_logs(batch) == 4  # system, user, choice, evaluation

    assert_no_secret(batch)
    assert snapshot(batch) == types, "the bodies stay kvlists; index stays an int"
    system, user, choice, _ = records(batch)
    assert [name_of(r) for r in (system, user, choice)] == ["gen_ai.system.message", "gen_ai.user.message",
                                                            "gen_ai.choice"]
    assert [shape_of(to_python(r.body), drop=mode == "drop") for r in records(batch)] == shapes
    content = to_python(user.body)["content"]
    answer = to_python(choice.body)
    assert answer["index"] == 0 and answer["finish_reason"] == "stop" and answer["message"]["role"] == "assistant"
    if mode == "mask":
        assert content.startswith("What is the capital of France? Also: [REDACTED:email]")
        assert answer["message"]["content"].startswith("A deterministic answer. Also: [REDACTED:email]")
    else:
        assert content == "" and answer["message"]["content"] == ""
    # The Collector's body summary, on the record's attributes; the attributes themselves unchanged.
    assert attrs(user) == {"gen_ai.system": "openai", "event.name": "gen_ai.user.message",
                           "redaction.body.masked.keys": "content", "redaction.body.masked.count": 1}
    assert attrs(choice)["redaction.body.masked.keys"] == "message"


@pytest.mark.parametrize("variant", ["current", "legacy"])
def test_captured_events_without_secrets_pass_untouched(variant: str) -> None:
    batch = captured(variant)
    raw = batch.raw
    red = redactor(pipeline="logs")
    assert red.process_logs(batch) == 0
    assert batch.raw is raw, "an untouched batch keeps its wire bytes"
    assert red.masked_values == {}


def log_batch(*bodies_and_attributes: tuple[Any, dict[str, Any]], event_name: str = "") -> LogBatch:
    batch = LogBatch.from_request(LogBatch.request_type())
    scope = batch.request.resource_logs.add().scope_logs.add()
    for body, attributes in bodies_and_attributes:
        record = scope.log_records.add(event_name=event_name)
        if body is not None:
            record.body.CopyFrom(any_value(body))
        record.attributes.extend(key_values(attributes))
    batch.item_count = len(bodies_and_attributes)
    return batch


@pytest.mark.parametrize("mode", ["mask", "drop"])
def test_tool_calls_in_message_event_bodies(mode: str) -> None:
    # The captured app called no tool: these bodies are made to the semantic conventions'
    # gen_ai.assistant.message / gen_ai.tool.message events, as openai-v2 2.1b0 emits them.
    call = {"id": "call_1", "type": "function",
            "function": {"name": "charge", "arguments": '{"card": "4111 1111 1111 1111", "amount": 12}'}}
    # Arguments as a structured value (other SDKs' Events API records).
    structured = {"id": "call_2", "type": "function",
                  "function": {"name": "charge", "arguments": {"card": "4111 1111 1111 1111", "amount": 12}}}
    batch = log_batch(({"tool_calls": [call, structured]}, {"event.name": "gen_ai.assistant.message"}),
                      ({"content": "charged, receipt to jane.doe@example.com", "id": "call_1"},
                       {"event.name": "gen_ai.tool.message"}))
    redactor(pipeline="logs", genai={"content": mode}).process_logs(batch)
    assistant, tool = (to_python(r.body) for r in records(batch))
    masked, masked_structured = assistant["tool_calls"]
    assert (masked["id"], masked["type"], masked["function"]["name"]) == ("call_1", "function", "charge")
    assert masked_structured["id"] == "call_2" and masked_structured["function"]["name"] == "charge"
    if mode == "mask":
        assert masked["function"]["arguments"] == '{"card": "[REDACTED:credit_card]", "amount": 12}'
        assert masked_structured["function"]["arguments"] == {"card": "[REDACTED:credit_card]", "amount": 12}
        assert tool == {"content": "charged, receipt to [REDACTED:email]", "id": "call_1"}
    else:
        assert masked["function"]["arguments"] == "" and tool == {"content": "", "id": "call_1"}
        # Every value of a payload goes, numbers included (an empty value): its keys stay.
        assert masked_structured["function"]["arguments"] == {"card": "", "amount": None}


def test_other_bodies_are_values_like_any_attribute() -> None:
    nested = {"user": {"contact": ["jane.doe@example.com", 7]}, "ok": True}
    app_logs = [("login by jane.doe@example.com", {}), (["see jane.doe@example.com", 3], {}), (nested, {}),
                (12345, {}), ("fine", {"http.route": "/u/jane.doe@example.com"})]

    batch = log_batch(*app_logs)
    types = snapshot(batch)
    assert redactor(pipeline="logs").process_logs(batch) == 4
    assert [to_python(r.body) for r in records(batch)] == [
        "login by [REDACTED:email]", ["see [REDACTED:email]", 3],
        {"user": {"contact": ["[REDACTED:email]", 7]}, "ok": True}, 12345, "fine"]
    assert attrs(records(batch)[4]) == {"http.route": "/u/[REDACTED:email]"}
    assert snapshot(batch) == types

    # Not message content: mask_attributes false leaves them, as it leaves span attributes.
    batch = log_batch(*app_logs)
    assert redactor(pipeline="logs", genai={"mask_attributes": False}).process_logs(batch) == 0
    # A gen_ai.* event's string or array body is content: masked all the same (a JSON text
    # inside, keeping it JSON), and emptied by drop.
    batch = log_batch(('{"content": "mail jane.doe@example.com"}', {}), (["jane.doe@example.com"], {}),
                      event_name="gen_ai.user.message")
    redactor(pipeline="logs", genai={"mask_attributes": False}).process_logs(batch)
    assert [to_python(r.body) for r in records(batch)] == ['{"content": "mail [REDACTED:email]"}',
                                                           ["[REDACTED:email]"]]
    batch = log_batch(("mail jane.doe@example.com", {}), event_name="gen_ai.user.message")
    redactor(pipeline="logs", genai={"content": "drop"}).process_logs(batch)
    assert to_python(records(batch)[0].body) == ""


def test_key_rules_apply_to_log_attributes_and_to_a_map_body_s_keys() -> None:
    def batch() -> LogBatch:
        return log_batch(({"content": "hi jane.doe@example.com", "password": "hunter2", "role": "user"},
                          {"event.name": "gen_ai.user.message", "enduser.pin": "1234", "gen_ai.system": "openai"}))

    b = batch()
    redactor(pipeline="logs", summary="info", blocked_keys=["password", "pin"]).process_logs(b)
    [record] = records(b)
    assert to_python(record.body) == {"content": "hi [REDACTED:email]", "password": "****", "role": "user"}
    assert attrs(record) == {"event.name": "gen_ai.user.message", "enduser.pin": "****", "gen_ai.system": "openai",
                             "redaction.masked.count": 1, "redaction.body.masked.count": 2}

    b = batch()
    red = redactor(pipeline="logs", summary="debug", allow_all_keys=False, allowed_keys=["event.name", "content"])
    assert red.process_logs(b) == 1
    [record] = records(b)
    assert to_python(record.body) == {"content": "hi [REDACTED:email]"}
    assert attrs(record) == {"event.name": "gen_ai.user.message",
                             "redaction.redacted.keys": "enduser.pin,gen_ai.system", "redaction.redacted.count": 2,
                             "redaction.body.redacted.keys": "password,role", "redaction.body.redacted.count": 2,
                             "redaction.body.masked.keys": "content", "redaction.body.masked.count": 1}
    assert red.redacted_keys == 4

    b = batch()
    redactor(pipeline="logs", summary="info", ignored_keys=["content"]).process_logs(b)
    [record] = records(b)
    assert to_python(record.body)["content"] == "hi jane.doe@example.com"
    assert attrs(record)["redaction.body.ignored.count"] == 1


async def test_log_redactions_are_counted_like_spans_and_handed_on() -> None:
    host, sink = TestHost(), Sink()
    red = RedactionProcessor(Settings(ComponentID("redaction"), Kind.PROCESSOR, "logs"), RedactionConfig(), sink)
    await red.start(host)
    batch, _ = planted("legacy")
    await red.consume(batch)
    assert sink.batches == [batch]
    assert_no_secret(batch)
    r = host.telemetry.registry

    def value(name: str, **labels: str) -> float | None:
        return r.get_sample_value(name, {"processor": "redaction", "pipeline": "logs", **labels})

    assert value("tracehouse_processor_redaction_masked_values_total", kind="email") == 4
    assert value("tracehouse_processor_redaction_masked_values_total", kind="private_key") == 4
    assert value("tracehouse_processor_redaction_log_records_total") == 4
    assert value("tracehouse_processor_redaction_spans_total") is None

