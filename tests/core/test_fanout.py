"""A batch fanned out to several consumers reaches each with the same spans and the same
enrichment; only consumers that declare they mutate data get a copy (the Collector's
fanoutconsumer). Before the typed batch, the copies were re-serialized and lost the GenAI
columns and the insert token on every branch but the last."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from genai_helpers import enrich
from kafka_testing import create_topic, exporter_config, new_topic, parse, read_topic, span_prints
from otlp_fixtures import FIXTURES, fixture_payloads, load_batch
from tracehouse.core.component import ComponentID, Kind, Settings
from tracehouse.core.config import load_config_dict
from tracehouse.core.errors import PermanentError, RetryableError
from tracehouse.core.fanout import TracesFanout
from tracehouse.core.pdata import RecordRange, TraceBatch
from tracehouse.core.service import Service
from tracehouse.core.testing import TestHost
from tracehouse.sinks.clickhouse.config import ClickHouseExporterConfig
from tracehouse.sinks.clickhouse.exporter import ClickHouseExporter

GENAI_FIXTURE = "otel-genai-openai-v2/http-protobuf.pb"


def captured() -> list[TraceBatch]:
    """Every payload captured from a real client library."""
    return [load_batch(str(p.relative_to(FIXTURES))) for p in fixture_payloads()]


@dataclass
class Recording:
    """A neighbour double that keeps what it was handed, and says whether it mutates it."""

    mutates_data: bool
    batches: list[TraceBatch] = field(default_factory=list)
    error: Exception | None = None

    async def consume(self, batch: TraceBatch) -> None:
        self.batches.append(batch)
        if self.error is not None:
            raise self.error
        if self.mutates_data and batch.genai is not None:
            batch.genai.provider[0] = "changed-by-a-mutating-consumer"


async def enriched() -> TraceBatch:
    batch = await enrich(load_batch(GENAI_FIXTURE))
    batch.origin = RecordRange("otlp_spans", 2, 40, 49)
    batch.deadline = time.monotonic() + 7.5
    assert batch.genai is not None and any(batch.genai.provider)
    return batch


def same_content(a: TraceBatch, b: TraceBatch) -> bool:
    return (a.to_bytes() == b.to_bytes() and a.span_count == b.span_count and a.origin == b.origin
            and a.deadline == b.deadline and a.genai is not None and b.genai is not None
            and a.genai.to_json() == b.genai.to_json())


async def test_readers_share_the_batch_and_each_mutating_consumer_gets_a_full_copy() -> None:
    batch = await enriched()
    expected = batch.clone()
    reader, first_mutator, second_mutator = Recording(False), Recording(True), Recording(True)
    await TracesFanout([first_mutator, reader, second_mutator]).consume(batch)

    assert reader.batches[0] is batch, "a consumer that only reads gets the original, uncopied"
    copies = [first_mutator.batches[0], second_mutator.batches[0]]
    assert all(c is not batch for c in copies) and copies[0] is not copies[1]
    assert same_content(reader.batches[0], expected), "no mutation leaked into the shared batch"
    for copy in copies:
        assert copy.origin == expected.origin and copy.deadline == expected.deadline
        assert copy.to_bytes() == expected.to_bytes()
        assert copy.genai is not None and copy.genai.provider[0] == "changed-by-a-mutating-consumer"
        assert copy.genai.provider[1:] == expected.genai.provider[1:]  # type: ignore[union-attr]


async def test_with_only_mutating_consumers_the_last_one_takes_the_original() -> None:
    batch = await enriched()
    consumers = [Recording(True), Recording(True), Recording(True)]
    await TracesFanout(consumers).consume(batch)
    assert consumers[-1].batches[0] is batch
    assert len({id(c.batches[0]) for c in consumers}) == 3


async def test_a_consumer_that_declares_nothing_is_treated_as_mutating() -> None:
    class Undeclared:
        def __init__(self) -> None:
            self.got: TraceBatch | None = None

        async def consume(self, batch: TraceBatch) -> None:
            self.got = batch

    batch = await enriched()
    undeclared, reader = Undeclared(), Recording(False)
    await TracesFanout([undeclared, reader]).consume(batch)
    assert undeclared.got is not batch and undeclared.got is not None and same_content(undeclared.got, batch)


async def test_clone_carries_every_field_and_shares_nothing_mutable() -> None:
    batch = await enriched()
    copy = batch.clone()
    assert same_content(copy, batch)
    copy.request.resource_spans[0].scope_spans[0].spans[0].name = "renamed"
    copy.mark_mutated()
    copy.genai.input_tokens[0] = 123_456  # type: ignore[union-attr]
    assert batch.request.resource_spans[0].scope_spans[0].spans[0].name != "renamed"
    assert batch.genai.input_tokens[0] != 123_456  # type: ignore[union-attr]


@pytest.mark.parametrize(("errors", "raised"), [
    ([RetryableError("down"), None, PermanentError("never")], PermanentError),
    ([None, RetryableError("down"), None], RetryableError),
    ([ValueError("a bug"), None, None], RetryableError),
])
async def test_a_permanent_refusal_wins_and_any_failure_fails_the_whole(errors: list[Exception | None],
                                                                       raised: type[Exception]) -> None:
    consumers = [Recording(False, error=e) for e in errors]
    with pytest.raises(raised):
        await TracesFanout(consumers).consume(await enriched())
    assert all(len(c.batches) == 1 for c in consumers), "every branch was tried"


async def test_merging_keeps_the_earliest_deadline_of_the_requests() -> None:
    now = time.monotonic()
    parts = [load_batch(GENAI_FIXTURE) for _ in range(3)]
    for part, deadline in zip(parts, [now + 9, now + 2, None], strict=True):
        part.deadline = deadline
    assert TraceBatch.merge(parts).deadline == now + 2
    assert TraceBatch.merge([parts[2], load_batch(GENAI_FIXTURE)]).deadline is None


# -- real exporters, two of each kind in one pipeline ----------------------------------------

def _pipeline_config(exporters: dict[str, Any], receiver_endpoint: str) -> dict[str, Any]:
    return {
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": receiver_endpoint}}}},
        "processors": {"genai_normalize": {}, "genai_tokens": {}, "genai_cost": {}},
        "exporters": exporters,
        "service": {"pipelines": {"traces": {"receivers": ["otlp"],
                                             "processors": ["genai_normalize", "genai_tokens", "genai_cost"],
                                             "exporters": list(exporters)}}},
    }


async def _send_through(service: Service, batches: list[TraceBatch]) -> None:
    """POST each batch to the otlp receiver, as an OTel SDK's OTLP/HTTP exporter does."""
    receiver = next(n.component for n in service._nodes if n.kind is Kind.RECEIVER)
    url = f"http://127.0.0.1:{receiver.http_port}/v1/traces"  # type: ignore[attr-defined]
    async with httpx.AsyncClient(timeout=30) as http:
        for batch in batches:
            response = await http.post(url, content=batch.to_bytes(),
                                       headers={"content-type": "application/x-protobuf"})
            assert response.status_code == 200, response.text


def _rows(client: Any, database: str) -> list[tuple[Any, ...]]:
    return client.query(f"SELECT * EXCEPT (ResourceAttributes) FROM {database}.otel_traces "
                        "ORDER BY TraceId, SpanId").result_rows


@pytest.mark.integration
@pytest.mark.parametrize("order", ["clickhouse_first", "debug_first"])
async def test_two_clickhouse_exporters_behind_a_fanout_store_equal_rows_with_genai_columns(
        chdb_endpoint: str, client: Any, order: str) -> None:
    db_a, db_b = f"fan_a_{time.time_ns()}", f"fan_b_{time.time_ns()}"
    exporters = {"clickhouse": {"endpoint": chdb_endpoint, "database": db_a},
                 "clickhouse/second": {"endpoint": chdb_endpoint, "database": db_b},
                 "debug": {}}
    if order == "debug_first":
        exporters = {"debug": {}, **{k: v for k, v in exporters.items() if k != "debug"}}
    service = Service(load_config_dict(_pipeline_config(exporters, "127.0.0.1:0")))
    await service.start()
    try:
        await _send_through(service, captured())
    finally:
        await service.shutdown()

    rows_a, rows_b = _rows(client, db_a), _rows(client, db_b)
    assert rows_a == rows_b and len(rows_a) == sum(b.span_count for b in captured())
    llm = client.query(f"SELECT count(), countIf(GenAIInputTokens > 0), countIf(GenAITotalCostUSD > 0) "
                       f"FROM {db_a}.otel_traces WHERE GenAIRequestModel != ''").result_rows[0]
    assert llm[0] > 0 and llm[1] > 0 and llm[2] > 0, f"the first exporter stored the GenAI columns: {llm}"


@pytest.mark.integration
async def test_two_kafka_exporters_behind_a_fanout_write_the_same_spans(kafka_bootstrap: str) -> None:
    topics = [new_topic(), new_topic()]
    for topic in topics:
        await create_topic(kafka_bootstrap, topic, partitions=2)
    exporters = {name: exporter_config(kafka_bootstrap, topic).model_dump(mode="json")
                 for name, topic in zip(["kafka", "kafka/second"], topics, strict=True)}
    config = _pipeline_config(exporters, "127.0.0.1:0")
    config["processors"] = {}
    config["service"]["pipelines"]["traces"]["processors"] = []
    service = Service(load_config_dict(config))
    await service.start()
    batches = captured()
    try:
        await _send_through(service, batches)
    finally:
        await service.shutdown()
    written = [span_prints(parse(r.value) for r in await read_topic(kafka_bootstrap, t)) for t in topics]
    assert written[0] == written[1] == span_prints(b.request for b in batches)


@pytest.mark.integration
async def test_both_clickhouse_exporters_of_a_fanout_drop_a_replay_by_its_insert_token(
        chdb_endpoint: str, client: Any) -> None:
    """What the kafka writer relies on: the origin's token reaches ClickHouse on every branch."""
    databases = [f"tok_a_{time.time_ns()}", f"tok_b_{time.time_ns()}"]
    exporters = [ClickHouseExporter(Settings(ComponentID("clickhouse", str(i)), Kind.EXPORTER),
                                    ClickHouseExporterConfig(endpoint=chdb_endpoint, database=db), None)
                 for i, db in enumerate(databases)]
    for exporter in exporters:
        await exporter.start(TestHost())
    fan = TracesFanout(exporters)

    async def from_kafka(span_name: str = "") -> TraceBatch:
        batch = load_batch(GENAI_FIXTURE)
        if span_name:  # a block that differs from the first: only the token, not its hash, matches
            batch.request.resource_spans[0].scope_spans[0].spans[0].name = span_name
            batch.mark_mutated()
        batch = await enrich(batch)
        batch.origin = RecordRange("otlp_spans", 1, 500, 519)
        return batch

    try:
        await fan.consume(await from_kafka())
        once = [_stored_and_rolled_up(client, db) for db in databases]
        for db in databases:  # take the retry gate out of play: only the token stops the replay
            client.command(f"TRUNCATE TABLE {db}.otel_traces_span_keys")
        await fan.consume(await from_kafka(span_name="re-cut"))
        assert [_stored_and_rolled_up(client, db) for db in databases] == once
        assert all(e.skipped_duplicates == 0 for e in exporters), "the gate did not see the first copy"
    finally:
        for exporter in exporters:
            await exporter.shutdown()


def _stored_and_rolled_up(client: Any, database: str) -> tuple[int, int, int]:
    return (client.query(f"SELECT count() FROM {database}.otel_traces").result_rows[0][0],
            client.query(f"SELECT sum(Spans) FROM {database}.otel_traces_trace_rollup").result_rows[0][0],
            client.query(f"SELECT sum(Spans) FROM {database}.otel_traces_genai_usage_1m").result_rows[0][0])
