"""The spans table's columns read in C from serialized OTLP (_otlpwire.c) are exactly the
columns the Python walk over the upb messages builds: same values, same text renderings,
same map order, same score rows. Captured payloads, the seed flows and the bench traffic
after the GenAI processors, and generated edge cases (every AnyValue kind, non-finite and
exponent doubles, repeated keys, enums out of range, events and links)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from client_flows import FLOWS, load_flow
from otlp_fixtures import FIXTURES, fixture_payloads, load_batch
from otlp_strategies import requests
from tracehouse.bench import traffic
from tracehouse.bench.genai_processors import NOW_NS, Processors, plant_secrets
from tracehouse.core.auth import TENANT_ATTRIBUTE
from tracehouse.core.pdata import TraceBatch
from tracehouse.sinks.clickhouse import columns
from tracehouse.sinks.clickhouse.columns import BASE_COLUMNS, batch_to_columns, native_base_columns, python_base_columns

native = columns.native


def test_the_extension_is_built() -> None:
    # Without it the exporter silently takes the Python walk, ~20 µs a span slower: an install
    # that lost it (no compiler, a packaging slip) must fail here, not only in the bench.
    assert native is not None, "tracehouse.core._otlpwire was not built (gcc and Python headers?)"
    assert native.N_COLUMNS == len(BASE_COLUMNS)


def ordered(value: Any) -> Any:
    """Dicts as their item lists: ClickHouse's Map keeps the order it was given."""
    if isinstance(value, dict):
        return [(k, ordered(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [ordered(v) for v in value]
    return value


def assert_same_columns(batch: TraceBatch) -> int:
    py_scores: list[dict[str, Any]] = []
    expected = python_base_columns(batch, py_scores)
    got = native_base_columns(batch)
    c_scores: list[dict[str, Any]] = []
    columns._evaluation_scores(got, c_scores)
    for name, want, have in zip(BASE_COLUMNS, expected, got, strict=True):
        assert ordered(have) == ordered(want), name
    assert [_stable(r) for r in c_scores] == [_stable(r) for r in py_scores]
    return len(expected[0])


def _stable(score: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in score.items() if k != "UpdatedAt"}  # the time the row was made


pytestmark = pytest.mark.skipif(native is None, reason="the C extension is not built")


@pytest.mark.parametrize("path", fixture_payloads(), ids=lambda p: str(p.relative_to(FIXTURES)))
def test_captured_payloads(path: Path) -> None:
    assert assert_same_columns(load_batch(str(path.relative_to(FIXTURES)))) > 0


@pytest.mark.parametrize("flow", FLOWS)
def test_seed_flows_merged_as_the_batch_processor_does(flow: str) -> None:
    batches = load_flow(flow)
    assert assert_same_columns(TraceBatch.merge(batches)) == sum(b.item_count for b in batches)


def test_bench_traffic_after_the_genai_processors_and_redaction() -> None:
    procs = Processors()  # the shipped chain and redaction, as the bench runs them
    procs.start()
    processed = []
    for payload in traffic.pregenerate(seed=7, total_spans=2_000, spans_per_request=500, now_ns=NOW_NS):
        batch = TraceBatch.from_bytes(plant_secrets(payload.body))
        procs.chain(batch)
        procs.redaction.process(batch)
        processed.append(batch)
    merged = TraceBatch.merge(processed)
    assert merged.genai is not None
    assert assert_same_columns(merged) == merged.item_count
    names, data = batch_to_columns(merged, {}, [])
    assert names[:len(BASE_COLUMNS)] == list(BASE_COLUMNS) and len(data) == len(names)


def test_a_malformed_body_appends_no_row() -> None:
    good = load_batch("mlflow/http-protobuf.pb").requests[0].SerializeToString()
    data: list[list[Any]] = [[] for _ in BASE_COLUMNS]
    assert native.append_spans(good, data, TENANT_ATTRIBUTE) > 0
    rows = len(data[0])
    with pytest.raises(ValueError, match="malformed OTLP protobuf"):
        native.append_spans(good + good[: len(good) // 2], data, TENANT_ATTRIBUTE)
    assert {len(column) for column in data} == {rows}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(requests(), min_size=1, max_size=3))
def test_generated_requests(parts: list[ExportTraceServiceRequest]) -> None:
    assert_same_columns(TraceBatch.merge([TraceBatch.from_request(r) for r in parts]))


def test_doubles_render_as_the_collector_does() -> None:
    rng = random.Random(3)
    values = [rng.uniform(-1e20, 1e20) for _ in range(200)] + [2.0 ** e for e in range(-60, 70, 7)]
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add(trace_id=b"\1" * 16, span_id=b"\2" * 8)
    for i, v in enumerate(values):
        span.attributes.add(key=f"d{i}").value.double_value = v
    data: list[list[Any]] = [[] for _ in BASE_COLUMNS]
    native.append_spans(request.SerializeToString(), data, TENANT_ATTRIBUTE)
    texts = list(data[BASE_COLUMNS.index("SpanAttributes")][0].values())
    assert texts == [columns._format_double(v) for v in values]
    assert "e" not in "".join(texts)  # no exponent, as Go's FormatFloat(v, 'f', -1, 64)


def test_a_native_block_stores_what_clickhouse_connect_stores(chdb_endpoint: str) -> None:
    """The same processed batch, inserted once through clickhouse-connect's insert and once as
    the C module's Native block, gives the same rows in every column."""
    from tracehouse.sinks.clickhouse.client import open_client
    from tracehouse.sinks.clickhouse.schema import migrate, schema_params

    procs = Processors()
    procs.start()
    batches = [load_batch(str(p.relative_to(FIXTURES))) for p in fixture_payloads()]
    batches += [TraceBatch.from_bytes(p.body)
                for p in traffic.pregenerate(seed=3, total_spans=600, spans_per_request=200, now_ns=NOW_NS)]
    for batch in batches:
        procs.chain(batch)
        procs.redaction.process(batch)
    names, data = batch_to_columns(TraceBatch.merge(batches), {}, [])
    names.append("Tenant")
    data.append(["acme"] * len(data[0]))
    client = open_client(chdb_endpoint)
    try:
        for database in ("via_connect", "via_native"):
            migrate(client, schema_params(database, "otel_traces", 0, 1000))
        client.insert("otel_traces", data, column_names=names, database="via_connect", column_oriented=True)
        client.raw_insert("via_native.otel_traces", column_names=names, insert_block=columns.native_block(names, data),
                          fmt="Native")

        def stored(database: str) -> list[tuple[Any, ...]]:
            listed = ", ".join(f"`{name}`" for name in names)
            return client.query(f"SELECT {listed} FROM {database}.otel_traces ORDER BY TraceId, SpanId").result_rows

        rows = stored("via_connect")
        assert len(rows) == len(data[0])
        assert any(r[names.index("GenAIInputCostUSD")] for r in rows) and any(r[names.index("Events.Name")] for r in rows)
        assert stored("via_native") == rows
    finally:
        client.close()


@pytest.mark.parametrize(("endpoint", "native_blocks"), [("chdb:///tmp/x", True), ("http://clickhouse:8123", False)])
def test_span_inserts_use_native_blocks_only_on_the_embedded_engine(endpoint: str, native_blocks: bool) -> None:
    # A server gets clickhouse-connect's insert, which compresses what goes over the network.
    from tracehouse.core.component import ComponentID, Kind, Settings
    from tracehouse.sinks.clickhouse.config import ClickHouseExporterConfig
    from tracehouse.sinks.clickhouse.exporter import ClickHouseSender

    sender = ClickHouseSender(Settings(ComponentID("clickhouse"), Kind.EXPORTER, "traces"),
                              ClickHouseExporterConfig(endpoint=endpoint))
    assert sender._native_blocks is native_blocks


def test_tracehouse_no_extensions_turns_the_c_module_off() -> None:
    import os
    import subprocess
    import sys

    probe = ("from tracehouse.sinks.clickhouse import columns; from tracehouse.processors.redaction import processor "
             "as r; from tracehouse.processors.genai_normalize import processor as n; from tracehouse.ingest.otlp "
             "import validate as v; from tracehouse.sinks.kafka import marshal as k; print([x is None for x in "
             "(columns.native, r.gate_units, n.attribute_values, v.spans_valid, k.otlpwire)])")
    for value, off in (("1", True), ("0", False)):
        env = {**os.environ, "TRACEHOUSE_NO_EXTENSIONS": value}
        out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True).stdout
        assert out.strip() == str([off] * 5)


def test_a_value_out_of_its_columns_range_is_a_data_error_naming_the_column() -> None:
    from clickhouse_connect.driver.exceptions import DataError

    names, data = batch_to_columns(load_batch("mlflow/http-protobuf.pb"))
    data[names.index("Timestamp")][0] = 2**63  # past 2262: DateTime64(9) is an Int64
    with pytest.raises(DataError, match="column Timestamp"):
        columns.native_block(names, data)
