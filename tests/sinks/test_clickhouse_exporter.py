"""ClickHouse exporter on the real engine (chDB): schema, column mapping, failures."""

from __future__ import annotations

import math
import socket
import time

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from otlp_fixtures import FIXTURES
from tracehouse.core.component import ComponentID, Kind, Settings, Status as ComponentStatus
from tracehouse.core.errors import RetryableError
from tracehouse.core.pdata import TraceBatch, any_value
from tracehouse.core.retry import RetryConfig
from tracehouse.core.testing import TestHost
from tracehouse.sinks.clickhouse.client import open_client
from tracehouse.sinks.clickhouse.columns import any_to_str
from tracehouse.sinks.clickhouse.config import ClickHouseExporterConfig
from tracehouse.sinks.clickhouse.exporter import ClickHouseExporter
from tracehouse.sinks.clickhouse.schema import LEDGER, load_migrations, ttl_clause

T0 = 1_795_364_734_925_268_129


def kv(key: str, **value: object) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(**value))  # type: ignore[arg-type]


def rich_request() -> ExportTraceServiceRequest:
    span = Span(
        trace_id=bytes.fromhex("52aed636f507702527ef4b00ae12f4f9"), span_id=bytes.fromhex("fd8f76e86b045671"),
        parent_span_id=bytes.fromhex("fcabc958b50572e8"), trace_state="k=v", name="chat gpt-4o",
        kind=Span.SPAN_KIND_CLIENT, start_time_unix_nano=T0, end_time_unix_nano=T0 + 1_234_567,
        attributes=[
            kv("s", string_value="text"), kv("i", int_value=-42), kv("b", bool_value=True),
            kv("d", double_value=0.2), kv("big", double_value=1e21), kv("raw", bytes_value=b"\x00\x01"),
            kv("arr", array_value=ArrayValue(values=[AnyValue(string_value="a"), AnyValue(int_value=1)])),
            kv("map", kvlist_value=KeyValueList(values=[kv("x", bool_value=False)])),
        ],
        events=[Span.Event(time_unix_nano=T0 + 5, name="exception", attributes=[kv("exception.type", string_value="E")])],
        links=[Span.Link(trace_id=b"\x0a" * 16, span_id=b"\x0b" * 8, trace_state="x=1",
                         attributes=[kv("l", int_value=1)])],
        status=Status(code=Status.STATUS_CODE_ERROR, message="boom"),
    )
    rs = ResourceSpans(resource=Resource(attributes=[kv("service.name", string_value="svc"),
                                                     kv("deployment.environment", string_value="test")]),
                       scope_spans=[ScopeSpans(scope=InstrumentationScope(name="lib", version="1.2"), spans=[span])])
    return ExportTraceServiceRequest(resource_spans=[rs])


@pytest.fixture
async def exporter(clickhouse_endpoint: str, database: str):
    exp = ClickHouseExporter(Settings(ComponentID("clickhouse"), Kind.EXPORTER),
                             ClickHouseExporterConfig(endpoint=clickhouse_endpoint, database=database), None)
    await exp.start(TestHost())
    yield exp
    await exp.shutdown()


@pytest.fixture
def client(clickhouse_endpoint: str):
    c = open_client(clickhouse_endpoint)
    yield c
    c.close()


async def test_spans_are_stored_in_collector_compatible_columns(exporter, client, database) -> None:
    await exporter.consume(TraceBatch.from_request(rich_request()))
    row = client.query(f"""
        SELECT toUnixTimestamp64Nano(Timestamp), TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind,
               ServiceName, ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration, StatusCode,
               StatusMessage, arrayMap(t -> toUnixTimestamp64Nano(t), `Events.Timestamp`), `Events.Name`,
               `Events.Attributes`, `Links.TraceId`, `Links.SpanId`, `Links.TraceState`, `Links.Attributes`
        FROM {database}.otel_traces""").result_rows
    assert row == [(
        T0, "52aed636f507702527ef4b00ae12f4f9", "fd8f76e86b045671", "fcabc958b50572e8", "k=v", "chat gpt-4o",
        "Client", "svc", {"service.name": "svc", "deployment.environment": "test"}, "lib", "1.2",
        {"s": "text", "i": "-42", "b": "true", "d": "0.2", "big": "1000000000000000000000", "raw": "AAE=",
         "arr": '["a",1]', "map": '{"x":false}'},
        1_234_567, "Error", "boom", [T0 + 5], ["exception"], [{"exception.type": "E"}],
        ["0a" * 16], ["0b" * 8], ["x=1"], [{"l": "1"}],
    )]
    lookup = client.query(f"SELECT TraceId FROM {database}.otel_traces_trace_id_ts").result_rows
    assert lookup == [("52aed636f507702527ef4b00ae12f4f9",)]


async def test_every_fixture_is_stored_span_for_span(exporter, client, database) -> None:
    expected = 0
    for path in sorted(FIXTURES.glob("*/*.pb")):
        batch = TraceBatch.from_bytes(path.read_bytes())
        expected += batch.span_count
        await exporter.consume(batch)
    got = client.query(f"SELECT count() FROM {database}.otel_traces").result_rows[0][0]
    assert got == expected == 24


async def test_genai_columns_exist_and_default_to_unknown(exporter, client, database) -> None:
    await exporter.consume(TraceBatch.from_request(rich_request()))
    row = client.query(f"SELECT GenAIProvider, GenAIInputTokens, GenAITotalCostUSD, GenAITokensEstimated "
                       f"FROM {database}.otel_traces").result_rows
    assert row == [("", None, None, False)]


def test_migrations_are_recorded_and_idempotent(client, database) -> None:
    from tracehouse.sinks.clickhouse.schema import migrate, schema_params

    params = schema_params(database, "otel_traces", 0, 100)
    assert migrate(client, params) == [m.version for m in load_migrations()]
    assert migrate(client, params) == []
    versions = client.query(f"SELECT version FROM {database}.{LEDGER} FINAL ORDER BY version").result_rows
    assert [v for (v,) in versions] == [m.version for m in load_migrations()]


def test_ttl_uses_the_largest_whole_unit() -> None:
    assert ttl_clause(0, "x") == ""
    assert ttl_clause(72 * 3600, "x") == "TTL x + toIntervalDay(3)"
    assert ttl_clause(90 * 60, "x") == "TTL x + toIntervalMinute(90)"
    assert ttl_clause(61, "x") == "TTL x + toIntervalSecond(61)"


async def test_an_unreachable_server_does_not_fail_start_and_refuses_retryably() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    host = TestHost()
    exp = ClickHouseExporter(
        Settings(ComponentID("clickhouse"), Kind.EXPORTER),
        ClickHouseExporterConfig(endpoint=f"http://127.0.0.1:{port}", timeout=2,
                                 retry_on_failure=RetryConfig(initial_interval=0.05, max_elapsed_time=0.3)),
        None)
    await exp.start(host)
    assert host.status["exporter/clickhouse"][0] is ComponentStatus.RECOVERABLE_ERROR
    t0 = time.monotonic()
    with pytest.raises(RetryableError):
        await exp.consume(TraceBatch.from_request(rich_request()))
    assert time.monotonic() - t0 < 10
    assert "tracehouse_exporter_send_failed_spans_total" in host.telemetry.render().decode()
    await exp.shutdown()


def test_a_database_at_an_older_version_gets_only_the_newer_migrations(client, database) -> None:
    from tracehouse.sinks.clickhouse.schema import LEDGER, migrate, schema_params

    params = schema_params(database, "otel_traces", 0, 100)
    first, *later = load_migrations()
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    client.command(f"CREATE TABLE {database}.{LEDGER} (version UInt32, name String, "
                   "applied_at DateTime64(3) DEFAULT now64(3)) ENGINE = ReplacingMergeTree ORDER BY version")
    for statement in first.statements(params):  # as a tracehouse of the first release left it
        client.command(statement)
    client.insert(f"{database}.{LEDGER}", [[first.version, first.name]], column_names=["version", "name"])
    assert "GenAICostPriceVersion" not in {r[0] for r in client.query(f"DESCRIBE {database}.otel_traces").result_rows}

    assert migrate(client, params) == [m.version for m in later]
    columns = {r[0] for r in client.query(f"DESCRIBE {database}.otel_traces").result_rows}
    assert "GenAICostPriceVersion" in columns


# -- insert deduplication tokens (batches the kafka receiver replays) ------------------

from genai_helpers import batch_of, enrich, span  # noqa: E402
from otlp_fixtures import load_batch  # noqa: E402
from tracehouse.core.pdata import RecordRange  # noqa: E402


def tokened(batch: TraceBatch, token: str) -> TraceBatch:
    """`batch` as the kafka receiver builds it from the records `topic/partition/first-last`."""
    topic, partition, offsets = token.split("/")
    first, last = offsets.split("-")
    batch.origin = RecordRange(topic, int(partition), int(first), int(last))
    assert batch.origin.token == token
    return batch


def stored_and_rolled_up(client, database: str) -> tuple[int, int, int]:
    """(rows in the spans table, spans in the per-trace rollup, spans in the usage rollup)."""
    return (client.query(f"SELECT count() FROM {database}.otel_traces").result_rows[0][0],
            client.query(f"SELECT sum(Spans) FROM {database}.otel_traces_trace_rollup").result_rows[0][0],
            client.query(f"SELECT sum(Spans) FROM {database}.otel_traces_genai_usage_1m").result_rows[0][0])


async def test_a_replay_with_the_same_token_is_dropped_by_clickhouse_without_the_gate(exporter, client,
                                                                                      database) -> None:
    async def copy(token: str) -> TraceBatch:
        return tokened(await enrich(load_batch("otel-genai-openai-v2/http-protobuf.pb")), token)

    first = await copy("otlp_spans/3/100-119")
    await exporter.consume(first)
    once = stored_and_rolled_up(client, database)
    assert once[:2] == (first.span_count, first.span_count) and once[2] > 0

    # Take the retry gate out of play: it now believes nothing is stored, so only
    # ClickHouse's token check stands between the replay and a duplicate.
    client.command(f"TRUNCATE TABLE {database}.otel_traces_span_keys")
    await exporter.consume(await copy("otlp_spans/3/100-119"))
    assert exporter.skipped_duplicates == 0, "the gate must not have seen the first copy"
    assert stored_and_rolled_up(client, database) == once, "spans table and rollups drop the replay alike"

    # Control: the same spans under another token are written again (the gate really was off).
    client.command(f"TRUNCATE TABLE {database}.otel_traces_span_keys")
    await exporter.consume(await copy("otlp_spans/3/120-139"))
    assert stored_and_rolled_up(client, database) == tuple(2 * n for n in once)


async def test_a_retry_of_a_partly_stored_batch_stores_the_rest_despite_its_token(exporter, client,
                                                                                  database) -> None:
    # ClickHouse drops any block whose token it has seen, whatever its rows. A first attempt
    # that stored only some rows (one part written, then a failure) must not make the
    # retry's remaining rows look like a replay.
    llm = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o", "gen_ai.operation.name": "chat"}
    spans = [span(7, i, T0 + i * 1000, llm) for i in range(1, 5)]
    await exporter.consume(tokened(await enrich(batch_of(spans[:2])), "otlp_spans/0/0-9"))
    await exporter.consume(tokened(await enrich(batch_of(spans)), "otlp_spans/0/0-9"))
    assert exporter.skipped_duplicates == 2
    assert stored_and_rolled_up(client, database) == (4, 4, 4)


def test_attribute_values_are_written_as_the_collector_writes_them_at_every_depth() -> None:
    nested = any_value([1, "a", 2.5, math.nan, b"x", True, {"k": [math.inf, -math.inf]}])
    nested.array_value.values.add()  # an empty AnyValue: null
    assert [any_to_str(v) for v in (AnyValue(), any_value(math.nan), any_value(math.inf), any_value(-math.inf),
                                    any_value(1e-7), any_value(2.0), any_value(False), nested)] == [
        "", "NaN", "+Inf", "-Inf", "0.0000001", "2", "false", '[1,"a",2.5,"NaN","eA==",true,{"k":["+Inf","-Inf"]},null]']


# -- the one list of GenAI fields ---------------------------------------------------------

def test_the_migrated_table_has_exactly_the_genai_columns_of_the_one_list(exporter, client, database) -> None:
    """core/genai.py lists the GenAI fields; migrations are history, so they are checked, not
    generated: every stored field has its column with a type that holds its values."""
    from decimal import Decimal

    from tracehouse.sinks.clickhouse.genai import GENAI_COLUMNS

    expected_types = {str: {"String", "LowCardinality(String)"}, bool: {"Bool"}, int: {"Nullable(UInt64)"},
                      Decimal: {"Nullable(Decimal(18, 12))"}}
    described = {name: type_ for name, type_, *_ in client.query(f"DESCRIBE {database}.otel_traces").result_rows
                 if name.startswith("GenAI")}
    assert set(described) == {column for _, column in GENAI_COLUMNS}
    for field, column in GENAI_COLUMNS:
        assert described[column] in expected_types[field.kind], (field.name, column, described[column])
