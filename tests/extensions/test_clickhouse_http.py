"""The `clickhouse_http` extension: ClickHouse's HTTP interface over the embedded engine, as
ClickHouse clients use it (clickhouse-connect over HTTP; the Grafana plugin's clickhouse-go
requests, reproduced from its source), on real chDB.

- every provisioned dashboard query (tests/grafana_sql.py expands them as Grafana does)
  returns through the endpoint the rows it returns on the engine directly;
- the plugin's trace-mode queries (trace search and trace-ID, as its sqlGenerator.ts builds
  them from the provisioned trace settings) over spans sent to the shipped all-in-one;
- the formats clients ask for, Native at a native client's protocol revision, HTTP
  compression both ways;
- read-only, the time and memory caps, authentication, and the refusal to run beside tenants.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import threading
import time
import uuid
import zlib
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import clickhouse_connect
import httpx
import pytest
import yaml

from genai_seed import HAND_END, HAND_START, Seeded, seeded_data
from grafana_sql import ALL, TimeRange, clickhouse_targets, expand_macros, to_grafana_sql
from inprocess_all_in_one import all_in_one, component, running
from tracehouse.core.component import ComponentID, Kind, Settings
from tracehouse.core.config import ConfigError, load_config_dict
from tracehouse.core.testing import TestHost
from tracehouse.extensions.clickhouse_http.config import ClickHouseHttpConfig
from tracehouse.extensions.clickhouse_http.extension import ClickHouseHttpEndpoint
from tracehouse.extensions.clickhouse_http.native import for_revision
from tracehouse.query.params import parse_time_ns
from tracehouse.sinks.clickhouse.client import chdb_path, open_client

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = REPO / "deploy" / "grafana" / "dashboards"
PROVISIONED = REPO / "deploy" / "grafana" / "provisioning" / "datasources" / "tracehouse.yaml"
FIXTURE = REPO / "tests" / "fixtures" / "otlp" / "otel-genai-openai-v2" / "http-protobuf.pb"
PASSWORD = "grafana-reads"
T = TypeVar("T")
# clickhouse-go's DBMS_TCP_PROTOCOL_VERSION (lib/proto/const.go), sent as client_protocol_version.
CLICKHOUSE_GO_REVISION = 54460


@dataclass
class Endpoint:
    loop: asyncio.AbstractEventLoop
    ext: ClickHouseHttpEndpoint
    database: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ext.port}"

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)


def start_endpoint(chdb_endpoint: str, database: str, **config: Any) -> Endpoint:
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    cfg = ClickHouseHttpConfig.model_validate({
        "endpoint": "127.0.0.1:0", "clickhouse": {"endpoint": chdb_endpoint}, "database": database,
        "password": PASSWORD, **config})
    ext = ClickHouseHttpEndpoint(Settings(ComponentID("clickhouse_http"), Kind.EXTENSION), cfg)
    endpoint = Endpoint(loop, ext, database)
    endpoint.run(ext.start(TestHost()))
    return endpoint


def stop_endpoint(endpoint: Endpoint) -> None:
    endpoint.run(endpoint.ext.shutdown())
    endpoint.loop.call_soon_threadsafe(endpoint.loop.stop)


@pytest.fixture(scope="module")
def seeded(chdb_endpoint: str) -> Seeded:
    return seeded_data(chdb_endpoint)


@pytest.fixture(scope="module")
def endpoint(chdb_endpoint: str, seeded: Seeded) -> Iterator[Endpoint]:
    ep = start_endpoint(chdb_endpoint, seeded.database)
    yield ep
    stop_endpoint(ep)


def http_client(ep: Endpoint, **kwargs: Any) -> Any:
    return clickhouse_connect.get_client(host="127.0.0.1", port=ep.ext.port, interface="http",
                                         username="default", password=PASSWORD, database=ep.database, **kwargs)


@pytest.fixture(scope="module")
def over_http(endpoint: Endpoint) -> Iterator[Any]:
    client = http_client(endpoint)
    yield client
    client.close()


@pytest.fixture(scope="module")
def direct(seeded: Seeded) -> Iterator[Any]:
    client = open_client(seeded.endpoint, database=seeded.database)
    yield client
    client.close()


def rows(client: Any, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in client.query(sql).result_rows]


def get(ep: Endpoint, query: str | None = None, auth: tuple[str, str] | None = ("default", PASSWORD),
        **params: str) -> httpx.Response:
    if query is not None:
        params["query"] = query
    return httpx.get(ep.url + "/", params=params, auth=auth, timeout=30)


# ------------------------------------------------------------------------------ dashboards


def clickhouse_queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, raw SQL) of every ClickHouse panel target and query variable of a dashboard."""
    found = clickhouse_targets(board)
    for variable in board["templating"]["list"]:
        if variable["type"] == "query" and variable["datasource"]["type"] == "grafana-clickhouse-datasource":
            query = variable["query"]
            found.append((f"${variable['name']}", query if isinstance(query, str) else query["rawSql"]))
    return found


NS = 1_000_000_000
HAND = TimeRange(parse_time_ns(HAND_START) // NS, parse_time_ns(HAND_END) // NS, interval_s=30)
WHOLE = TimeRange(parse_time_ns("2026-01-01T00:00:00Z") // NS, parse_time_ns("2026-12-01T00:00:00Z") // NS,
                  interval_s=6 * 3600)
SELECTIONS = {"all": {name: ALL for name in ("service", "provider", "model", "prompt", "version")},
              "narrow": {"service": ["chat-api"], "provider": ["openai"], "model": ["gpt-4o", "gpt-4o-mini"],
                         "prompt": ALL, "version": ALL}}


@pytest.mark.parametrize("name", ["genai-overview.json", "prompts.json"])
def test_every_dashboard_query_returns_over_http_what_the_engine_returns(name: str, over_http: Any,
                                                                         direct: Any) -> None:
    queries = clickhouse_queries(json.loads((DASHBOARDS / name).read_text()))
    assert len(queries) >= 10
    answered = 0
    for time_range in (HAND, WHOLE):
        for selection in SELECTIONS.values():
            for where, raw_sql in queries:
                sql = to_grafana_sql(raw_sql, selection, time_range)
                expected = rows(direct, sql)
                assert rows(over_http, sql) == expected, where
                answered += bool(expected)
    assert answered >= len(queries), "the seeded data leaves most queries empty: the comparison shows little"


def test_the_dashboards_join_use_nulls_clause_runs_read_only(over_http: Any) -> None:
    """prompts.json ends a query with `SETTINGS join_use_nulls = 1`: under readonly=1 a clause
    may only name a setting's current value, so the endpoint sets it first."""
    assert "SETTINGS join_use_nulls = 1" in (DASHBOARDS / "prompts.json").read_text()
    assert rows(over_http, "SELECT getSetting('join_use_nulls') SETTINGS join_use_nulls = 1") == [(True,)]
    assert rows(over_http, "SELECT getSetting('join_use_nulls')") == [(False,)]  # not carried to the next query


# ------------------------------------------------------------------------------ the plugin's trace queries


def provisioned_traces() -> dict[str, Any]:
    datasources = yaml.safe_load(PROVISIONED.read_text())["datasources"]
    [clickhouse] = [d for d in datasources if d["type"] == "grafana-clickhouse-datasource"]
    traces: dict[str, Any] = clickhouse["jsonData"]["traces"]
    return traces


def q(identifier: str) -> str:
    """escapeIdentifier in the plugin's src/data/sqlGenerator.ts."""
    return '"' + identifier.replace('"', '""') + '"'


def attributes_as_tags(column: str, alias: str) -> str:
    return f"arrayMap(key -> map('key', key, 'value',{column}[key]), mapKeys({column})) as {alias}"


def trace_search_sql(t: dict[str, Any], database: str) -> str:
    """generateTraceSearchQuery with the default trace-search filters and order of the plugin's
    OTel mode (root spans in the time range, newest first), as its sqlGenerator tests show them."""
    return " ".join([
        f"SELECT {q(t['traceIdColumn'])} as traceID, {q(t['serviceNameColumn'])} as serviceName,",
        f"{q(t['operationNameColumn'])} as operationName, {q(t['startTimeColumn'])} as startTime,",
        f"multiply({q(t['durationColumn'])}, 0.000001) as duration",
        f"FROM {q(database)}.{q(t['defaultTable'])}",
        f"WHERE ( {t['startTimeColumn']} >= $__fromTime AND {t['startTimeColumn']} <= $__toTime )",
        f"AND ( {t['parentSpanIdColumn']} = '' ) AND ( {t['durationColumn']} > 0 )",
        f"ORDER BY {t['startTimeColumn']} DESC, {t['durationColumn']} DESC LIMIT 1000"])


def trace_id_sql(t: dict[str, Any], database: str, trace_id: str) -> str:
    """generateTraceIdQuery with the provisioned settings (OTel, nanosecond durations, nested
    events and links, the `_trace_id_ts` table narrowing the time range)."""
    table = f"{q(database)}.{q(t['defaultTable'])}"
    ts_table = f"{q(database)}.{q(t['defaultTable'] + t['traceTimestampTableSuffix'])}"
    start = q(t["startTimeColumn"])
    events, links = q(t["traceEventsColumnPrefix"]), q(t["traceLinksColumnPrefix"])
    fields = "arrayMap(key -> map('key', key, 'value', attributes[key]), mapKeys(attributes))"
    return " ".join([
        f"WITH '{trace_id}' as __gf_trace_id, (SELECT min(Start) FROM {ts_table} WHERE TraceId = __gf_trace_id) "
        f"as __gf_trace_start, (SELECT max(End) + 1 FROM {ts_table} WHERE TraceId = __gf_trace_id) as __gf_trace_end",
        f"SELECT {q(t['traceIdColumn'])} as traceID, {q(t['spanIdColumn'])} as spanID,",
        f"{q(t['parentSpanIdColumn'])} as parentSpanID, {q(t['serviceNameColumn'])} as serviceName,",
        f"{q(t['operationNameColumn'])} as operationName,",
        f"multiply(toUnixTimestamp64Nano({start}), 0.000001) as startTime,",
        f"multiply({q(t['durationColumn'])}, 0.000001) as duration,",
        attributes_as_tags(q(t["tagsColumn"]), "tags") + ",",
        attributes_as_tags(q(t["serviceTagsColumn"]), "serviceTags") + ",",
        f"if({q(t['statusCodeColumn'])} IN ('Error', 'STATUS_CODE_ERROR'), 2, 0) as statusCode,",
        f"arrayMap((name, timestamp, attributes) -> tuple(name, toString(toUnixTimestamp64Milli(timestamp)), {fields})"
        f"::Tuple(name String, timestamp String, fields Array(Map(String, String))), "
        f"{events}.Name, {events}.Timestamp, {events}.Attributes) AS logs,",
        f"arrayMap((traceID, spanID, attributes) -> tuple(traceID, spanID, {fields})"
        f"::Tuple(traceID String, spanID String, tags Array(Map(String, String))), "
        f"{links}.TraceId, {links}.SpanId, {links}.Attributes) AS references,",
        f"{q(t['kindColumn'])} as kind, {q(t['statusMessageColumn'])} as statusMessage,",
        f"{q(t['instrumentationLibraryNameColumn'])} as instrumentationLibraryName,",
        f"{q(t['instrumentationLibraryVersionColumn'])} as instrumentationLibraryVersion,",
        f"{q(t['stateColumn'])} as traceState",
        f"FROM {table} WHERE traceID = __gf_trace_id AND {start} >= __gf_trace_start AND {start} <= __gf_trace_end"])


async def test_the_plugins_trace_queries_over_the_shipped_all_in_one(chdb_endpoint: str) -> None:
    """Spans sent to the shipped all-in-one (its config's clickhouse_http on), read back with
    the trace search and trace-ID queries the plugin generates from the provisioned settings."""
    database = f"chh_{uuid.uuid4().hex[:10]}"
    async with running(chdb_endpoint, database) as service:
        from tracehouse.ingest.otlp.receiver import OtlpReceiver

        receiver = component(service, Kind.RECEIVER, OtlpReceiver)
        ext = component(service, Kind.EXTENSION, ClickHouseHttpEndpoint)
        async with httpx.AsyncClient(timeout=30) as http:
            sent = await http.post(f"http://127.0.0.1:{receiver.http_port}/v1/traces", content=FIXTURE.read_bytes(),
                                   headers={"content-type": "application/x-protobuf"})
            assert sent.status_code == 200, sent.text

        def read() -> None:
            client = clickhouse_connect.get_client(host="127.0.0.1", port=ext.port, interface="http",
                                                   database=database)
            direct = open_client(chdb_endpoint, database=database)
            try:
                settings = provisioned_traces()
                search = expand_macros(trace_search_sql(settings, database),
                                       TimeRange(0, int(time.time()) + 86400 * 365 * 50))
                found = rows(client, search)
                assert found and found == rows(direct, search)
                trace_id = found[0][0]
                spans = client.query(trace_id_sql(settings, database, trace_id))
                stored = rows(direct, f"SELECT SpanId FROM otel_traces WHERE TraceId = '{trace_id}'")
                assert sorted(r[1] for r in spans.result_rows) == sorted(s[0] for s in stored)
                assert [tuple(r) for r in spans.result_rows] == rows(direct, trace_id_sql(settings, database, trace_id))
                assert {"traceID", "spanID", "parentSpanID", "tags", "serviceTags", "logs", "references"} <= set(
                    spans.column_names)
            finally:
                client.close()
                direct.close()

        await asyncio.to_thread(read)


# ------------------------------------------------------------------------------ formats and protocol


SAMPLE = ("SELECT TraceId, SpanName, Duration, SpanAttributes, toLowCardinality(ServiceName) AS service, "
          "GenAITotalCostUSD FROM otel_traces_genai_usage_1m ARRAY JOIN [1] AS one LIMIT 0")


def test_formats_by_default_format_and_by_format_clause(endpoint: Endpoint) -> None:
    plain = get(endpoint, "SELECT 1 AS x, 'a\tb' AS s")
    assert plain.status_code == 200 and plain.content == b"1\ta\\tb\n"  # TabSeparated, ClickHouse's default
    assert plain.headers["x-clickhouse-format"] == "TabSeparated"
    assert plain.headers["content-type"].startswith("text/tab-separated-values")
    by_param = get(endpoint, "SELECT 1 AS x", default_format="JSONEachRow")
    assert by_param.json() == {"x": 1} and by_param.headers["x-clickhouse-format"] == "JSONEachRow"
    by_clause = get(endpoint, "SELECT 1 AS x FORMAT JSON", default_format="CSV")
    assert by_clause.json()["data"] == [{"x": 1}] and by_clause.headers["x-clickhouse-format"] == "JSON"
    assert by_clause.headers["content-type"].startswith("application/json")
    csv = get(endpoint, "SELECT 1 AS x, 'y' AS s FORMAT CSVWithNames")
    assert csv.text == '"x","s"\n1,"y"\n'
    settings_after_format = get(endpoint, "SELECT 1 AS x FORMAT JSONCompact SETTINGS max_threads = 1")
    assert settings_after_format.headers["x-clickhouse-format"] == "JSONCompact"


def test_every_answer_carries_the_headers_clients_read(endpoint: Endpoint) -> None:
    answer = get(endpoint, "SELECT number FROM numbers(10)", query_id="my-query")
    assert answer.status_code == 200
    assert answer.headers["x-clickhouse-query-id"] == "my-query"
    assert answer.headers["x-clickhouse-timezone"]
    assert answer.headers["x-clickhouse-server-display-name"] == "tracehouse"
    summary = json.loads(answer.headers["x-clickhouse-summary"])
    assert summary["read_rows"] == "10" and summary["result_bytes"] == str(len(answer.content))
    generated = get(endpoint, "SELECT 1").headers["x-clickhouse-query-id"]
    assert uuid.UUID(generated)


def test_ping_and_the_root(endpoint: Endpoint) -> None:
    assert httpx.get(endpoint.url + "/ping").text == "Ok.\n"
    assert httpx.get(endpoint.url + "/").text == "Ok.\n"
    missing = httpx.get(endpoint.url + "/nowhere")
    assert missing.status_code == 404 and "/nowhere" in missing.text


def test_post_body_database_and_typed_parameters(endpoint: Endpoint, seeded: Seeded) -> None:
    posted = httpx.post(endpoint.url + "/", content=b"SELECT {n:UInt8} + 1 AS x, {names:Array(String)} AS a",
                        params={"param_n": "41", "param_names": "['a','b']"}, auth=("default", PASSWORD))
    assert posted.text == "42\t['a','b']\n"
    joined = httpx.post(endpoint.url + "/", params={"query": "SELECT"}, content=b"currentDatabase()",
                        auth=("default", PASSWORD))
    assert joined.text == f"{seeded.database}\n"  # the query parameter, then the body; the config's database
    assert get(endpoint, "SELECT currentDatabase()", database="system").text == "system\n"
    bad = get(endpoint, "SELECT {n:UInt8}", param_n="many")
    assert bad.status_code == 400 and bad.text.startswith("Code: ")
    native_compression = get(endpoint, "SELECT 1", compress="1")
    assert native_compression.status_code == 400 and "enable_http_compression" in native_compression.text
    too_long = httpx.post(endpoint.url + "/", content=b"SELECT 1 " + b" " * (1 << 20), auth=("default", PASSWORD))
    assert too_long.status_code == 413 and "max_body_bytes" in too_long.text
    unknown_encoding = httpx.post(endpoint.url + "/", content=b"SELECT 1", auth=("default", PASSWORD),
                                  headers={"Content-Encoding": "snappy"})
    assert unknown_encoding.status_code == 415 and "snappy" in unknown_encoding.text
    bomb = gzip.compress(b"SELECT 1 " + b" " * (64 << 20))  # 64 KiB that would expand to 64 MiB
    assert len(bomb) < 1 << 20
    expanded = httpx.post(endpoint.url + "/", content=bomb, auth=("default", PASSWORD),
                          headers={"Content-Encoding": "gzip"})
    assert expanded.status_code == 413 and "decompressed" in expanded.text


def test_clickhouse_connect_asks_each_compression_and_reads_the_same(endpoint: Endpoint, over_http: Any) -> None:
    sql = "SELECT number, toString(number) AS s FROM numbers(5000)"
    expected = rows(over_http, sql)
    for compression in ("lz4", "zstd", "gzip", "deflate"):
        client = http_client(endpoint, compress=compression)
        try:
            assert rows(client, sql) == expected, compression
        finally:
            client.close()
    plain_body = httpx.get(endpoint.url + "/", params={"query": sql}, auth=("default", PASSWORD)).content
    for encoding, decode in (("gzip", gzip.decompress), ("deflate", zlib.decompress)):
        # httpx would decode the body itself: read it raw.
        with httpx.stream("GET", endpoint.url + "/", params={"query": sql, "enable_http_compression": "1"},
                          auth=("default", PASSWORD), headers={"Accept-Encoding": encoding}) as raw:
            assert raw.headers["content-encoding"] == encoding
            assert decode(b"".join(raw.iter_raw())) == plain_body
    # Without enable_http_compression the answer is plain, as ClickHouse's (clickhouse-go reads either).
    plain = httpx.get(endpoint.url + "/", params={"query": sql}, auth=("default", PASSWORD),
                      headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in plain.headers
    gzipped_query = httpx.post(endpoint.url + "/", content=gzip.compress(b"SELECT 7"), auth=("default", PASSWORD),
                               headers={"Content-Encoding": "gzip"})
    assert gzipped_query.text == "7\n"


def grafana_plugin_request(ep: Endpoint, sql: str, **extra: str) -> httpx.Response:
    """A query as the plugin's clickhouse-go (HTTP protocol, its default gzip compression) sends
    it: POST of the query text; database, default_format=Native and client_protocol_version in
    the URL (conn_http.go dialHttp); max_execution_time from the query's deadline, the
    datasource's queryTimeout + 5 (context.go queryOptions); Accept-Encoding from the compression
    (conn_http_query.go); credentials in the URL's userinfo without TLS (applyOptionsToRequest)."""
    params = {"database": ep.database, "default_format": "Native",
              "client_protocol_version": str(CLICKHOUSE_GO_REVISION), "max_execution_time": "65", **extra}
    return httpx.post(ep.url + "/", params=params, content=sql.encode(), auth=("default", PASSWORD),
                      headers={"Accept-Encoding": "gzip", "User-Agent": "clickhouse-go/2 (lv:go/1.24; os:linux)"})


def test_native_blocks_as_clickhouse_go_reads_them(endpoint: Endpoint) -> None:
    """At revision 54460 every block starts with a BlockInfo and every column's type is followed
    by the custom serialization byte (clickhouse-go lib/proto/block.go Decode); the bytes below
    are written from that layout, one column of each kind the walker must step over."""
    sql = ("SELECT toUInt8(7) AS u, 'ab' AS s, map(toLowCardinality('k'), 'v') AS m, [1, 2]::Array(UInt64) AS a, "
           "CAST(NULL AS Nullable(String)) AS n, toLowCardinality('lc') AS l")
    answer = grafana_plugin_request(endpoint, sql)
    assert answer.status_code == 200 and answer.headers["x-clickhouse-format"] == "Native"
    lc_dictionary = b"\x00\x06\x00\x00\x00\x00\x00\x00"  # UInt8 indexes, additional keys
    expected = b"".join([
        b"\x01\x00\x02\xff\xff\xff\xff\x00", b"\x06\x01",
        b"\x01u\x05UInt8\x00", b"\x07",
        b"\x01s\x06String\x00", b"\x02ab",
        b"\x01m\x23Map(LowCardinality(String), String)\x00", b"\x01" + bytes(7), (1).to_bytes(8, "little"),
        lc_dictionary, (2).to_bytes(8, "little"), b"\x00\x01k", (1).to_bytes(8, "little"), b"\x01", b"\x01v",
        b"\x01a\x0dArray(UInt64)\x00", (2).to_bytes(8, "little"), (1).to_bytes(8, "little"), (2).to_bytes(8, "little"),
        b"\x01n\x10Nullable(String)\x00", b"\x01", b"\x00",
        b"\x01l\x16LowCardinality(String)\x00", b"\x01" + bytes(7), lc_dictionary, (2).to_bytes(8, "little"),
        b"\x00\x02lc", (1).to_bytes(8, "little"), b"\x01",
    ])
    assert answer.content == expected
    hello = grafana_plugin_request(endpoint, "SELECT displayName(), version(), revision(), timezone()")
    assert hello.content.startswith(b"\x01\x00\x02\xff\xff\xff\xff\x00\x04\x01")
    # clickhouse-go's ping (the datasource's health check) wants one column named "1".
    ping = grafana_plugin_request(endpoint, "SELECT 1")
    assert ping.content == b"\x01\x00\x02\xff\xff\xff\xff\x00\x01\x01\x011\x05UInt8\x00\x01"
    # A block per block, each with its BlockInfo; clickhouse-connect's probe revision (54405)
    # has the BlockInfo but no custom serialization byte.
    blocks = grafana_plugin_request(endpoint, "SELECT number FROM numbers(3)", max_block_size="1")
    assert blocks.content == b"".join(b"\x01\x00\x02\xff\xff\xff\xff\x00\x01\x01\x06number\x06UInt64\x00"
                                      + n.to_bytes(8, "little") for n in range(3))
    probe = grafana_plugin_request(endpoint, "SELECT 1 AS check", client_protocol_version="54405")
    assert probe.content[8:16] == b"\x01\x01\x05check"


class _Bytes:
    """A one-chunk source for clickhouse-connect's response buffer."""

    exception_tag = None
    last_message = None

    def __init__(self, data: bytes):
        self.gen = iter([data])

    def close(self) -> None:
        return None


def decode_at_revision(data: bytes, revision: int) -> list[tuple[Any, ...]]:
    """Native blocks read as clickhouse-go does at `revision` (BlockInfo; the custom serialization
    byte after each type), each column's data by clickhouse-connect's own type readers: an
    independent reading of what `for_revision` wrote."""
    from clickhouse_connect.datatypes.registry import get_from_name
    from clickhouse_connect.driver.exceptions import StreamCompleteException
    from clickhouse_connect.driver.query import QueryContext
    from clickhouse_connect.driverc.buffer import ResponseBuffer  # type: ignore[import-not-found]

    assert revision >= 54454
    source, out = ResponseBuffer(_Bytes(data)), []
    while True:
        try:
            block_info = source.read_bytes(8)
        except StreamCompleteException:
            return out
        assert block_info == b"\x01\x00\x02\xff\xff\xff\xff\x00"
        columns, count = source.read_leb128(), source.read_leb128()
        values = []
        for _ in range(columns):
            source.read_leb128_str()
            kind = get_from_name(source.read_leb128_str())
            assert source.read_byte() == 0  # no custom serialization
            values.append(kind.read_column(source, count, QueryContext()) if count else [])
        out.extend(zip(*values, strict=True))


@pytest.mark.parametrize("name", ["genai-overview.json", "prompts.json"])
def test_every_dashboard_query_in_native_at_clickhouse_gos_revision(name: str, endpoint: Endpoint,
                                                                    over_http: Any) -> None:
    """The Grafana plugin asks Native at revision 54460: every dashboard query's blocks, read
    at that revision, hold the rows clickhouse-connect reads."""
    queries = clickhouse_queries(json.loads((DASHBOARDS / name).read_text()))
    for where, raw_sql in queries:
        sql = to_grafana_sql(raw_sql, SELECTIONS["all"], WHOLE)
        answer = grafana_plugin_request(endpoint, sql)
        assert answer.status_code == 200, (where, answer.text)
        assert decode_at_revision(answer.content, CLICKHOUSE_GO_REVISION) == rows(over_http, sql), where


def test_the_plugins_schema_queries_in_native(endpoint: Endpoint, over_http: Any) -> None:
    """What the datasource's editor and trace mode ask first (src/data/CHDatasource.ts at v4.18.0:
    databases, tables (the `_trace_id_ts` check), columns, a Map's keys, the server version)."""
    db = endpoint.database
    queries = ["SHOW DATABASES", f'SHOW TABLES FROM "{db}"', f'DESC TABLE "{db}"."otel_traces"', "SELECT version()",
               f"SELECT name, type, table FROM system.columns WHERE database IN ('{db}') AND table = 'otel_traces'",
               f'SELECT DISTINCT arrayJoin(mapKeys("ResourceAttributes")) as keys FROM (SELECT "ResourceAttributes" '
               f'FROM "{db}"."otel_traces" LIMIT 1000) LIMIT 1000']
    for sql in queries:
        answer = grafana_plugin_request(endpoint, sql)
        assert answer.status_code == 200, (sql, answer.text)
        assert decode_at_revision(answer.content, CLICKHOUSE_GO_REVISION) == rows(over_http, sql), sql
    tables = {r[0] for r in rows(over_http, f'SHOW TABLES FROM "{db}"')}
    assert {"otel_traces", "otel_traces_trace_id_ts"} <= tables


def test_native_refuses_a_type_it_cannot_step_over_naming_it(endpoint: Endpoint) -> None:
    answer = grafana_plugin_request(endpoint, "SELECT 1::Dynamic AS d")
    assert answer.status_code == 501 and "Dynamic" in answer.text and "another format" in answer.text
    assert grafana_plugin_request(endpoint, "SELECT 1::Dynamic AS d FORMAT JSONEachRow").status_code == 200


def test_queries_at_once_each_on_its_own_connection(endpoint: Endpoint) -> None:
    def one(i: int) -> str:
        return get(endpoint, "SELECT {i:UInt32} + sleepEachRow(0.05)", param_i=str(i), max_threads=str(1 + i % 3)).text

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(12) as pool:
        assert list(pool.map(one, range(24))) == [f"{i}\n" for i in range(24)]


def test_native_walks_nested_and_wide_types(chdb_endpoint: str) -> None:
    import chdb

    sql = ("SELECT [map('a', [toDateTime64(1, 9, 'UTC')])] AS deep, (1, 'x')::Tuple(i Int32, s String) AS t, "
           "toDecimal128(1.5, 20) AS d, toUUID('00000000-0000-0000-0000-000000000001') AS u, "
           "[toLowCardinality(toNullable('n')), NULL] AS lcn, toFixedString('ab', 2) AS f, "
           "toIPv6('::1') AS ip, CAST('b' AS Enum8('a' = 1, 'b' = 2)) AS e FROM numbers(3)")
    connection = chdb.connect(str(chdb_path(chdb_endpoint)))
    try:
        plain = connection.query(sql, "Native").bytes()
    finally:
        connection.close()
    decoded = decode_at_revision(for_revision(plain, CLICKHOUSE_GO_REVISION), CLICKHOUSE_GO_REVISION)
    client = open_client(chdb_endpoint)
    try:
        assert decoded == rows(client, sql)
    finally:
        client.close()
    assert len(decoded) == 3 and decoded[0][4] == ["n", None]


# ------------------------------------------------------------------------------ read-only and caps


@pytest.mark.parametrize("sql", [
    "INSERT INTO otel_traces_prompts (Name) VALUES ('x')",
    "DROP TABLE otel_traces_prompts",
    "CREATE TABLE t (a Int8) ENGINE = Memory",
    "ALTER TABLE otel_traces_prompts DELETE WHERE 1",
    "TRUNCATE TABLE otel_traces_prompts",
    "SET max_execution_time = 0",
    "SYSTEM STOP MERGES",
    " /* a comment first */ DROP TABLE otel_traces_prompts",
])
def test_writes_are_refused_like_a_readonly_clickhouse(sql: str, endpoint: Endpoint, direct: Any) -> None:
    before = rows(direct, "SELECT count() FROM otel_traces_prompts")
    for answer in (get(endpoint, sql), httpx.post(endpoint.url + "/", content=sql.encode(), auth=("default", PASSWORD))):
        assert answer.status_code == 403
        assert answer.text.startswith("Code: 164. DB::Exception: Cannot execute query in readonly mode")
        assert answer.headers["x-clickhouse-exception-code"] == "164"
    assert rows(direct, "SELECT count() FROM otel_traces_prompts") == before


def test_the_engine_refuses_what_the_text_check_lets_through(endpoint: Endpoint, direct: Any) -> None:
    """readonly=1 is what keeps writes out: a reading statement that writes is refused by ClickHouse."""
    before = rows(direct, "SELECT count() FROM otel_traces_prompts")
    for sql in ("SELECT * FROM file('/etc/hostname', 'LineAsString')", "SELECT * FROM url('http://127.0.0.1:9/')",
                "WITH 1 AS x INSERT INTO otel_traces_prompts (Name) SELECT 'x'"):
        answer = get(endpoint, sql)
        assert answer.status_code in (400, 403) and answer.text.startswith("Code: "), sql
    multi = get(endpoint, "SELECT 1; DROP TABLE otel_traces_prompts")
    assert multi.status_code == 400 and "multi-statements are not allowed" in multi.text
    assert get(endpoint, "").status_code == 200  # GET / without a query: "Ok."
    empty = httpx.post(endpoint.url + "/", content=b" ;", auth=("default", PASSWORD))
    assert empty.status_code == 400 and "Empty query" in empty.text
    assert rows(direct, "SELECT count() FROM otel_traces_prompts") == before


def test_settings_apply_but_cannot_lift_the_caps(endpoint: Endpoint) -> None:
    assert get(endpoint, "SELECT getSetting('max_threads')", max_threads="3").text == "3\n"
    assert get(endpoint, "SELECT getSetting('readonly')", readonly="0").text == "1\n"
    caps = "SELECT getSetting('max_execution_time'), getSetting('max_memory_usage')"
    assert get(endpoint, caps, max_execution_time="0", max_memory_usage="0").text == f"60\t{2048 << 20}\n"
    assert get(endpoint, caps, max_execution_time="5").text == f"5\t{2048 << 20}\n"  # lowering is fine
    raised = get(endpoint, "SELECT 1 SETTINGS max_execution_time = 1000")
    assert raised.status_code == 403 and "readonly" in raised.text
    unknown = get(endpoint, "SELECT 1", no_such_setting="1")
    assert unknown.status_code == 400 and "no_such_setting" in unknown.text


def test_the_time_and_memory_caps(chdb_endpoint: str, seeded: Seeded) -> None:
    ep = start_endpoint(chdb_endpoint, seeded.database, max_execution_time="1s", max_memory_usage_mib=64)
    try:
        started = time.monotonic()
        slow = get(ep, "SELECT count() FROM system.numbers", max_execution_time="100")
        assert time.monotonic() - started < 10
        assert slow.status_code == 500 and slow.headers["x-clickhouse-exception-code"] == "159", slow.text
        big = get(ep, "SELECT groupArray(number) FROM numbers(50000000)")
        assert big.status_code == 500 and big.headers["x-clickhouse-exception-code"] == "241", big.text
    finally:
        stop_endpoint(ep)


def test_credentials_are_checked_every_way_clients_send_them(endpoint: Endpoint) -> None:
    ok = {"X-ClickHouse-User": "default", "X-ClickHouse-Key": PASSWORD}
    assert httpx.get(endpoint.url + "/", params={"query": "SELECT 1"}, headers=ok).text == "1\n"
    assert get(endpoint, "SELECT 1", auth=None, user="default", password=PASSWORD).text == "1\n"
    basic = "Basic " + base64.b64encode(f"default:{PASSWORD}".encode()).decode()
    assert httpx.get(endpoint.url + "/", params={"query": "SELECT 1"}, headers={"Authorization": basic}).text == "1\n"
    refusals = [
        get(endpoint, "SELECT 1", auth=None),
        get(endpoint, "SELECT 1", auth=("default", "wrong")),
        get(endpoint, "SELECT 1", auth=("admin", PASSWORD)),
        httpx.get(endpoint.url + "/", params={"query": "SELECT 1"},
                  headers={"X-ClickHouse-User": "default", "X-ClickHouse-Key": "wrong"}),
        httpx.get(endpoint.url + "/", params={"query": "SELECT 1"}, headers={"Authorization": "Basic !!"}),
    ]
    for refused in refusals:
        assert refused.status_code == 401
        assert refused.text.startswith("Code: 516. DB::Exception: ") and "AUTHENTICATION_FAILED" in refused.text
        assert PASSWORD not in refused.text
    with pytest.raises(Exception, match="516|Authentication failed"):
        clickhouse_connect.get_client(host="127.0.0.1", port=endpoint.ext.port, interface="http",
                                      username="default", password="wrong")


# ------------------------------------------------------------------------------ tenants and the shipped configs


def test_refuses_to_run_beside_tenants_unless_allowed(chdb_endpoint: str) -> None:
    raw = all_in_one(chdb_endpoint, "t_tenants")
    raw["extensions"]["bearertokenauth"] = {"env": "TRACEHOUSE_TEST_NO_KEYS"}
    raw["service"]["extensions"] = ["bearertokenauth", "query_api", "clickhouse_http"]
    with pytest.raises(ConfigError) as refused:
        load_config_dict(raw)
    assert refused.value.path == "extensions::clickhouse_http"
    assert "bypass tenant isolation" in refused.value.reason and "allow_with_tenants" in refused.value.reason
    raw["extensions"]["clickhouse_http"]["allow_with_tenants"] = True
    load_config_dict(raw)


def test_on_in_the_all_in_one_off_in_the_secure_one() -> None:
    plain = yaml.safe_load((REPO / "deploy/config/all-in-one.yaml").read_text())
    secure = yaml.safe_load((REPO / "deploy/config/all-in-one-secure.yaml").read_text())
    assert "clickhouse_http" in plain["service"]["extensions"]
    assert "clickhouse_http" not in secure["service"]["extensions"]
    assert "clickhouse_http" not in (secure.get("extensions") or {})


async def test_a_clickhouse_server_dsn_leaves_the_endpoint_idle() -> None:
    ext = ClickHouseHttpEndpoint(Settings(ComponentID("clickhouse_http"), Kind.EXTENSION), ClickHouseHttpConfig(
        endpoint="127.0.0.1:0", clickhouse={"endpoint": "http://clickhouse.invalid:8123"}))
    await ext.start(TestHost())
    assert ext.port is None
    await ext.shutdown()
