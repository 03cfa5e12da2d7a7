"""Data ClickHouse can never store fails only the request that sent it, permanently and at
once; everything batched with it is stored and acknowledged. A span resent with another
start time is stored and counted once. Real engine (chDB), real batch processor."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from tracehouse.core.component import ComponentID, Kind, Settings
from tracehouse.core.errors import PermanentError, RetryableError
from tracehouse.core.genai import GenAIColumns
from tracehouse.core.pdata import TraceBatch, key_values
from tracehouse.core.testing import TestHost
from tracehouse.processors.batch.config import BatchConfig
from tracehouse.processors.batch.processor import BatchProcessor
from tracehouse.sinks.clickhouse.client import open_client
from tracehouse.sinks.clickhouse.config import ClickHouseExporterConfig
from tracehouse.sinks.clickhouse.errors import hide_location, is_data_error, public_reason
from tracehouse.sinks.clickhouse.exporter import ClickHouseExporter

T0 = 1_795_364_734_925_268_129
MAX_U64 = 2**64 - 1


def request_of(trace: int, *spans: Span) -> TraceBatch:
    for span in spans:
        span.trace_id = trace.to_bytes(16, "big")
    rs = ResourceSpans(resource={"attributes": key_values({"service.name": "svc"})},
                       scope_spans=[ScopeSpans(spans=list(spans))])
    batch = TraceBatch.from_request(ExportTraceServiceRequest(resource_spans=[rs]))
    batch.deadline = time.monotonic() + 8  # the client's timeout: retries stop before it
    return batch


def span(span_id: int, start: int = T0, end: int | None = None, name: str = "op") -> Span:
    return Span(span_id=span_id.to_bytes(8, "big"), name=name, start_time_unix_nano=start,
                end_time_unix_nano=start + 1000 if end is None else end)


@pytest.fixture
async def pipeline(clickhouse_endpoint: str, database: str):
    """batch -> clickhouse, as the all-in-one wires them (one batch for both test requests)."""
    exporter = ClickHouseExporter(Settings(ComponentID("clickhouse"), Kind.EXPORTER),
                                  ClickHouseExporterConfig(endpoint=clickhouse_endpoint, database=database))
    batch = BatchProcessor(Settings(ComponentID("batch"), Kind.PROCESSOR, "traces"),
                           BatchConfig(send_batch_size=1000, timeout=0.3), exporter)
    host = TestHost()
    await exporter.start(host)
    await batch.start(host)
    yield batch, exporter
    await batch.shutdown()
    await exporter.shutdown()


@pytest.fixture
def client(clickhouse_endpoint: str):
    c = open_client(clickhouse_endpoint)
    yield c
    c.close()


POISONS = {
    # Times past 2262 (the receivers refuse them now; a Kafka topic fed by another producer may not).
    "start 2^63": lambda: span(9, start=2**63, end=2**63 + 1),
    "start max uint64": lambda: span(9, start=MAX_U64, end=MAX_U64),
    "event at max uint64": lambda: Span(span_id=(9).to_bytes(8, "big"), name="op", start_time_unix_nano=T0,
                                        end_time_unix_nano=T0 + 1, events=[Span.Event(time_unix_nano=MAX_U64)]),
}


@pytest.mark.parametrize("poison", list(POISONS))
async def test_one_unstorable_request_fails_alone_and_at_once(pipeline, client, database, poison: str) -> None:
    batch, _ = pipeline
    valid = request_of(1, span(1), span(2))
    poisoned = request_of(2, span(3), POISONS[poison]())
    t0 = time.monotonic()
    async with asyncio.timeout(30):
        results = await asyncio.gather(batch.consume(valid), batch.consume(poisoned), return_exceptions=True)
    elapsed = time.monotonic() - t0
    assert results[0] is None, results[0]
    # Permanent (HTTP 400 / INVALID_ARGUMENT), not retried until the client gives up.
    assert isinstance(results[1], PermanentError), results[1]
    assert not isinstance(results[1], RetryableError)
    assert elapsed < 5, f"the merged batch was retried for {elapsed:.1f}s"
    rows = client.query(f"SELECT TraceId, SpanId FROM {database}.otel_traces ORDER BY SpanId").result_rows
    assert rows == [((1).to_bytes(16, "big").hex(), (1).to_bytes(8, "big").hex()),
                    ((1).to_bytes(16, "big").hex(), (2).to_bytes(8, "big").hex())]


async def test_genai_values_out_of_their_columns_range_are_stored_as_unknown(pipeline, client, database) -> None:
    batch, _ = pipeline
    request = request_of(3, span(1), span(2))
    cols = GenAIColumns.empty(2)
    cols.input_tokens = [2**64, 12]  # one past UInt64
    cols.output_tokens = [-1, 3]
    cols.total_tokens = [10**30, 15]
    cols.total_cost_usd = [Decimal("1e7"), Decimal("0.5")]  # past Decimal(18, 12)
    cols.input_cost_usd = [Decimal("1e40"), None]  # more digits than a Decimal context carries
    request.genai = cols
    async with asyncio.timeout(30):
        await batch.consume(request)
    rows = client.query(f"SELECT SpanId, GenAIInputTokens, GenAIOutputTokens, GenAITotalTokens, GenAITotalCostUSD, "
                        f"GenAIInputCostUSD FROM {database}.otel_traces ORDER BY SpanId").result_rows
    assert rows == [((1).to_bytes(8, "big").hex(), None, None, None, None, None),
                    ((2).to_bytes(8, "big").hex(), 12, 3, 15, Decimal("0.5"), None)]


async def test_a_span_resent_with_a_shifted_start_is_stored_and_counted_once(pipeline, client, database) -> None:
    # A client retrying after a lost acknowledgement may re-stamp the span (another SDK, a
    # fixed clock): same (TraceId, SpanId), so the same span.
    batch, _ = pipeline
    first = request_of(4, span(1, start=T0), span(2, start=T0 + 10))
    hour = 3600 * 10**9
    resent = request_of(4, span(1, start=T0 + hour), span(2, start=T0 + hour + 10))
    async with asyncio.timeout(30):
        await batch.consume(first)
        await batch.consume(resent)
    trace = (4).to_bytes(16, "big").hex()
    spans = client.query(f"SELECT count(), min(toUnixTimestamp64Nano(Timestamp)) FROM {database}.otel_traces "
                         f"WHERE TraceId = '{trace}'").result_rows
    assert spans == [(2, T0)]  # the first copy stored wins
    rollup = client.query(f"SELECT sum(Spans) FROM {database}.otel_traces_trace_rollup "
                          f"WHERE TraceId = '{trace}'").result_rows
    assert rollup == [(2,)]


def test_data_errors_are_told_apart_by_code() -> None:
    from clickhouse_connect.driver.exceptions import DatabaseError, DataError, OperationalError

    assert is_data_error(DataError("Unable to create native array for column `Timestamp`: error"))
    assert is_data_error(DatabaseError("oops", code=407))  # DECIMAL_OVERFLOW, from the HTTP header
    assert is_data_error(RuntimeError("Code: 321. DB::Exception: Value out of range (VALUE_IS_OUT_OF_RANGE...)"))
    assert not is_data_error(DatabaseError("Code: 241. DB::Exception: Memory limit exceeded", code=241))
    assert not is_data_error(OperationalError("HTTPConnectionPool(host='10.1.2.3', port=8123): refused"))


def test_client_facing_reasons_hide_where_clickhouse_runs() -> None:
    from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

    down = OperationalError("Error HTTPConnectionPool(host='clickhouse.internal', port=8123): Max retries exceeded "
                            "with url: /?query_id=1 (Caused by NewConnectionError('Failed to establish'))")
    assert public_reason(down) == "ClickHouse is unavailable (OperationalError)"
    err = DatabaseError("HTTPDriver for http://10.0.0.5:8123 received ClickHouse error code 210\n"
                        "Code: 210. DB::Exception: Connection refused (10.0.0.7:9000, clickhouse-2.db.svc:9000) "
                        "(NETWORK_ERROR) (version 25.8.2.29 (official build))", code=210)
    reason = public_reason(err)
    assert reason.startswith("ClickHouse error 210: Connection refused")
    for leak in ("10.0.0", "8123", "9000", "clickhouse-2", "version"):
        assert leak not in reason, reason
    assert hide_location("see https://ch.example.com:8443/play and [::1]:9000, localhost:8123") == \
        "see <server> and <server>, <server>"
