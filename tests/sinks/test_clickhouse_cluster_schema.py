"""The cluster schema (`cluster:` in the exporter's config): every statement is ClickHouse SQL
the engine's parser accepts, and the parts one engine can run here (local tables, views,
alters) run on chDB and roll up exactly what the single-server schema rolls up.

Replicated engines need Keeper and Distributed tables a `remote_servers` cluster, neither of
which chDB has; those statements are checked by the parser (`formatQuery`) and by shape.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import pytest

from genai_helpers import enrich_all
from otlp_fixtures import fixture_payloads, load_batch
from tracehouse.core.component import ComponentID, Kind, Settings
from tracehouse.core.config import load_config_dict
from tracehouse.core.errors import ConfigError
from tracehouse.core.testing import TestHost
from tracehouse.sinks.clickhouse.cluster import LOCAL, REPLICA_PATH
from tracehouse.sinks.clickhouse.config import ClickHouseExporterConfig
from tracehouse.sinks.clickhouse.exporter import ClickHouseExporter
from tracehouse.sinks.clickhouse.schema import planned, schema_params

CLUSTER = "tracehouse_cluster"


def cluster_plan(database: str) -> list[str]:
    return [s for _, statements in planned(schema_params(database, "otel_traces", 0, 1000), CLUSTER)
            for s in statements]


def single_plan(database: str) -> list[str]:
    return [s for _, statements in planned(schema_params(database, "otel_traces", 0, 1000)) for s in statements]


def on_one_engine(statement: str) -> str | None:
    """A cluster statement as one engine without Keeper can run it (None: Distributed,
    which needs a cluster): no ON CLUSTER, Replicated engines as their plain variants."""
    if "ENGINE = Distributed(" in statement:
        return None
    text = statement.replace(f" ON CLUSTER `{CLUSTER}`", "")
    text = re.sub(r"ENGINE = Replicated(\w*)MergeTree\('[^']*', '[^']*'(?:, (\w+))?\)",
                  lambda m: f"ENGINE = {m[1]}MergeTree" + (f"({m[2]})" if m[2] else ""), text)
    return text.replace("replicated_deduplication_window", "non_replicated_deduplication_window")


def test_every_cluster_statement_is_accepted_by_the_parser(client: Any) -> None:
    statements = cluster_plan("tracehouse")
    for statement in statements:
        formatted = client.query("SELECT formatQuery({q:String})", parameters={"q": statement}).result_rows[0][0]
        assert formatted.startswith(("CREATE", "ALTER")), statement
    assert len(statements) > len(single_plan("tracehouse"))


def test_the_cluster_schema_has_the_expected_shape() -> None:
    statements = cluster_plan("tracehouse")
    creates = [s for s in statements if s.startswith("CREATE TABLE")]
    locals_ = {re.match(r"CREATE TABLE IF NOT EXISTS tracehouse\.(\w+)", s)[1] for s in creates  # type: ignore[index]
               if "Distributed(" not in s}
    distributed = {re.match(r"CREATE TABLE IF NOT EXISTS tracehouse\.(\w+)", s)[1]: s for s in creates  # type: ignore[index]
                   if "Distributed(" in s}
    assert all(name.endswith(LOCAL) for name in locals_)
    assert {name + LOCAL for name in distributed} == locals_, "every local table has its Distributed table"
    for s in statements:
        assert f"ON CLUSTER `{CLUSTER}`" in s, s
        assert "non_replicated_deduplication_window" not in s
    for s in creates:
        if "Distributed(" not in s:
            assert "Replicated" in s and REPLICA_PATH in s and "'{replica}'" in s, s[:120]
    # A trace stays on one shard; the registry's claims for one name meet on one shard.
    assert "cityHash64(TraceId)" in distributed["otel_traces"]
    assert "cityHash64(TraceId)" in distributed["otel_traces_span_keys"]
    assert "cityHash64(Name)" in distributed["otel_traces_prompts"]
    # Logs and metric points by their content: a replayed block splits into the same shard blocks.
    assert "cityHash64(TraceId, Timestamp)" in distributed["otel_logs"]
    for kind in ("gauge", "sum", "histogram", "exponential_histogram", "summary"):
        assert "cityHash64(ServiceName, MetricName, Attributes)" in distributed[f"otel_metrics_{kind}"]
    # Views run shard-locally: from local tables into local tables.
    for view in (s for s in statements if s.startswith("CREATE MATERIALIZED VIEW")):
        assert re.search(r"TO tracehouse\.\w+_local ", view), view[:120]
        sources = re.findall(r"FROM tracehouse\.(\w+)", view)
        assert sources and all(t.endswith(LOCAL) for t in sources), view[:200]
    # A column added or changed is added or changed in the Distributed table as well.
    for verb in ("ADD COLUMN", "MODIFY COLUMN"):
        altered = {re.match(r"ALTER TABLE tracehouse\.(\w+)", s)[1] for s in statements if verb in s}  # type: ignore[index]
        assert altered and all(name + LOCAL in altered for name in altered if not name.endswith(LOCAL)), verb
        assert {name for name in altered if not name.endswith(LOCAL)} <= set(distributed), verb
    # A view's query, when changed, still reads this shard's local tables.
    modified = [s for s in statements if "MODIFY QUERY" in s]
    assert {re.match(r"ALTER TABLE tracehouse\.(\w+) ON CLUSTER", s)[1] for s in modified} == {  # type: ignore[index]
        "otel_traces_trace_rollup_mv", "otel_traces_span_keys_mv", "otel_traces_genai_usage_1m_mv"}
    for modify in modified:
        assert re.findall(r"FROM tracehouse\.(\w+)", modify) == ["otel_traces_local"], modify[:200]
    # A sorting key extended with a new column: on the local table, never the Distributed one.
    for s in statements:
        if "MODIFY ORDER BY" in s:
            assert re.match(r"ALTER TABLE tracehouse\.\w+_local ", s), s[:120]


async def _store_single(endpoint: str, database: str) -> int:
    exporter = ClickHouseExporter(Settings(ComponentID("clickhouse"), Kind.EXPORTER),
                                  ClickHouseExporterConfig(endpoint=endpoint, database=database))
    await exporter.start(TestHost())
    spans = 0
    try:
        for batch in await enrich_all([load_batch(str(p.relative_to(p.parents[1]))) for p in fixture_payloads()]):
            spans += batch.span_count
            await exporter.consume(batch)
    finally:
        await exporter.shutdown()
    return spans


ROLLUP_CHECKS = {
    "otel_traces_genai_usage_1m": "SELECT ServiceName, RequestModel, PromptName, sum(Requests), sum(TotalTokens), "
                                  "sum(TotalCostUSD), sum(UnpricedRequests) FROM {t} GROUP BY ALL ORDER BY ALL",
    "otel_traces_trace_rollup": "SELECT TraceId, sum(Spans), sum(TotalTokens), sum(TotalCostUSD), "
                                "max(RootSpanName), min(FirstSpan), max(LastSpanStart), sum(StatusSetSpans), "
                                "arraySort(groupUniqArrayArray(ModelNames)) FROM {t} GROUP BY TraceId ORDER BY TraceId",
    "otel_traces_span_keys": "SELECT TraceId, SpanId FROM {t} ORDER BY ALL",
    "otel_traces_trace_id_ts": "SELECT TraceId, min(Start), max(End) FROM {t} GROUP BY TraceId ORDER BY TraceId",
}


def test_the_local_layer_runs_and_rolls_up_what_one_server_does(client: Any, chdb_endpoint: str) -> None:
    single, clustered = f"single_{uuid.uuid4().hex[:8]}", f"cluster_{uuid.uuid4().hex[:8]}"
    spans = asyncio.run(_store_single(chdb_endpoint, single))
    assert spans > 0
    client.command(f"CREATE DATABASE {clustered}")
    skipped = 0
    distributed = {m[1] for s in cluster_plan(clustered)
                   if (m := re.match(rf"CREATE TABLE IF NOT EXISTS {clustered}\.(\w+) .*ENGINE = Distributed", s, re.S))}
    for statement in cluster_plan(clustered):
        runnable = on_one_engine(statement)
        if runnable is None:
            skipped += 1
            continue
        if (m := re.match(rf"ALTER TABLE {clustered}\.(\w+) ", runnable)) and m[1] in distributed:
            continue  # the Distributed table's half of an ADD / MODIFY COLUMN
        client.command(runnable)
    # The Distributed tables: six of the spans and rollups, eleven of the MLflow tracking store,
    # six of the logs and metrics.
    assert skipped == 23
    # What a shard receives from the Distributed spans table: the rows, into its local table.
    client.command(f"INSERT INTO {clustered}.otel_traces{LOCAL} SELECT * FROM {single}.otel_traces")
    for table, sql in ROLLUP_CHECKS.items():
        expected = client.query(sql.format(t=f"{single}.{table}")).result_rows
        got = client.query(sql.format(t=f"{clustered}.{table}{LOCAL}")).result_rows
        assert got == expected and expected, table


def test_cluster_is_a_config_key_and_a_bad_name_is_refused() -> None:
    base = {"receivers": {"otlp": {}}, "exporters": {"clickhouse": {"cluster": "prod_cluster"}},
            "service": {"pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["clickhouse"]}}}}
    load_config_dict(base)
    bad = {**base, "exporters": {"clickhouse": {"cluster": "prod cluster; DROP"}}}
    with pytest.raises(ConfigError, match="cluster"):
        load_config_dict(bad)


@pytest.mark.parametrize(("cluster", "expected"), [(CLUSTER, "1"), ("", None)])
def test_on_a_cluster_inserts_wait_for_every_shard(cluster: str, expected: str | None, chdb_endpoint: str) -> None:
    """The acknowledgement must not rest on one node's queue for the other shards."""
    exporter = ClickHouseExporter(Settings(ComponentID("clickhouse"), Kind.EXPORTER),
                                  ClickHouseExporterConfig(endpoint=chdb_endpoint, cluster=cluster,
                                                           create_schema=False))
    client = exporter._clickhouse._ensure_connected()
    try:
        assert client.get_client_setting("distributed_foreground_insert") == expected
    finally:
        client.close()
