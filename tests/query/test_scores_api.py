"""Scores: `POST/GET /api/v1/scores`, `DELETE /api/v1/scores/{id}`, `gen_ai.evaluation.result`
span events, the `score` filter of trace search, the scores of the trace list and detail, and
the score rollup of `GET /api/v1/metrics/genai?scores=true`.

Spans are made by the OpenTelemetry SDK (its OTLP encoding), with GenAI attributes and
evaluation events named as the semantic conventions say (no SDK emits evaluation events:
they are added with the SDK's `add_event`), enriched by the real GenAI processors and written
by the real ClickHouse exporter on the session's chDB. Scores go through the API's routes.
Expected rollup figures are computed here, in Python, from the scores the test sent and the
labels it gave its spans.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import trace as trace_api
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga

from genai_helpers import enrich_all
from genai_seed import Health
from test_genai_metrics_api import assert_written_as_the_model
from tracehouse.core.auth import KeyKind, Principal
from tracehouse.core.component import ComponentID, Kind, Settings
from tracehouse.core.errors import UnauthenticatedError
from tracehouse.core.pdata import TraceBatch
from tracehouse.core.testing import TestHost
from tracehouse.query.access import Access
from tracehouse.query.app import create_app
from tracehouse.query.config import QueryClickHouseConfig
from tracehouse.query.params import parse_time_ns
from tracehouse.query.store import TraceStore
from tracehouse.sinks.clickhouse.config import ClickHouseExporterConfig
from tracehouse.sinks.clickhouse.exporter import ClickHouseExporter

NS = 1_000_000_000
T0 = parse_time_ns("2026-03-01T10:00:00Z")
RANGE = {"start": "2026-03-01T09:00:00Z", "end": "2026-03-01T12:00:00Z"}
EVALUATION = "gen_ai.evaluation.result"
DEFAULT, ROLLUP, OTHER = "", "rollup", "acme"
KEYS = {"full": (DEFAULT, KeyKind.FULL), "ingest": (DEFAULT, KeyKind.INGEST), "read": (DEFAULT, KeyKind.READ),
        "rollup-full": (ROLLUP, KeyKind.FULL), "acme-full": (OTHER, KeyKind.FULL)}


class Keys:
    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        key = headers.get("authorization", "").removeprefix("Bearer ")
        if key not in KEYS:
            raise UnauthenticatedError("unknown key")
        tenant, kind = KEYS[key]
        return Principal(tenant, kind, key)

    def admit(self, tenant: str, spans: int, nbytes: int) -> None:
        pass


# ------------------------------------------------------------------------------ spans


def chat(model: str, prompt: str = "", version: str = "") -> dict[str, Any]:
    attrs: dict[str, Any] = {ga.GEN_AI_OPERATION_NAME: "chat", "gen_ai.provider.name": "openai",
                             ga.GEN_AI_REQUEST_MODEL: model, "gen_ai.usage.input_tokens": 10,
                             "gen_ai.usage.output_tokens": 5}
    if prompt:  # OpenLLMetry's prompt attributes (what links a span to a prompt version)
        attrs.update({"traceloop.prompt.key": prompt, "traceloop.prompt.version": version})
    return attrs


def evaluation(name: str, value: float | None = None, label: str | None = None, explanation: str | None = None,
               **extra: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {ga.GEN_AI_EVALUATION_NAME: name, **extra}
    if value is not None:
        attrs[ga.GEN_AI_EVALUATION_SCORE_VALUE] = value
    if label is not None:
        attrs[ga.GEN_AI_EVALUATION_SCORE_LABEL] = label
    if explanation is not None:
        attrs[ga.GEN_AI_EVALUATION_EXPLANATION] = explanation
    return attrs


@dataclass
class SpanSpec:
    name: str
    at_s: float
    attrs: dict[str, Any] = field(default_factory=dict)
    children: list[SpanSpec] = field(default_factory=list)
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)  # (seconds after T0, attributes)


@dataclass
class Trace:
    trace_id: str
    spans: dict[str, str]  # span name -> span id


def make_trace(root: SpanSpec, service: str = "support-bot") -> tuple[Trace, list[ReadableSpan]]:
    """One trace made with the OpenTelemetry SDK, at fixed times."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("scores-test")

    def emit(spec: SpanSpec, parent: trace_api.Span | None) -> None:
        context = trace_api.set_span_in_context(parent) if parent is not None else None
        span = tracer.start_span(spec.name, context=context, start_time=T0 + int(spec.at_s * NS),
                                 attributes=spec.attrs)
        for at_s, attrs in spec.events:
            span.add_event(EVALUATION, attrs, timestamp=T0 + int(at_s * NS))
        for child in spec.children:
            emit(child, span)
        span.end(end_time=T0 + int((spec.at_s + 1) * NS))

    emit(root, None)
    spans = list(memory.get_finished_spans())
    return Trace(format(spans[0].context.trace_id, "032x"),
                 {s.name: format(s.context.span_id, "016x") for s in spans}), spans


@dataclass
class World:
    app: FastAPI
    endpoint: str
    database: str
    traces: dict[str, Trace]
    spans: dict[str, list[ReadableSpan]]  # each trace's spans, to send again


async def export(world: World, spans: Sequence[ReadableSpan], tenant: str) -> None:
    """The spans through the GenAI processors and the ClickHouse exporter (one per event loop)."""
    batches = await enrich_all([TraceBatch.from_request(encode_spans(spans))])
    exporter = ClickHouseExporter(Settings(ComponentID("clickhouse"), Kind.EXPORTER),
                                  ClickHouseExporterConfig(endpoint=world.endpoint, database=world.database))
    await exporter.start(TestHost())
    try:
        for batch in batches:
            batch.tenant = tenant
            await exporter.consume(batch)
    finally:
        await exporter.shutdown()


# Spans of the default tenant: every test but the rollup's reads them.
TRACES = {
    # An agent whose model call was judged twice by an evaluator (one judgement failed).
    "judged": SpanSpec("agent", 0, children=[SpanSpec("chat", 0.1, chat("gpt-4o", "support", "1"), events=[
        (2, evaluation("relevance", 0.9, "relevant", "on topic", **{"gen_ai.response.id": "resp-1"})),
        (3, evaluation("faithfulness", **{"error.type": "timeout"}))])]),
    "poor": SpanSpec("chat", 60, chat("gpt-4o-mini", "support", "2"), events=[
        (62, evaluation("relevance", 0.3, "not_relevant"))]),
    "labelled": SpanSpec("chat", 120, chat("gpt-4o-mini"), events=[(121, evaluation("tone", label="friendly"))]),
    "plain": SpanSpec("healthcheck", 180),
}


@pytest.fixture(scope="module")
def world(chdb_endpoint: str) -> Iterator[World]:
    database = f"scores_{uuid.uuid4().hex[:12]}"
    store = TraceStore(QueryClickHouseConfig(endpoint=chdb_endpoint, database=database), max_workers=2)
    made = {key: make_trace(spec) for key, spec in TRACES.items()}
    w = World(create_app(store, Health(), access=Access(Keys())), chdb_endpoint, database,  # type: ignore[arg-type]
              {key: trace for key, (trace, _) in made.items()}, {key: spans for key, (_, spans) in made.items()})

    async def seed() -> None:
        for spans in w.spans.values():
            await export(w, spans, DEFAULT)

    asyncio.run(seed())
    yield w
    asyncio.run(store.close())


@pytest.fixture
async def api(world: World) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=world.app), base_url="http://query",
                                 headers={"authorization": "Bearer full"}) as client:
        yield client


async def post(api: httpx.AsyncClient, body: Any, key: str = "full", status: int = 201) -> dict[str, Any]:
    resp = await api.post("/api/v1/scores", json=body, headers={"authorization": f"Bearer {key}"})
    assert resp.status_code == status, resp.text
    result: dict[str, Any] = resp.json()
    return result


async def scores_of(api: httpx.AsyncClient, trace_id: str, key: str = "full", **params: str) -> list[dict[str, Any]]:
    resp = await api.get("/api/v1/scores", params={"trace_id": trace_id, **params},
                         headers={"authorization": f"Bearer {key}"})
    assert resp.status_code == 200, resp.text
    scores: list[dict[str, Any]] = resp.json()["scores"]
    return scores


async def search(api: httpx.AsyncClient, *filters: str, key: str = "full") -> list[str]:
    resp = await api.get("/api/v1/traces", params={**RANGE, "score": list(filters), "limit": 100},
                         headers={"authorization": f"Bearer {key}"})
    assert resp.status_code == 200, resp.text
    return [t["trace_id"] for t in resp.json()["traces"]]


# ------------------------------------------------------------------------------ validation


VALID = {"trace_id": "ab" * 16, "name": "helpfulness", "value": 0.5}


@pytest.mark.parametrize(("body", "parameter", "message"), [
    ({**VALID, "trace_id": None}, "trace_id", "required"),
    ({k: v for k, v in VALID.items() if k != "trace_id"}, "trace_id", "required"),
    ({**VALID, "trace_id": "xyz"}, "trace_id", "32 hex"),
    ({**VALID, "trace_id": "0" * 32}, "trace_id", "not all zero"),
    ({**VALID, "trace_id": 12}, "trace_id", "expected a string"),
    ({**VALID, "span_id": "abc"}, "span_id", "16 hex"),
    ({**VALID, "span_id": "0" * 16}, "span_id", "not all zero"),
    ({**VALID, "name": "  "}, "name", "must not be empty"),
    ({k: v for k, v in VALID.items() if k != "name"}, "name", "required"),
    ({**VALID, "name": "a\nb"}, "name", "control characters"),
    ({**VALID, "name": "n" * 257}, "name", "longer than 256"),
    ({k: v for k, v in VALID.items() if k != "value"}, "value", "required"),
    ({**VALID, "value": None}, "value", "required"),
    ({**VALID, "value": [1, 2]}, "value", "a number, a boolean or a string"),
    ({**VALID, "value": {"a": 1}}, "value", "a number, a boolean or a string"),
    ({**VALID, "value": ""}, "value", "category must be 1 to"),
    ({**VALID, "value": 2**60}, "value", "too large"),
    ({**VALID, "data_type": "numeric", "value": "high"}, "value", "numeric score's value must be a number"),
    ({**VALID, "data_type": "boolean", "value": 1}, "value", "boolean score's value must be true or false"),
    ({**VALID, "data_type": "categorical", "value": 2}, "value", "categorical score's value must be a string"),
    ({**VALID, "data_type": "ordinal"}, "data_type", "expected one of numeric, boolean, categorical"),
    ({**VALID, "source": "robot"}, "source", "expected one of human, llm_judge, code"),
    ({**VALID, "kind": "opinion"}, "kind", "expected one of feedback, expectation"),
    ({**VALID, "timestamp": "yesterday"}, "timestamp", "RFC 3339"),
    ({**VALID, "timestamp": -5}, "timestamp", "unix seconds"),
    ({**VALID, "timestamp": True}, "timestamp", "RFC 3339"),
    ({**VALID, "score_id": "has space"}, "score_id", "letters, digits"),
    ({**VALID, "score_id": "a/b"}, "score_id", "letters, digits"),
    ({**VALID, "metadata": {"k": 1}}, "metadata", "string value"),
    ({**VALID, "metadata": "x"}, "metadata", "object"),
    ({**VALID, "comment": 5}, "comment", "expected a string"),
    ({**VALID, "colour": "red"}, "colour", "unknown field"),
    ([VALID, {**VALID, "value": "x", "data_type": "boolean"}], "scores[1].value", "true or false"),
    ([VALID, 7], "scores[1]", "expected a JSON object"),
    ([{**VALID, "score_id": "dup"}, {**VALID, "score_id": "dup"}], "scores[1].score_id", "appears twice"),
    ([], "body", "no score"),
    ([VALID] * 1001, "body", "at most 1000"),
    ("just text", "body", "score object or a list"),
])
async def test_an_invalid_score_is_a_400_naming_its_field(api: httpx.AsyncClient, body: Any, parameter: str,
                                                          message: str) -> None:
    resp = await api.post("/api/v1/scores", json=body)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["parameter"] == parameter and message in error["message"], error
    assert await scores_of(api, VALID["trace_id"]) == [], "nothing of a refused request is stored"


async def test_a_body_that_is_not_json_or_holds_nan_is_a_400(api: httpx.AsyncClient) -> None:
    for raw in (b"{", b'{"trace_id": "' + b"ab" * 16 + b'", "name": "x", "value": NaN}'):
        resp = await api.post("/api/v1/scores", content=raw, headers={"content-type": "application/json"})
        assert resp.status_code == 400 and resp.json()["error"]["parameter"] == "body", resp.text


async def test_a_body_over_the_limit_is_a_413(api: httpx.AsyncClient) -> None:
    resp = await api.post("/api/v1/scores", content=b"[" + b" " * (5 * 1024 * 1024) + b"]",
                          headers={"content-type": "application/json"})
    assert resp.status_code == 413, resp.text


@pytest.mark.parametrize(("params", "parameter"), [
    ({}, "trace_id"), ({"trace_id": "nope"}, "trace_id"), ({"trace_id": "ab" * 16, "span_id": "zz"}, "span_id")])
async def test_bad_score_reads_are_400s(api: httpx.AsyncClient, params: dict[str, str], parameter: str) -> None:
    resp = await api.get("/api/v1/scores", params=params)
    assert resp.status_code == 400 and resp.json()["error"]["parameter"] == parameter, resp.text


# ------------------------------------------------------------------------------ keys and tenants


async def test_ingest_and_full_keys_write_scores_read_keys_cannot(api: httpx.AsyncClient, world: World) -> None:
    trace_id = world.traces["plain"].trace_id
    body = {"trace_id": trace_id, "name": "keys-check", "value": "ok", "score_id": "keys-check-1"}
    assert (await post(api, body, key="read", status=403))["error"]["code"] == 403
    assert (await post(api, body, key="ingest"))["score_ids"] == ["keys-check-1"]
    resp = await api.get("/api/v1/scores", params={"trace_id": trace_id}, headers={"authorization": "Bearer ingest"})
    assert resp.status_code == 403, "an ingest key reads nothing"
    assert [s["score_id"] for s in await scores_of(api, trace_id, key="read", name="keys-check")] == ["keys-check-1"]
    resp = await api.delete("/api/v1/scores/keys-check-1", headers={"authorization": "Bearer read"})
    assert resp.status_code == 403
    resp = await api.post("/api/v1/scores", json=body, headers={"authorization": "Bearer nope"})
    assert resp.status_code == 401 and resp.headers["www-authenticate"].startswith("Bearer")
    # Another tenant neither sees nor deletes it, and its own score of that id is its own.
    assert await scores_of(api, trace_id, key="acme-full") == []
    resp = await api.delete("/api/v1/scores/keys-check-1", headers={"authorization": "Bearer acme-full"})
    assert resp.status_code == 404
    await post(api, {**body, "value": "acme's"}, key="acme-full")
    assert [s["value"] for s in await scores_of(api, trace_id, key="acme-full")] == ["acme's"]
    assert [s["value"] for s in await scores_of(api, trace_id, name="keys-check")] == ["ok"]
    resp = await api.delete("/api/v1/scores/keys-check-1", headers={"authorization": "Bearer ingest"})
    assert resp.status_code == 200 and resp.json() == {"score_id": "keys-check-1", "deleted": True}


# ------------------------------------------------------------------------------ idempotency


async def test_a_score_sent_twice_is_one_score(api: httpx.AsyncClient, world: World) -> None:
    trace = world.traces["labelled"]
    body = {"trace_id": trace.trace_id.upper(), "span_id": trace.spans["chat"], "name": "conciseness",
            "value": 4, "comment": "short", "source": "human", "author": "ana", "metadata": {"ticket": "T-1"}}
    first = (await post(api, body))["score_ids"]
    again = (await post(api, [body]))["score_ids"]
    assert first == again and first[0].startswith("s-"), "no id given: one derived from the score's content"
    [stored] = await scores_of(api, trace.trace_id, name="conciseness")
    assert stored == {"score_id": first[0], "name": "conciseness", "data_type": "numeric", "value": 4.0, "label": "",
                      "comment": "short", "source": "human", "author": "ana", "timestamp": stored["timestamp"],
                      "span_id": trace.spans["chat"], "kind": "feedback", "run_id": "", "error": "",
                      "metadata": {"ticket": "T-1"}}
    # Another value is another judgement: another score.
    other = (await post(api, {**body, "value": 2}))["score_ids"]
    assert other != first and len(await scores_of(api, trace.trace_id, name="conciseness")) == 2


async def test_a_score_resent_with_its_id_replaces_itself_and_keeps_its_time(api: httpx.AsyncClient,
                                                                             world: World) -> None:
    trace_id = world.traces["labelled"].trace_id
    body = {"score_id": "review-7", "trace_id": trace_id, "name": "review", "value": "good", "source": "human"}
    await post(api, {**body, "timestamp": "2026-03-01T10:30:00Z"})
    await post(api, {**body, "value": "excellent", "comment": "on second thought"})  # no timestamp: keeps its own
    [stored] = await scores_of(api, trace_id, name="review")
    assert (stored["value"], stored["comment"], stored["timestamp"]) == (
        "excellent", "on second thought", "2026-03-01T10:30:00.000000000Z")
    await post(api, {**body, "value": "fine", "timestamp": 1772362800.5})  # 11:00:00.5, unix seconds
    [stored] = await scores_of(api, trace_id, name="review")
    assert (stored["value"], stored["timestamp"]) == ("fine", "2026-03-01T11:00:00.500000000Z")
    # The id is the score's: on another trace it is a conflict, nothing is written.
    resp = await api.post("/api/v1/scores", json=[{**body, "score_id": "fresh"}, {**body, "trace_id": "cd" * 16}])
    assert resp.status_code == 409 and resp.json()["error"]["parameter"] == "scores[1].score_id", resp.text
    assert await scores_of(api, trace_id, name="review") == [stored]
    assert await scores_of(api, "cd" * 16) == []


# ------------------------------------------------------------------------------ deletion


async def test_a_deleted_score_is_gone_everywhere(api: httpx.AsyncClient, world: World) -> None:
    trace_id = world.traces["plain"].trace_id
    await post(api, {"score_id": "gone-1", "trace_id": trace_id, "name": "doomed", "value": 0.25})
    assert await search(api, "doomed<=0.25") == [trace_id]
    resp = await api.delete("/api/v1/scores/gone-1")
    assert resp.status_code == 200, resp.text
    assert await scores_of(api, trace_id, name="doomed") == []
    assert await search(api, "doomed<=0.25") == []
    detail = (await api.get(f"/api/v1/traces/{trace_id}")).json()
    assert "gone-1" not in [s["score_id"] for s in detail["scores"]]
    assert (await api.delete("/api/v1/scores/gone-1")).status_code == 404, "deleted already"
    for unknown in ("never-was", "bad%20id"):
        resp = await api.delete(f"/api/v1/scores/{unknown}")
        assert resp.status_code == 404 and "not found" in resp.json()["error"]["message"]
    # Sent again with its id, it is back (an explicit re-creation).
    await post(api, {"score_id": "gone-1", "trace_id": trace_id, "name": "doomed", "value": 0.5})
    assert [s["value"] for s in await scores_of(api, trace_id, name="doomed")] == [0.5]


# ------------------------------------------------------------------------------ evaluation events


async def test_evaluation_events_are_scores_of_the_span_they_judge(api: httpx.AsyncClient, world: World) -> None:
    trace = world.traces["judged"]
    detail = (await api.get(f"/api/v1/traces/{trace.trace_id}")).json()
    by_name = {s["name"]: s for s in detail["scores"]}
    relevance, faithfulness = by_name["relevance"], by_name["faithfulness"]
    assert relevance["score_id"].startswith("ev-")
    assert {k: relevance[k] for k in ("data_type", "value", "label", "comment", "span_id", "timestamp", "error",
                                      "metadata", "source", "kind")} == {
        "data_type": "numeric", "value": 0.9, "label": "relevant", "comment": "on topic",
        "span_id": trace.spans["chat"], "timestamp": "2026-03-01T10:00:02.000000000Z", "error": "",
        "metadata": {"gen_ai.response.id": "resp-1"}, "source": "", "kind": "feedback"}
    assert (faithfulness["value"], faithfulness["error"], faithfulness["data_type"]) == ("", "timeout", "categorical")
    [tone] = await scores_of(api, world.traces["labelled"].trace_id, name="tone")
    assert (tone["data_type"], tone["value"]) == ("categorical", "friendly"), "a label alone is a category"


async def test_a_replayed_batch_writes_its_evaluations_once_and_never_undoes_a_deletion(
        api: httpx.AsyncClient, world: World) -> None:
    trace = world.traces["poor"]
    [before] = await scores_of(api, trace.trace_id, name="relevance")
    await export(world, world.spans["poor"], DEFAULT)  # at-least-once: the same spans again
    assert await scores_of(api, trace.trace_id, name="relevance") == [before]
    assert (await api.delete(f"/api/v1/scores/{before['score_id']}")).status_code == 200
    await export(world, world.spans["poor"], DEFAULT)
    assert await scores_of(api, trace.trace_id, name="relevance") == [], "the replay is older than the deletion"
    await post(api, {"trace_id": trace.trace_id, "span_id": trace.spans["chat"], "name": "relevance",
                     "value": 0.3, "score_id": before["score_id"], "timestamp": before["timestamp"]})  # restore


# ------------------------------------------------------------------------------ search


async def test_trace_search_filters_by_score(api: httpx.AsyncClient, world: World) -> None:
    t = {key: trace.trace_id for key, trace in world.traces.items()}
    await post(api, [{"trace_id": t["judged"], "name": "verdict", "value": "pass", "score_id": "f-1"},
                     {"trace_id": t["poor"], "name": "verdict", "value": "fail", "score_id": "f-2"},
                     {"trace_id": t["poor"], "name": "safe", "value": True, "score_id": "f-3"},
                     {"trace_id": t["judged"], "name": "safe", "value": False, "score_id": "f-4"}])
    assert await search(api, "relevance>=0.5") == [t["judged"]]
    assert await search(api, "relevance > 0.9") == []
    assert await search(api, "relevance<0.5") == [t["poor"]]
    assert await search(api, "relevance<=0.9") == [t["poor"], t["judged"]], "newest first"
    assert await search(api, "relevance=0.3") == [t["poor"]]
    assert await search(api, "relevance!=0.3") == [t["judged"]]
    assert await search(api, "relevance=relevant") == [t["judged"]], "a numeric score's label"
    assert await search(api, "verdict=pass") == [t["judged"]]
    assert await search(api, "verdict!=pass") == [t["poor"]]
    assert await search(api, "safe=true") == [t["poor"]]
    assert await search(api, "safe>=1") == [t["poor"]], "booleans compare as 1/0"
    assert await search(api, "tone=friendly") == [t["labelled"]]
    assert await search(api, "verdict=pass", "safe=false", "relevance>0.5") == [t["judged"]], "all must hold"
    assert await search(api, "verdict=pass", "safe=true") == [], "on the same trace"
    assert await search(api, "nosuchscore>=0") == []
    assert await search(api, "verdict=pass", key="acme-full") == [], "another tenant's scores"
    resp = await api.get("/api/v1/traces", params={**RANGE, "score": "verdict=pass", "service": "support-bot"})
    assert [r["trace_id"] for r in resp.json()["traces"]] == [t["judged"]], "with the other filters"


@pytest.mark.parametrize(("value", "message"), [
    ("relevance", "expected <name><op><value>"), (">=0.5", "a name and a value"), ("relevance>=", "a name and a value"),
    ("relevance>=high", "compares with a number"), ("relevance<nan", "compares with a number")])
async def test_a_bad_score_filter_is_a_400(api: httpx.AsyncClient, value: str, message: str) -> None:
    resp = await api.get("/api/v1/traces", params={"score": value})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["parameter"] == "score" and message in resp.json()["error"]["message"]
    resp = await api.get("/api/v1/traces", params={"score": ["a=1"] * 17})
    assert resp.status_code == 400 and "at most 16" in resp.json()["error"]["message"]


async def test_the_trace_list_and_detail_show_the_scores(api: httpx.AsyncClient, world: World) -> None:
    trace = world.traces["judged"]
    await post(api, [{"trace_id": trace.trace_id, "name": "stars", "value": v, "score_id": f"stars-{v}"}
                     for v in (3, 4, 5)])
    resp = await api.get("/api/v1/traces", params={**RANGE, "score": "stars>=3"})
    [row] = resp.json()["traces"]
    stars = next(s for s in row["scores"] if s["name"] == "stars")
    assert stars == {"name": "stars", "scores": 3, "numeric_count": 3, "mean": 4.0, "min": 3.0, "max": 5.0,
                     "categories": {}, "other_categories": 0, "errors": 0}
    relevance = next(s for s in row["scores"] if s["name"] == "relevance")
    assert relevance["categories"] == {"relevant": 1} and relevance["mean"] == 0.9
    assert [s["name"] for s in row["scores"]] == sorted(s["name"] for s in row["scores"])
    detail = (await api.get(f"/api/v1/traces/{trace.trace_id}")).json()
    assert {"stars-3", "stars-4", "stars-5"} <= {s["score_id"] for s in detail["scores"]}
    chat = await scores_of(api, trace.trace_id, span_id=trace.spans["chat"].upper())
    assert {s["name"] for s in chat} == {"relevance", "faithfulness"}, "a span's own scores"


# ------------------------------------------------------------------------------ the rollup


@dataclass
class Sent:
    """What the rollup test sent, to compute the rollup from."""

    labels: dict[tuple[str, str], tuple[str, str, str]] = field(default_factory=dict)  # span -> model, prompt, version
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)  # live scores by id

    def add_trace(self, trace: Trace, specs: Mapping[str, dict[str, Any]]) -> None:
        for name, attrs in specs.items():
            if ga.GEN_AI_REQUEST_MODEL in attrs:
                self.labels[(trace.trace_id, trace.spans[name])] = (
                    attrs[ga.GEN_AI_REQUEST_MODEL], attrs.get("traceloop.prompt.key", ""),
                    attrs.get("traceloop.prompt.version", ""))

    def about(self, score: Mapping[str, Any]) -> set[tuple[str, str, str]]:
        """The labels a score falls under: its span's, else its trace's GenAI spans', else none."""
        own = self.labels.get((score["trace_id"], score.get("span_id", "")))
        if own:
            return {own}
        trace = {label for (trace_id, _), label in self.labels.items() if trace_id == score["trace_id"]}
        return trace or {("", "", "")}


def expected_stats(scores: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    numbers = [float(s["value"]) for s in scores if not isinstance(s["value"], str)]
    labels: Counter[str] = Counter()
    for s in scores:
        if isinstance(s["value"], bool):
            labels["true" if s["value"] else "false"] += 1
        elif isinstance(s["value"], str):
            labels[s["value"]] += 1
        elif s.get("label"):
            labels[s["label"]] += 1
    return {"scores": len(scores), "numeric_count": len(numbers),
            "mean": pytest.approx(statistics.fmean(numbers), rel=1e-12) if numbers else None,
            "min": min(numbers) if numbers else None, "max": max(numbers) if numbers else None,
            "categories": dict(labels), "other_categories": 0, "errors": 0}


@pytest.fixture(scope="module")
def rollup_world(world: World) -> Sent:
    """The rollup tenant's traces and scores, in an order that tests the rollup: scores sent
    before their spans, sent twice, replaced, deleted; one trace with two prompt versions."""
    sent = Sent()
    app_client = httpx.AsyncClient(transport=httpx.ASGITransport(app=world.app), base_url="http://query",
                                   headers={"authorization": "Bearer rollup-full"})
    v1, v2 = chat("gpt-4o", "support", "1"), chat("gpt-4o-mini", "support", "2")
    specs = {
        "a": SpanSpec("agent", 0, children=[SpanSpec("chat", 0.5, v1)]),
        "b": SpanSpec("chat", 30, v2),
        "c": SpanSpec("agent", 70, children=[SpanSpec("chat-1", 70.5, v1), SpanSpec("chat-2", 71, v2)]),
        "d": SpanSpec("healthcheck", 100),
        "late": SpanSpec("chat", 150, chat("gpt-4o", "faq", "7"),
                         events=[(151, evaluation("helpfulness", 0.2, "unhelpful"))]),
    }
    made = {key: make_trace(spec) for key, spec in specs.items()}
    for key, (trace, _) in made.items():
        sent.add_trace(trace, {s.name: s.attrs for s in _flatten(specs[key])})
    t = {key: trace for key, (trace, _) in made.items()}

    def score(sid: str, trace: str, name: str, value: Any, at_s: float, span: str = "") -> dict[str, Any]:
        body = {"score_id": sid, "trace_id": t[trace].trace_id, "name": name, "value": value,
                "timestamp": (T0 + int(at_s * NS)) / NS}
        if span:
            body["span_id"] = t[trace].spans[span]
        return body

    bodies = [
        score("h1", "a", "helpfulness", 0.8, 5, span="chat"),      # the model call: its labels
        score("h2", "a", "helpfulness", 1.0, 6),                   # the whole trace: its one GenAI span
        score("h3", "b", "helpfulness", 0.4, 40),
        score("h4", "c", "helpfulness", 0.6, 80),                  # two prompt versions: counted under both
        score("h5", "c", "helpfulness", 0.9, 81, span="agent"),    # a span without labels: the trace's
        score("h6", "d", "helpfulness", 0.7, 110),                 # no GenAI span at all
        score("v1", "a", "verdict", "pass", 7), score("v2", "b", "verdict", "fail", 41),
        score("v3", "c", "verdict", "pass", 82), score("s1", "b", "safe", True, 42),
        score("s2", "c", "safe", False, 83),
        score("late-1", "late", "helpfulness", 0.5, 152, span="chat"),  # sent before its spans arrive
    ]

    async def run() -> None:
        async with app_client:
            for key in ("a", "b", "c", "d"):
                await export(world, made[key][1], ROLLUP)
            await post(app_client, bodies, key="rollup-full")
            await post(app_client, bodies[:3], key="rollup-full")  # re-sent: still one score each
            await post(app_client, {**bodies[2], "value": 0.1}, key="rollup-full")  # replaced
            await post(app_client, score("gone", "b", "helpfulness", 0.0, 43), key="rollup-full")
            assert (await app_client.delete("/api/v1/scores/gone")).status_code == 200
            await export(world, made["late"][1], ROLLUP)  # its spans, after its score

    asyncio.run(run())
    for body in bodies:
        sent.scores[body["score_id"]] = {**body, "trace_id": body["trace_id"]}
    sent.scores["h3"]["value"] = 0.1
    late = t["late"]
    sent.scores["ev"] = {"trace_id": late.trace_id, "span_id": late.spans["chat"], "name": "helpfulness",
                         "value": 0.2, "label": "unhelpful", "timestamp": (T0 + 151 * NS) / NS}
    return sent


def _flatten(spec: SpanSpec) -> list[SpanSpec]:
    return [spec, *(s for child in spec.children for s in _flatten(child))]


async def rollup(api: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    resp = await api.get("/api/v1/metrics/genai", params={**RANGE, "scores": "true", **params},
                         headers={"authorization": "Bearer rollup-full"})
    assert resp.status_code == 200, resp.text
    assert_written_as_the_model(resp.content)
    scores: dict[str, Any] = resp.json()["scores"]
    return scores


def expected_series(sent: Sent, dims: Sequence[str], *, step_s: int | None = None,
                    keep: Any = lambda label: True) -> dict[tuple[Any, ...], list[Mapping[str, Any]]]:
    """(name, group values..., bucket) -> the scores in it: each score once per group."""
    index = {"model": 0, "prompt": 1, "prompt_version": 2}
    groups: dict[tuple[Any, ...], dict[str, Mapping[str, Any]]] = defaultdict(dict)
    for sid, score in sent.scores.items():
        for label in sent.about(score):
            if not keep(label):
                continue
            bucket = int(score["timestamp"]) // step_s * step_s if step_s else None
            groups[(score["name"], *(label[index[d]] for d in dims), bucket)][sid] = score
    return {key: list(by_id.values()) for key, by_id in groups.items()}


@pytest.mark.parametrize("dims", [["model"], ["prompt_version"], ["prompt", "prompt_version"], []])
async def test_the_rollup_equals_what_the_sent_scores_add_up_to(api: httpx.AsyncClient, rollup_world: Sent,
                                                                dims: list[str]) -> None:
    body = await rollup(api, group_by=",".join(dims), step="60s")
    got_totals = {(s["name"], *(s["group"][d] for d in dims)): s["totals"] for s in body["series"]}
    expected = expected_series(rollup_world, dims)
    assert len(expected) >= 3 + 2 * len(dims)
    assert got_totals == {key[:-1]: expected_stats(scores) for key, scores in expected.items()}
    got_points = {(s["name"], *(s["group"][d] for d in dims), parse_time_ns(p["time"]) // NS):
                  {k: v for k, v in p.items() if k != "time"} for s in body["series"] for p in s["points"]}
    assert got_points == {key: expected_stats(scores)
                          for key, scores in expected_series(rollup_world, dims, step_s=60).items()}
    # Per name, each score once, however many groups it fell in.
    names = expected_series(rollup_world, [], keep=lambda label: True)
    assert {t["name"]: {k: v for k, v in t.items() if k != "name"} for t in body["totals"]} == {
        key[0]: expected_stats(scores) for key, scores in names.items()}


async def test_the_rollup_by_prompt_version_counts_a_two_version_trace_under_both(api: httpx.AsyncClient,
                                                                                  rollup_world: Sent) -> None:
    body = await rollup(api, group_by="prompt_version", prompt="support", score_name="helpfulness")
    by_version = {s["group"]["prompt_version"]: s["totals"] for s in body["series"]}
    # v1: h1, h2 (trace a), h4, h5 (trace c); v2: h3 (replaced: 0.1), h4, h5.
    assert by_version["1"]["scores"] == 4 and by_version["1"]["mean"] == pytest.approx((0.8 + 1.0 + 0.6 + 0.9) / 4)
    assert by_version["2"]["scores"] == 3 and by_version["2"]["mean"] == pytest.approx((0.1 + 0.6 + 0.9) / 3)
    assert set(by_version) == {"1", "2"}, "the prompt filter keeps support's versions"
    faq = await rollup(api, group_by="prompt,prompt_version,model", prompt="faq")
    # Scored before its spans arrived, the model call still counts under its labels: the
    # API's score and the evaluation event the span carried.
    assert [(s["name"], s["group"], s["totals"]["scores"], s["totals"]["categories"]) for s in faq["series"]] == [
        ("helpfulness", {"prompt": "faq", "prompt_version": "7", "model": "gpt-4o"}, 2, {"unhelpful": 1})]
    assert faq["series"][0]["totals"]["mean"] == pytest.approx(0.35)
    assert [t["name"] for t in body["totals"]] == ["helpfulness"]
    assert body["totals"][0]["scores"] == 5, "h1..h5, each once over both versions"
    model = await rollup(api, group_by="model", model="gpt-4o", score_name="verdict")
    assert [(s["group"], s["totals"]["categories"]) for s in model["series"]] == [
        ({"model": "gpt-4o"}, {"pass": 2})]


async def test_the_rollup_is_the_tenant_s(api: httpx.AsyncClient, rollup_world: Sent) -> None:
    assert {t["name"] for t in (await rollup(api))["totals"]} == {"helpfulness", "verdict", "safe"}
    resp = await api.get("/api/v1/metrics/genai", params={**RANGE, "scores": "true"})
    assert "relevance" in {t["name"] for t in resp.json()["scores"]["totals"]}, "the default tenant's own"
    plain = (await api.get("/api/v1/metrics/genai", params=RANGE)).json()
    assert plain["scores"] is None, "scores only when asked for"


async def test_the_openapi_document_has_the_score_routes(api: httpx.AsyncClient) -> None:
    doc = (await api.get("/openapi.json")).json()
    assert {"post", "get"} <= set(doc["paths"]["/api/v1/scores"]) and "delete" in doc["paths"]["/api/v1/scores/{score_id}"]
    post_op = doc["paths"]["/api/v1/scores"]["post"]
    assert {"201", "400", "403", "409", "413"} <= set(post_op["responses"]) and "422" not in post_op["responses"]
    assert "score" in {p["name"] for p in doc["paths"]["/api/v1/traces"]["get"]["parameters"]}
    assert json.dumps(post_op["requestBody"]).count("trace_id") >= 1
