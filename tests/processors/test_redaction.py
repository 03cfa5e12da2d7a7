"""The `redaction` processor: detectors, the Collector's keys and summary, GenAI content
modes on every captured library's payload, the GenAI columns it re-reads, its metrics and
its config errors. The end-to-end run into chDB is in test_redaction_pipeline.py."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import json
from typing import Any

import pytest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from genai_helpers import batch_of, enrich, span
from otlp_fixtures import FIXTURES, load_batch
from redaction_helpers import SECRETS, STRUCTURAL, inject_secrets, markers, redactor, shape_of, text_values
from tracehouse.core.anyvalue import to_python
from tracehouse.core.component import ComponentID, Kind, Settings
from tracehouse.core.config import load_config_dict
from tracehouse.core.exporterhelper.codec import encode_batch
from tracehouse.core.errors import ConfigError
from tracehouse.core.pdata import TraceBatch, any_value, key_values
from tracehouse.core.genai import GenAIColumns
from tracehouse.core.testing import TestHost, TracesSink
from tracehouse.processors.genai_normalize.config import GenAINormalizeConfig
from tracehouse.processors.genai_normalize.processor import NormalizeProcessor
from tracehouse.processors.redaction.config import RedactionConfig
from tracehouse.processors.redaction.detectors import DETECTOR_KINDS, Scanner, luhn_ok

T0 = 1_795_000_000_000_000_000
PAYLOADS = ["otel-genai-openai-v2/http-protobuf.pb", "openinference/http-protobuf.pb", "mlflow/http-protobuf.pb",
            "otel-js-vercel-ai-style/http-json.otlp.json"]


def normalized(batch: TraceBatch) -> GenAIColumns:
    processor = NormalizeProcessor(Settings(ComponentID("genai_normalize"), Kind.PROCESSOR, "traces"),
                                   GenAINormalizeConfig(extract_messages=False), TracesSink())
    return processor.process(batch)


def attrs_of(sp: Span) -> dict[str, Any]:
    return {kv.key: to_python(kv.value) for kv in sp.attributes}


def mask(text: str, kinds: tuple[str, ...] = DETECTOR_KINDS) -> tuple[str, dict[str, int]]:
    counts: dict[str, int] = {}
    return Scanner(kinds).mask(text, counts), counts


# ------------------------------------------------------------------------------ detectors

POSITIVES = [
    ("email", "write to jane.doe+news@mail.example.co.uk today", "jane.doe+news@mail.example.co.uk"),
    ("phone", "call +1 415 555 0132 now", "+1 415 555 0132"),
    ("phone", "call +44 20 7946 0958", "+44 20 7946 0958"),
    ("phone", "office (415) 555-0132", "(415) 555-0132"),
    ("phone", "cell 415.555.0132.", "415.555.0132"),
    ("credit_card", "card 4111 1111 1111 1111 exp 12/29", "4111 1111 1111 1111"),
    ("credit_card", "card 4111-1111-1111-1111", "4111-1111-1111-1111"),
    ("credit_card", "mc 5555555555554444", "5555555555554444"),
    ("credit_card", "amex 3782 822463 10005", "3782 822463 10005"),
    ("us_ssn", "ssn: 123-45-6789.", "123-45-6789"),
    ("openai_api_key", "OPENAI_API_KEY=sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z", "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"),
    ("openai_api_key", "key sk-live-4eC39HqLyjWDarjtT1zdp7dc ok", "sk-live-4eC39HqLyjWDarjtT1zdp7dc"),
    ("openai_api_key", "legacy sk-" + "T3BlbkFJ" * 6, "sk-" + "T3BlbkFJ" * 6),
    ("anthropic_api_key", "x-api-key: sk-ant-api03-Zx9_Yw8-Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe",
     "sk-ant-api03-Zx9_Yw8-Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe"),
    ("aws_access_key", "aws_access_key_id = AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    ("google_api_key", "key=AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q&x", "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"),
    ("github_token", "token ghp_" + "a1B2c3D4e5" * 4, "ghp_" + "a1B2c3D4e5" * 4),
    ("github_token", "github_pat_11ABCDEFG0abcdefghijkl_mnopqrstuvwxyz0123456789",
     "github_pat_11ABCDEFG0abcdefghijkl_mnopqrstuvwxyz0123456789"),
    ("slack_token", "SLACK=xoxb-1234567890-0987654321-AbCdEfGhIjKl", "xoxb-1234567890-0987654321-AbCdEfGhIjKl"),
    ("stripe_key", "stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    ("jwt", "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
     "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
    ("private_key", "k = '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\nkqhkiG9w0BAQ==\n-----END PRIVATE KEY-----' end",
     "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\nkqhkiG9w0BAQ==\n-----END PRIVATE KEY-----"),
    ("private_key", "truncated: -----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA", "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA"),
]


@pytest.mark.parametrize(("kind", "text", "secret"), POSITIVES, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(POSITIVES)])
def test_each_detector_masks_its_kind(kind: str, text: str, secret: str) -> None:
    out, counts = mask(text)
    assert out == text.replace(secret, f"[REDACTED:{kind}]")
    assert counts == {kind: 1}
    # ... and only its own detector is needed for it.
    assert mask(text, (kind,))[0] == out


NEGATIVES = [
    ("a Luhn-invalid card number", "card 4111 1111 1111 1112"),
    ("a Luhn-valid number outside the card ranges (epoch ns)", "t=1732288000000000004"),
    ("epoch milliseconds", "ts 1732288000000"),
    ("an ISO timestamp with offset", "2024-11-22T10:15:30.123+00:00 and 2024-11-22 10:15:30"),
    ("dates, versions, IPs", "2024-01-15 v1.45.2 10.0.0.1 192.168.100.200"),
    ("dated model names", "gpt-4o-2024-08-06 claude-sonnet-4-5-20250929 gemini-2.5-flash"),
    ("hex ids", "tr-2e677edc2a3813e3c62641cde3be9620 resp_1a2b3c4d5e6f7a8b"),
    ("an SSN with a 000 area", "000-12-3456"),
    ("an SSN with a 9xx area", "923-45-6789"),
    ("a bare 10-digit number (could be a timestamp)", "id 4155550132"),
    ("a timezone offset", "+05:30"),
    ("an @-mention and a decorator", "@alice see @app.route and user@localhost"),
    ("sk- inside a word", "task-abcdefghijklmnopqrstuvwxyz risk-assessment-report-2024-final"),
    ("a short sk- word", "scikit sk-learn"),
    ("a publishable Stripe key", "pk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    ("placeholders", "[REDACTED:email] [REDACTED:openai_api_key] ****"),
]


@pytest.mark.parametrize(("why", "text"), NEGATIVES, ids=[w for w, _ in NEGATIVES])
def test_lookalikes_are_not_masked(why: str, text: str) -> None:
    assert mask(text) == (text, {})


def test_luhn() -> None:
    assert luhn_ok("4111111111111111") and luhn_ok("79927398713")
    assert not luhn_ok("4111111111111112") and not luhn_ok("79927398710")


def test_matches_next_to_json_escapes_and_non_ascii_text() -> None:
    scanner = Scanner(DETECTOR_KINDS)
    raw = json.dumps({"content": "my key:\nsk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"})
    # In the JSON text the key follows the `n` of `\n`: the strict scan cannot see it, the
    # loose one (which decides whether to parse the value) does.
    assert not scanner.find(raw) and scanner.find(raw, loose=True)
    out, counts = mask("Café ☕ — appelle-moi au +33 6 12 34 56 78, courriel élodie@exemple.fr")
    assert counts == {"phone": 1, "email": 1}
    assert out == "Café ☕ — appelle-moi au [REDACTED:phone], courriel [REDACTED:email]"


def test_several_secrets_in_one_value_and_unchanged_values_are_the_same_object() -> None:
    text = "a@b.co then 123-45-6789 then sk-ant-" + "k" * 24 + " then 4111111111111111"
    out, counts = mask(text)
    assert out == ("[REDACTED:email] then [REDACTED:us_ssn] then [REDACTED:anthropic_api_key] then "
                   "[REDACTED:credit_card]")
    assert counts == {"email": 1, "us_ssn": 1, "anthropic_api_key": 1, "credit_card": 1}
    clean = "nothing to see here, 42 apples"
    assert Scanner(DETECTOR_KINDS).mask(clean, {}) is clean


# ------------------------------------------------------------------------------ config

def _config(processor: dict[str, Any]) -> dict[str, Any]:
    return {"receivers": {"otlp": {"protocols": {"http": {"endpoint": "127.0.0.1:0"}}}},
            "processors": {"redaction": processor}, "exporters": {"debug": {}},
            "service": {"pipelines": {"traces": {"receivers": ["otlp"], "processors": ["redaction"],
                                                 "exporters": ["debug"]}}}}


def test_defaults_are_genai_friendly() -> None:
    cfg = RedactionConfig()
    assert cfg.allow_all_keys is True and cfg.summary == "silent"
    assert cfg.genai.content == "mask" and cfg.genai.mask_attributes is True
    assert tuple(cfg.genai.detectors) == DETECTOR_KINDS
    loaded = load_config_dict(_config({"blocked_key_patterns": ["token"], "summary": "info"}))
    (entry,) = [e for e in loaded.components.values() if e.id.type == "redaction"]
    assert isinstance(entry.config, RedactionConfig)
    assert entry.config.blocked_keys == ["token"]  # the Collector's spelling


@pytest.mark.parametrize(("settings", "path", "message"), [
    ({"blocked_values": ["ok", "(unclosed"]}, "processors::redaction::blocked_values::1",
     "invalid regular expression '(unclosed'"),
    ({"blocked_keys": ["[z-a]"]}, "processors::redaction::blocked_keys::0", "invalid regular expression '[z-a]'"),
    ({"genai": {"detectors": ["email", "passport"]}}, "processors::redaction::genai::detectors",
     "unknown detector(s) 'passport'"),
    ({"genai": {"content": "hide"}}, "processors::redaction::genai::content", "'keep', 'mask' or 'drop'"),
    ({"summary": "verbose"}, "processors::redaction::summary", "'debug', 'info' or 'silent'"),
    ({"hash_function": "md5"}, "processors::redaction::hash_function", "unknown key"),
    ({"blocked_keys": ["a"], "blocked_key_patterns": ["b"]}, "processors::redaction", "not both"),
])
def test_bad_config_fails_at_load_naming_the_key(settings: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config_dict(_config(settings))
    assert info.value.path == path
    assert message in info.value.reason


# ------------------------------------------------------------------------------ Collector keys

def collector_batch() -> TraceBatch:
    sp = span(1, 1, T0, {"description": "ok", "group": "g", "safe_attribute": "4111 1111 1111 1111",
                         "notes": "card 5555555555554444 here", "api_token": "t0ps3cret", "user.password": "hunter2",
                         "birth_date": "1970-01-01", "count": 7})
    sp.events.add(name="exception", time_unix_nano=T0, attributes=key_values(
        {"exception.message": "auth failed for key sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z", "exception.type": "E"}))
    sp.status.message = "denied: AKIAIOSFODNN7EXAMPLE"
    rs = ResourceSpans(resource={"attributes": key_values({"service.name": "svc", "host.owner": "ops@example.com"})},
                       scope_spans=[ScopeSpans(spans=[sp])])
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    return TraceBatch.from_request(ExportTraceServiceRequest(resource_spans=[rs]))


def only_span(batch: TraceBatch) -> Span:
    (sp,) = [s for _, _, s in batch.iter_spans()]
    return sp


def test_allowlist_ignored_keys_blocked_keys_and_values_with_debug_summary() -> None:
    red = redactor(allow_all_keys=False, allowed_keys=["description", "group", "notes", "api_token", "service.name",
                                                       "exception.message", "exception.type"],
                   ignored_keys=["safe_attribute"], blocked_keys=["token", "password"],
                   blocked_values=["card [0-9]+"], summary="debug", genai={"mask_attributes": False})
    batch = collector_batch()
    assert red.process(batch) == 1
    attrs = attrs_of(only_span(batch))
    assert attrs == {
        "description": "ok", "group": "g",
        "safe_attribute": "4111 1111 1111 1111",  # ignored: passed untouched, detectors included
        "notes": "**** here",  # blocked_values masks the matching part
        "api_token": "****",  # allowed, but its key is blocked: the whole value
        # removed: not allowed (user.password is not allowed either, so it is removed, not masked)
        "redaction.redacted.keys": "birth_date,count,user.password", "redaction.redacted.count": 3,
        "redaction.masked.keys": "api_token,notes", "redaction.masked.count": 2,
        "redaction.ignored.count": 1,
    }
    resource = {kv.key: to_python(kv.value) for kv in batch.request.resource_spans[0].resource.attributes}
    assert resource == {"service.name": "svc", "redaction.redacted.keys": "host.owner",
                        "redaction.redacted.count": 1}
    event = {kv.key: to_python(kv.value) for kv in only_span(batch).events[0].attributes}
    assert event["exception.message"].startswith("auth failed for key sk-proj-")  # mask_attributes off
    assert batch.raw is None  # mutated: the wire bytes are rebuilt on demand


def test_info_summary_has_counts_only_and_silent_none() -> None:
    batch = collector_batch()
    redactor(blocked_keys=["token"], summary="info").process(batch)
    attrs = attrs_of(only_span(batch))
    assert attrs["redaction.masked.count"] == 3  # api_token (blocked key), notes (card), safe_attribute (card)
    assert not any(k.endswith(".keys") for k in attrs)
    batch = collector_batch()
    redactor(blocked_keys=["token"]).process(batch)
    assert not any(k.startswith("redaction.") for k in attrs_of(only_span(batch)))


def test_detectors_reach_events_resources_and_status_messages() -> None:
    batch = collector_batch()
    red = redactor()
    assert red.process(batch) == 1
    sp = only_span(batch)
    event = {kv.key: to_python(kv.value) for kv in sp.events[0].attributes}
    assert event["exception.message"] == "auth failed for key [REDACTED:openai_api_key]"
    assert sp.status.message == "denied: [REDACTED:aws_access_key]"
    resource = {kv.key: to_python(kv.value) for kv in batch.request.resource_spans[0].resource.attributes}
    assert resource["host.owner"] == "[REDACTED:email]"
    attrs = attrs_of(sp)
    assert attrs["notes"] == "card [REDACTED:credit_card] here"
    assert attrs["safe_attribute"] == "[REDACTED:credit_card]"
    assert attrs["user.password"] == "hunter2"  # no rule names it: detectors only find known shapes


def test_a_second_pass_adds_to_the_summary_and_changes_nothing_else() -> None:
    batch = collector_batch()
    first = redactor(summary="debug", blocked_keys=["token"])
    first.process(batch)
    once = attrs_of(only_span(batch))
    second = redactor(summary="debug", allow_all_keys=False, allowed_keys=list(once), blocked_keys=["birth"])
    second.process(batch)
    twice = attrs_of(only_span(batch))
    assert twice["redaction.masked.keys"] == ",".join(sorted(once["redaction.masked.keys"].split(",") + ["birth_date"]))
    assert twice["redaction.masked.count"] == once["redaction.masked.count"] + 1
    assert {k: v for k, v in twice.items() if not k.startswith("redaction.") and k != "birth_date"} == \
        {k: v for k, v in once.items() if not k.startswith("redaction.") and k != "birth_date"}


def test_the_tenant_attribute_is_never_redacted() -> None:
    batch = collector_batch()
    batch.request.resource_spans[0].resource.attributes.extend(key_values({"tracehouse.tenant": "acme"}))
    redactor(allow_all_keys=False, blocked_keys=["tenant"], summary="debug").process(batch)
    resource = {kv.key: to_python(kv.value) for kv in batch.request.resource_spans[0].resource.attributes}
    assert resource["tracehouse.tenant"] == "acme"
    assert resource["redaction.redacted.keys"] == "host.owner,service.name"


def test_an_untouched_batch_keeps_its_wire_bytes() -> None:
    body = (FIXTURES / "otel-genai-openai-v2/http-protobuf.pb").read_bytes()
    batch = TraceBatch.from_bytes(body)
    assert redactor().process(batch) == 0
    assert batch.raw is body


def test_structured_values_are_masked_in_place() -> None:
    sp = span(1, 1, T0, {"tags": ["prod", "owner:ops@example.com"]})
    sp.attributes.append(KeyValue(key="gen_ai.input.messages", value=any_value(
        [{"role": "user", "parts": [{"type": "text", "content": "I am 123-45-6789"}]}])))
    batch = batch_of([sp])
    redactor().process(batch)
    attrs = attrs_of(only_span(batch))
    assert attrs["tags"] == ["prod", "owner:[REDACTED:email]"]
    assert attrs["gen_ai.input.messages"] == [{"role": "user", "parts": [{"type": "text",
                                                                         "content": "I am [REDACTED:us_ssn]"}]}]
    batch = batch_of([span(1, 1, T0, {})])
    batch.request.resource_spans[0].scope_spans[0].spans[0].attributes.append(KeyValue(
        key="gen_ai.input.messages", value=any_value([{"role": "user", "parts": [{"type": "text", "content": "x"}]}])))
    redactor(genai={"content": "drop"}).process(batch)
    assert attrs_of(only_span(batch))["gen_ai.input.messages"] == [{"role": "user", "parts": [{"type": "text",
                                                                                             "content": ""}]}]


# ------------------------------------------------------------------------------ GenAI content, real payloads

@pytest.mark.parametrize("relative", PAYLOADS)
def test_mask_keeps_every_message_structure_and_masks_every_secret(relative: str) -> None:
    batch = load_batch(relative)
    injected = inject_secrets(batch)
    assert injected > 0
    before = [attrs_of(sp) for _, _, sp in batch.iter_spans()]
    red = redactor()
    changed = red.process(batch)
    assert changed > 0
    wire = batch.to_bytes()
    for marker in markers():
        assert marker not in wire, marker
    after = [attrs_of(sp) for _, _, sp in batch.iter_spans()]
    for old, new in zip(before, after, strict=True):
        assert old.keys() == new.keys()
        for key, value in old.items():
            assert shape_of(value) == shape_of(new[key]), key  # same keys, lengths, roles, types, numbers
    # Every planted secret was counted once, under its detector.
    assert red.masked_values == dict.fromkeys(SECRETS, injected)


@pytest.mark.parametrize("relative", PAYLOADS)
def test_drop_removes_content_keeps_structure_and_genai_fields(relative: str) -> None:
    batch = load_batch(relative)
    inject_secrets(batch)
    want = normalized(load_batch(relative))  # what genai_normalize reads from the original
    before = [attrs_of(sp) for _, _, sp in batch.iter_spans()]
    red = redactor(genai={"content": "drop"})
    assert red.process(batch) > 0
    wire = batch.to_bytes()
    for marker in markers():
        assert marker not in wire, marker
    for old, (_, _, sp) in zip(before, batch.iter_spans(), strict=True):
        new = attrs_of(sp)
        assert old.keys() == new.keys()
        for key, value in old.items():
            if key.endswith(".function.arguments"):
                assert new[key] == ""  # flattened tool arguments are text: dropped whole
                continue
            assert shape_of(value, drop=True) == shape_of(new[key], drop=True), key
    # No message text is left in any content attribute: only structure.
    for _, _, sp in batch.iter_spans():
        for key, value in attrs_of(sp).items():
            for leaf_key, leaf in text_values(key, value):
                assert leaf == "" or leaf_key in STRUCTURAL | {"system_fingerprint"}, (key, leaf_key, leaf)
    # Roles survive, so do provider, models, token counts and prompt links read downstream.
    got = normalized(batch)
    for name in ("provider", "request_model", "response_model", "input_tokens", "output_tokens", "span_kind",
                 "prompt_version", "session_id", "user_id"):
        assert getattr(got, name) == getattr(want, name), name
    assert red.masked_values["content"] > 0


def test_drop_keeps_a_json_null() -> None:
    batch = load_batch("mlflow/http-protobuf.pb")
    redactor(genai={"content": "drop"}).process(batch)
    agent = [attrs_of(sp) for _, _, sp in batch.iter_spans() if sp.name == "umbrella_advisor"][0]
    assert agent["mlflow.spanOutputs"] == "null"
    assert json.loads(agent["mlflow.spanInputs"]) == {"fn": ""}


def test_drop_of_flattened_openinference_messages_keeps_roles_and_tool_names() -> None:
    batch = load_batch("openinference/http-protobuf.pb")
    redactor(genai={"content": "drop"}).process(batch)
    tool_turn = [attrs_of(sp) for _, _, sp in batch.iter_spans()][3]
    assert tool_turn["llm.input_messages.0.message.role"] == "user"
    assert tool_turn["llm.input_messages.0.message.content"] == ""
    assert tool_turn["llm.input_messages.1.message.tool_calls.0.tool_call.function.name"] == "get_weather"
    assert tool_turn["llm.input_messages.1.message.tool_calls.0.tool_call.function.arguments"] == ""
    assert tool_turn["llm.input_messages.2.message.tool_call_id"] == "call_1"
    assert json.loads(tool_turn["llm.prompt_template.variables"]) == {"city": ""}
    assert tool_turn["llm.prompt_template.template"] == "Should I take an umbrella in {city}?"  # templates are masked
    assert json.loads(tool_turn["input.value"])["messages"][1]["tool_calls"][0]["function"] == {
        "name": "get_weather", "arguments": ""}


def test_keep_leaves_content_and_masks_the_rest() -> None:
    sp = span(1, 1, T0, {"gen_ai.input.messages": json.dumps([{"role": "user", "parts": [
        {"type": "text", "content": "mail me at a.b@example.com"}]}]), "enduser.id": "a.b@example.com"})
    batch = batch_of([sp])
    redactor(genai={"content": "keep"}).process(batch)
    attrs = attrs_of(only_span(batch))
    assert "a.b@example.com" in attrs["gen_ai.input.messages"]
    assert attrs["enduser.id"] == "[REDACTED:email]"


def test_deprecated_message_events_and_mlflow_chunks_are_content() -> None:
    sp = span(1, 1, T0, {"gen_ai.operation.name": "chat"})
    sp.events.add(name="gen_ai.user.message", attributes=key_values({"content": "my ssn is 123-45-6789"}))
    sp.events.add(name="gen_ai.choice", attributes=key_values(
        {"message": json.dumps({"role": "assistant", "content": "call +1 415 555 0132"}), "index": 0}))
    sp.events.add(name="mlflow.chunk.item.0", attributes=key_values(
        {"mlflow.chunk.value": json.dumps({"choices": [{"delta": {"content": "jane@example.com"}}]})}))
    sp.events.add(name="app.note", attributes=key_values({"content": "not a message: kept in drop mode"}))
    batch = batch_of([sp])
    redactor(genai={"content": "drop"}).process(batch)
    events = [{kv.key: to_python(kv.value) for kv in e.attributes} for e in only_span(batch).events]
    assert events[0] == {"content": ""}
    assert json.loads(events[1]["message"]) == {"role": "assistant", "content": ""} and events[1]["index"] == 0
    assert json.loads(events[2]["mlflow.chunk.value"]) == {"choices": [{"delta": {"content": ""}}]}
    assert events[3] == {"content": "not a message: kept in drop mode"}


# ------------------------------------------------------------------------------ GenAI columns

async def test_columns_read_before_redaction_are_re_read_from_the_redacted_span() -> None:
    template = "Key sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z: answer {q} for jane@example.com"
    sp = span(1, 1, T0, {
        "llm.request.type": "chat", "gen_ai.request.model": "gpt-4o-mini", "gen_ai.system": "openai",
        "traceloop.prompt.template": template, "traceloop.prompt.template_variables": json.dumps({"q": "SSN 123-45-6789"}),
        "traceloop.association.properties.user_id": "jane@example.com",
        "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "I am jane@example.com",
        "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": "Hi",
    })
    batch = await enrich(batch_of([sp]))  # normalize -> tokens -> cost, messages read (no usage)
    cols = batch.genai
    assert cols is not None and cols.tokens_estimated == [True]
    estimated = cols.input_tokens[0]
    red = redactor()
    red.process(batch)
    masked = template.replace("sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z", "[REDACTED:openai_api_key]").replace(
        "jane@example.com", "[REDACTED:email]")
    assert cols.prompt_template == [masked]
    assert cols.prompt_template_hash == [hashlib.sha256(masked.encode()).hexdigest()]
    assert cols.prompt_name == [f"template-{cols.prompt_template_hash[0][:12]}"]
    assert cols.prompt_variables == ['{"q": "SSN [REDACTED:us_ssn]"}']
    assert cols.user_id == ["[REDACTED:email]"]
    assert cols.input_messages[0] is not None and cols.input_messages[0][0].content == "I am [REDACTED:email]"
    assert cols.input_tokens == [estimated]  # counted on the original text, before redaction
    dropped = await enrich(batch_of([sp]))
    redactor(genai={"content": "drop"}).process(dropped)
    assert dropped.genai is not None
    assert dropped.genai.input_messages == [None] and dropped.genai.prompt_variables == ['{"q": ""}']
    assert dropped.genai.prompt_template == [masked]  # drop masks templates: the registry still links


USAGE_KEYS = ("gen_ai.usage.", "llm.token_count.", "mlflow.chat.tokenUsage", "ai.usage.")


@pytest.mark.parametrize("content", ["mask", "drop"])
@pytest.mark.parametrize("relative", PAYLOADS)
async def test_nothing_queued_holds_a_secret(relative: str, content: str) -> None:
    """What the exporter's disk queue would write (the spans and their GenAI columns, with
    messages read for token estimation since usage is missing) holds no secret."""
    batch = load_batch(relative)
    inject_secrets(batch)
    for _, _, sp in batch.iter_spans():
        keep = [kv for kv in sp.attributes if not kv.key.startswith(USAGE_KEYS)]
        del sp.attributes[:]
        sp.attributes.extend(keep)
    batch.mark_mutated()
    batch = await enrich(batch)
    assert batch.genai is not None and any(m is not None for m in batch.genai.input_messages)
    assert any(m in encode_batch(batch) for m in markers())
    redactor(genai={"content": content}).process(batch)
    queued = encode_batch(batch)
    for marker in markers():
        assert marker not in queued, marker


# ------------------------------------------------------------------------------ metrics

def test_counters_by_kind() -> None:
    host = TestHost()
    red = redactor(host=host, blocked_keys=["token"], allow_all_keys=False,
                   allowed_keys=["notes", "api_token", "safe_attribute", "exception.message", "service.name"])
    batch = collector_batch()
    red.process(batch)
    r = host.telemetry.registry

    def value(name: str, **labels: str) -> float | None:
        return r.get_sample_value(name, {"processor": "redaction", "pipeline": "traces", **labels})

    assert value("tracehouse_processor_redaction_masked_values_total", kind="credit_card") == 2
    assert value("tracehouse_processor_redaction_masked_values_total", kind="openai_api_key") == 1
    assert value("tracehouse_processor_redaction_masked_values_total", kind="aws_access_key") == 1
    assert value("tracehouse_processor_redaction_masked_values_total", kind="blocked_key") == 1
    # description, group, user.password, birth_date, count (span), exception.type (event), host.owner (resource)
    assert value("tracehouse_processor_redaction_redacted_keys_total") == 7
    assert value("tracehouse_processor_redaction_spans_total") == 1
    assert b"tracehouse_processor_redaction_masked_values_total" in host.telemetry.render()


def test_the_sidecar_loads_no_genai_processor_engine_or_tokenizer() -> None:
    # The sidecar runs redaction before Kafka and must stay small (deploy/docker/README.md).
    code = ("import sys, tracehouse.processors.redaction.factory; print(sorted(m for m in sys.modules if "
            "m.startswith(('tracehouse.processors.genai', 'chdb', 'bpe_openai', 'clickhouse_connect'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
