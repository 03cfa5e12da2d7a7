"""The redaction processor's request gate: a request whose strings, read whole in C, give the
detectors nothing is not walked; everything else is walked as before. The gate never
changes an outcome: redacted with and without it, the captured payloads, the seed flows and
the bench traffic (with and without planted secrets) come out byte for byte the same, with
the same GenAI columns and counts."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client_flows import FLOWS, load_flow
from genai_helpers import batch_of, span
from otlp_fixtures import load_batch
from redaction_helpers import inject_secrets, redactor
from tracehouse.bench import traffic
from tracehouse.bench.genai_processors import NOW_NS, plant_secrets
from tracehouse.core import _otlpwire
from tracehouse.core.pdata import TraceBatch
from tracehouse.processors.redaction.detectors import DETECTOR_KINDS, Scanner
from tracehouse.processors.redaction.processor import RedactionProcessor
from test_redaction import PAYLOADS, normalized

T0 = 1_795_000_000_000_000_000


def without_gate(**config: Any) -> RedactionProcessor:
    processor = redactor(**config)
    processor._gate_requests = False  # every request walked: the reference
    return processor


def outcome(batch: TraceBatch, processor: RedactionProcessor) -> tuple[Any, ...]:
    changed = processor.process(batch)
    cols = batch.genai
    return (changed, [r.SerializeToString() for r in batch.requests], batch.raw is None, copy.deepcopy(cols),
            dict(processor.masked_values), processor.redacted_spans)


def batches() -> list[tuple[str, list[TraceBatch]]]:
    def bench(secrets: bool) -> list[TraceBatch]:
        payloads = traffic.pregenerate(seed=5, total_spans=1_500, spans_per_request=250, now_ns=NOW_NS)
        return [TraceBatch.from_bytes(plant_secrets(p.body, every=40) if secrets else p.body) for p in payloads]

    def planted(relative: str) -> list[TraceBatch]:
        batch = load_batch(relative)
        inject_secrets(batch)
        return [load_batch(relative), batch]

    cases = [("bench", bench(False)), ("bench_secrets", bench(True))]
    cases += [(relative, planted(relative)) for relative in PAYLOADS]
    cases += [(flow, load_flow(flow)) for flow in FLOWS]
    return cases


@pytest.mark.parametrize(("name", "parts"), batches(), ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("config", [{}, {"genai": {"content": "keep"}}, {"summary": "debug"}], ids=str)
def test_the_gate_changes_no_outcome(name: str, parts: list[TraceBatch], config: dict[str, Any]) -> None:
    for merged in (False, True):
        results = []
        for processor in (redactor(**config), without_gate(**config)):
            copies = [TraceBatch.from_bytes(p.to_bytes()) for p in parts]
            for c in copies:
                normalized(c)
            batch_list = [TraceBatch.merge(copies)] if merged else copies
            results.append([outcome(b, processor) for b in batch_list])
        assert results[0] == results[1]


def test_clean_spans_are_not_walked_and_the_others_still_are() -> None:
    clean = batch_of([span(1, 1, T0, {"gen_ai.request.model": "gpt-4o", "note": "nothing to see"}),
                      span(1, 2, T0, {"gen_ai.prompt": "hello"})])
    dirty = batch_of([span(2, 1, T0, {"gen_ai.prompt": "mail me at jane.doe@example.com"})])
    merged = TraceBatch.merge([clean, dirty])
    normalized(merged)
    processor = redactor()
    assert processor.process(merged) == 1
    assert processor.spans_cleared == 2
    assert merged.requests[0].SerializeToString() == clean.requests[0].SerializeToString()
    masked = merged.requests[1].resource_spans[0].scope_spans[0].spans[0].attributes[0].value.string_value
    assert masked == "mail me at [REDACTED:email]"
    # The dirty span's GenAI columns were re-read at its own index, past the cleared request's spans.
    assert merged.genai is not None and merged.genai.size == 3


@pytest.mark.parametrize("config", [{"blocked_values": ["secret"]}, {"blocked_keys": ["token"]},
                                    {"ignored_keys": ["note"]}, {"allow_all_keys": False, "allowed_keys": ["a"]},
                                    {"genai": {"content": "drop"}}], ids=str)
def test_rules_that_read_keys_or_drop_content_walk_every_request(config: dict[str, Any]) -> None:
    batch = batch_of([span(1, 1, T0, {"note": "nothing to see", "token": "x"})])
    processor = redactor(**config)
    processor.process(batch)
    assert processor.spans_cleared == 0


@pytest.mark.parametrize("relative", PAYLOADS)
def test_scan_texts_hold_each_owner_s_strings_in_walk_order(relative: str) -> None:
    batch = load_batch(relative)
    texts = iter(_otlpwire.scan_texts(batch.requests[0].SerializeToString()))

    def holds(text: str, kvs: Any) -> bool:
        return all(kv.value.string_value + "\x00" in text for kv in kvs if kv.value.string_value)

    for rs in batch.resources():
        assert holds(next(texts), rs.resource.attributes)
        for ss in rs.scope_spans:
            assert holds(next(texts), ss.scope.attributes)
            for sp in ss.spans:
                text = next(texts)
                assert holds(text, sp.attributes) and all(holds(text, e.attributes) for e in sp.events)
                assert sp.status.message in text
    assert next(texts, None) is None


def _units(text: str) -> tuple[bytes, list[str]]:
    """A request of one span whose only attribute is `text`, and scan_texts' units of it."""
    body = batch_of([span(1, 1, T0, {"value": text})]).requests[0].SerializeToString()
    return body, _otlpwire.scan_texts(body)


def c_gate(scanner: Scanner, body: bytes) -> list[bool]:
    literals, email, digits = scanner.wire_gate
    return [bool(hit) for hit in _otlpwire.gate_units(body, literals, email, digits)]


SUBSETS = [DETECTOR_KINDS, ("email",), ("phone", "credit_card", "us_ssn"),
           tuple(k for k in DETECTOR_KINDS if k not in ("email", "phone", "credit_card", "us_ssn"))]


@pytest.mark.parametrize("kinds", SUBSETS, ids=lambda k: "+".join(k) if len(k) < 4 else f"{len(k)} kinds")
@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("0123456789-. +@_aAeJsSkKIxohgpbuzliveBEGIN()é\x00")),
                    max_size=40))
def test_the_c_gate_answers_as_the_python_gate(kinds: tuple[str, ...], text: str) -> None:
    """Same verdict for every unit, so the C gate clears only what the Python gate clears.
    (Its one loosening, a non-ASCII byte as a domain character, never clears more.)"""
    scanner = Scanner(kinds)
    body, texts = _units(text)
    python = [scanner.may_match(t) for t in texts]
    got = c_gate(scanner, body)
    if text.isascii():
        assert got == python
    else:
        assert all(g or not p for g, p in zip(got, python, strict=True))


@pytest.mark.parametrize("secret", [
    "jane.doe@example.com", "+44 20 7946 0958", "(555) 123-4567", "4111 1111 1111 1111", "4111111111111111",
    "3782 822463 10005", "123-45-6789", "sk-ant-" + "a" * 24, "sk-proj-" + "b" * 24, "rk_live_" + "c" * 20,
    "AKIA" + "D" * 16, "AIza" + "e" * 35, "ghp_" + "f" * 36, "github_pat_" + "g" * 22, "xoxb-" + "h" * 12,
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.abc", "-----BEGIN RSA PRIVATE KEY-----\nMIIB",
])
def test_the_c_gate_lets_every_detector_s_example_through(secret: str) -> None:
    scanner = Scanner(DETECTOR_KINDS)
    body, texts = _units(f"before {secret} after")
    assert scanner.find(texts[-1]), secret  # the detectors do find it
    assert c_gate(scanner, body)[-1] is True


def test_the_c_gate_on_captured_and_bench_units_matches_the_python_gate() -> None:
    scanner = Scanner(DETECTOR_KINDS)
    payloads = traffic.pregenerate(seed=9, total_spans=1_000, spans_per_request=250, now_ns=NOW_NS)
    bodies = [plant_secrets(p.body, every=7) for p in payloads]
    bodies += [load_batch(relative).requests[0].SerializeToString() for relative in PAYLOADS]
    hits = 0
    for body in bodies:
        python = [scanner.may_match(t) for t in _otlpwire.scan_texts(body)]
        got = c_gate(scanner, body)
        assert all(g or not p for g, p in zip(got, python, strict=True))
        assert sum(got) - sum(python) <= len(got) // 50  # loosened only by non-ASCII domains
        hits += sum(got)
    assert hits > 50
