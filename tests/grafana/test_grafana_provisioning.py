"""The provisioning files: valid against Grafana's provisioning format, every placeholder
documented, and the ClickHouse datasource's trace settings naming columns that exist with the
types the plugin's trace view needs — shown by running a trace-id query of the plugin's shape
on real spans in chDB.

The schemas below are written from Grafana's provisioning docs (datasources: apiVersion 1,
`datasources`/`deleteDatasources`; dashboards: `providers`) and, for `jsonData`, from each
plugin's settings: the ClickHouse plugin's `CHConfig`/`CHTracesConfig` (src/types/config.ts,
pkg/plugin/settings.go). `additionalProperties: false` makes a misspelt key an error, where
Grafana would silently ignore it.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from otlp_fixtures import load_batch
from tracehouse.core.component import ComponentID, Kind, Settings
from tracehouse.core.pdata import TraceBatch, key_values
from tracehouse.core.testing import TestHost
from tracehouse.grafana.__main__ import DASHBOARDS
from tracehouse.grafana.common import CLICKHOUSE_UID, JAEGER_UID, PROMETHEUS_UID
from tracehouse.sinks.clickhouse.client import open_client
from tracehouse.sinks.clickhouse.config import ClickHouseExporterConfig
from tracehouse.sinks.clickhouse.exporter import ClickHouseExporter

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "deploy" / "grafana"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "tracehouse.yaml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "tracehouse.yaml"

_STR = {"type": "string"}
_BOOL = {"type": "boolean"}

CLICKHOUSE_TRACES = {
    "type": "object", "additionalProperties": False,
    "properties": {key: _STR for key in (
        "defaultDatabase", "defaultTable", "otelVersion", "traceIdColumn", "spanIdColumn", "operationNameColumn",
        "parentSpanIdColumn", "serviceNameColumn", "durationColumn", "startTimeColumn", "tagsColumn",
        "serviceTagsColumn", "kindColumn", "statusCodeColumn", "statusMessageColumn", "stateColumn",
        "instrumentationLibraryNameColumn", "instrumentationLibraryVersionColumn", "traceEventsColumnPrefix",
        "traceLinksColumnPrefix", "traceTimestampTableSuffix")}
    | {"otelEnabled": _BOOL, "flattenNested": _BOOL, "showTraceLinks": _BOOL,
       "durationUnit": {"enum": ["seconds", "milliseconds", "microseconds", "nanoseconds"]}},
}

CLICKHOUSE_JSON_DATA = {
    "type": "object", "additionalProperties": False, "required": ["host", "port", "protocol", "username"],
    "properties": {key: _STR for key in (
        "host", "path", "username", "defaultDatabase", "defaultTable", "connMaxLifetime", "dialTimeout",
        "maxIdleConns", "maxOpenConns", "queryTimeout", "rowCapacityHint", "version")}
    | {key: _BOOL for key in (
        "secure", "tlsSkipVerify", "tlsAuth", "tlsAuthWithCACert", "validateSql", "forwardGrafanaHeaders",
        "oauthPassThru", "oauthPassThruAllowFallback", "enableSecureSocksProxy", "enableRowLimit",
        "hideTableNameInAdhocFilters", "enableMapKeysDiscovery")}
    | {"port": {"type": ["string", "integer"]}, "protocol": {"enum": ["native", "http"]},
       "configMode": {"enum": ["classic", "single-table"]}, "signalType": {"enum": ["logs", "traces"]},
       "traces": CLICKHOUSE_TRACES, "logs": {"type": "object"}, "httpHeaders": {"type": "array"},
       "customSettings": {"type": "array"}, "aliasTables": {"type": "array"}},
}

JAEGER_JSON_DATA = {
    "type": "object", "additionalProperties": False,
    "properties": {"nodeGraph": {"type": "object", "additionalProperties": False, "properties": {"enabled": _BOOL}},
                   "tracesToLogsV2": {"type": "object"}, "tracesToMetrics": {"type": "object"},
                   "spanBar": {"type": "object"}, "traceIdTimeParams": {"type": "object"}},
}

PROMETHEUS_JSON_DATA = {
    "type": "object", "additionalProperties": False,
    "properties": {"httpMethod": {"enum": ["GET", "POST"]}, "timeInterval": _STR, "queryTimeout": _STR,
                   "prometheusType": _STR, "prometheusVersion": _STR, "cacheLevel": _STR,
                   "incrementalQuerying": _BOOL, "disableRecordingRules": _BOOL},
}

DATASOURCE = {
    "type": "object", "additionalProperties": False, "required": ["name", "type"],
    "properties": {"name": _STR, "type": _STR, "uid": _STR, "access": {"enum": ["proxy", "direct"]},
                   "orgId": {"type": "integer"}, "url": _STR, "user": _STR, "database": _STR,
                   "basicAuth": _BOOL, "basicAuthUser": _STR, "withCredentials": _BOOL, "isDefault": _BOOL,
                   "version": {"type": "integer"}, "editable": _BOOL, "jsonData": {"type": "object"},
                   "secureJsonData": {"type": "object", "additionalProperties": _STR}},
    "allOf": [
        {"if": {"properties": {"type": {"const": "grafana-clickhouse-datasource"}}},
         "then": {"properties": {"jsonData": CLICKHOUSE_JSON_DATA}, "required": ["jsonData"]}},
        {"if": {"properties": {"type": {"const": "jaeger"}}},
         "then": {"properties": {"jsonData": JAEGER_JSON_DATA}, "required": ["url"]}},
        {"if": {"properties": {"type": {"const": "prometheus"}}},
         "then": {"properties": {"jsonData": PROMETHEUS_JSON_DATA}, "required": ["url"]}},
    ],
}

DATASOURCES_FILE = {
    "type": "object", "additionalProperties": False, "required": ["apiVersion", "datasources"],
    "properties": {"apiVersion": {"const": 1}, "datasources": {"type": "array", "items": DATASOURCE},
                   "deleteDatasources": {"type": "array"}, "prune": _BOOL},
}

PROVIDERS_FILE = {
    "type": "object", "additionalProperties": False, "required": ["apiVersion", "providers"],
    "properties": {"apiVersion": {"const": 1}, "providers": {"type": "array", "items": {
        "type": "object", "additionalProperties": False, "required": ["name", "type", "options"],
        "properties": {"name": _STR, "orgId": {"type": "integer"}, "folder": _STR, "folderUid": _STR,
                       "type": {"const": "file"}, "disableDeletion": _BOOL, "allowUiUpdates": _BOOL,
                       "updateIntervalSeconds": {"type": "integer"},
                       "options": {"type": "object", "additionalProperties": False, "required": ["path"],
                                   "properties": {"path": _STR, "foldersFromFilesStructure": _BOOL}}}}}},
}

PLACEHOLDER = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def load_yaml(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def expand(text: str, env: dict[str, str]) -> str:
    """Grafana's substitution: `$VAR` / `${VAR}` from the environment (unset -> empty)."""
    return PLACEHOLDER.sub(lambda m: env.get(m.group(1) or m.group(2), ""), text)


EXAMPLE_ENV = {"TRACEHOUSE_CLICKHOUSE_HOST": "clickhouse", "TRACEHOUSE_CLICKHOUSE_PORT": "8123",
               "TRACEHOUSE_CLICKHOUSE_USER": "grafana", "TRACEHOUSE_CLICKHOUSE_PASSWORD": "s3cret",
               "TRACEHOUSE_CLICKHOUSE_DATABASE": "tracehouse", "TRACEHOUSE_QUERY_URL": "http://tracehouse:8080",
               "TRACEHOUSE_PROMETHEUS_URL": "http://prometheus:9090"}


def datasources(env: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    data = yaml.safe_load(expand(DATASOURCES.read_text(), env if env is not None else EXAMPLE_ENV))
    return {ds["uid"]: ds for ds in data["datasources"]}


# ------------------------------------------------------------------------------ format


def test_datasource_file_matches_the_provisioning_format() -> None:
    raw = load_yaml(DATASOURCES)
    jsonschema.validate(raw, DATASOURCES_FILE)
    jsonschema.validate(yaml.safe_load(expand(DATASOURCES.read_text(), EXAMPLE_ENV)), DATASOURCES_FILE)
    assert set(datasources()) == {CLICKHOUSE_UID, JAEGER_UID, PROMETHEUS_UID}


def test_dashboard_provider_matches_the_provisioning_format() -> None:
    raw = load_yaml(PROVIDERS)
    jsonschema.validate(raw, PROVIDERS_FILE)
    (provider,) = raw["providers"]
    assert provider["options"]["path"].endswith("/tracehouse")


def test_the_schemas_refuse_what_grafana_would_ignore() -> None:
    """The schemas are not vacuous: a misspelt key or a wrong type is refused."""
    for mutate in (lambda d: d["datasources"][0]["jsonData"].update(defaultDatabse="x"),
                   lambda d: d["datasources"][0]["jsonData"]["traces"].update(durationUnit="ns"),
                   lambda d: d["datasources"][0]["jsonData"].update(protocol="grpc"),
                   lambda d: d["datasources"][1].pop("url"),
                   lambda d: d.update(apiVersion=2)):
        data = load_yaml(DATASOURCES)
        mutate(data)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(data, DATASOURCES_FILE)


def test_every_placeholder_is_documented() -> None:
    names = {a or b for a, b in PLACEHOLDER.findall(DATASOURCES.read_text())}
    assert names == set(EXAMPLE_ENV)
    readme = (GRAFANA / "README.md").read_text()
    header = DATASOURCES.read_text().split("apiVersion")[0]
    for name in names:
        assert name in readme, f"{name} is not in deploy/grafana/README.md"
        assert name in header, f"{name} is not explained at the top of {DATASOURCES.name}"


def test_unset_placeholders_leave_an_invalid_datasource_not_a_silent_one() -> None:
    """Grafana substitutes unset variables with ''; the plugin then refuses the empty host
    (`settings.isValid`), which is the error users see. Document-and-check, not guess."""
    clickhouse = datasources(env={})[CLICKHOUSE_UID]
    assert clickhouse["jsonData"]["host"] is None and clickhouse["secureJsonData"]["password"] is None


def test_dashboards_use_the_provisioned_datasources() -> None:
    uids = set(datasources())
    for name in DASHBOARDS:
        text = (GRAFANA / "dashboards" / name).read_text()
        board = json.loads(text)
        defaults = {v["current"]["value"] for v in board["templating"]["list"] if v["type"] == "datasource"}
        assert defaults and defaults <= uids, name
        for uid in re.findall(r'"datasourceUid": "([^"]+)"', text):
            assert uid in uids, (name, uid)


# ------------------------------------------------------------------------------ trace mode

# What the plugin's trace view does with each mapped column, and so the types it needs.
STRING = re.compile(r"^(LowCardinality\()?String\)?$")
STRING_MAP = re.compile(r"^Map\((LowCardinality\(String\)|String), String\)$")
EXPECTED_TYPES = {
    "startTimeColumn": re.compile(r"^DateTime64\(9\)$"),   # toUnixTimestamp64Nano(...)
    "durationColumn": re.compile(r"^U?Int64$"),            # multiply(..., 0.000001) for nanoseconds
    "tagsColumn": STRING_MAP,                              # arrayMap(key -> map('key', key, 'value', col[key]), mapKeys(col))
    "serviceTagsColumn": STRING_MAP,
    **{key: STRING for key in ("traceIdColumn", "spanIdColumn", "parentSpanIdColumn", "operationNameColumn",
                               "serviceNameColumn", "kindColumn", "statusCodeColumn", "statusMessageColumn",
                               "stateColumn", "instrumentationLibraryNameColumn",
                               "instrumentationLibraryVersionColumn")},
}
NESTED_TYPES = {
    ("traceEventsColumnPrefix", "Timestamp"): re.compile(r"^Array\(DateTime64\(9\)\)$"),
    ("traceEventsColumnPrefix", "Name"): re.compile(r"^Array\((LowCardinality\()?String\)?\)$"),
    ("traceEventsColumnPrefix", "Attributes"): re.compile(r"^Array\(Map\((LowCardinality\(String\)|String), String\)\)$"),
    ("traceLinksColumnPrefix", "TraceId"): re.compile(r"^Array\(String\)$"),
    ("traceLinksColumnPrefix", "SpanId"): re.compile(r"^Array\(String\)$"),
    ("traceLinksColumnPrefix", "Attributes"): re.compile(r"^Array\(Map\((LowCardinality\(String\)|String), String\)\)$"),
}


def traces_settings() -> dict[str, Any]:
    settings: dict[str, Any] = datasources()[CLICKHOUSE_UID]["jsonData"]["traces"]
    return settings


def trace_id_query(t: dict[str, Any], database: str, trace_id: str) -> str:
    """A trace-id query in the shape the plugin's trace view runs (sqlGenerator's trace-id
    mode with a `_trace_id_ts` table): the mapped columns under the aliases Grafana's trace
    view reads, tags as key/value maps, events as logs, links as references."""
    def col(key: str) -> str:
        return f"`{t[key]}`"
    events, links = t["traceEventsColumnPrefix"], t["traceLinksColumnPrefix"]
    table = f"`{database}`.`{t['defaultTable']}`"
    lookup = f"`{database}`.`{t['defaultTable']}{t['traceTimestampTableSuffix']}`"
    attrs = "arrayMap(key -> map('key', key, 'value', {0}[key]), mapKeys({0}))"
    return f"""
        WITH '{trace_id}' AS __gf_trace_id,
             (SELECT min(Start) FROM {lookup} WHERE TraceId = __gf_trace_id) AS __gf_trace_start,
             (SELECT max(End) + 1 FROM {lookup} WHERE TraceId = __gf_trace_id) AS __gf_trace_end
        SELECT {col('traceIdColumn')} AS traceID, {col('spanIdColumn')} AS spanID,
               {col('parentSpanIdColumn')} AS parentSpanID, {col('serviceNameColumn')} AS serviceName,
               {col('operationNameColumn')} AS operationName,
               multiply(toUnixTimestamp64Nano({col('startTimeColumn')}), 0.000001) AS startTime,
               multiply({col('durationColumn')}, 0.000001) AS duration,
               {attrs.format(col('tagsColumn'))} AS tags,
               {attrs.format(col('serviceTagsColumn'))} AS serviceTags,
               if({col('statusCodeColumn')} IN ('Error', 'STATUS_CODE_ERROR'), 2, 0) AS statusCode,
               arrayMap((name, timestamp, attributes) -> tuple(name, toString(toUnixTimestamp64Milli(timestamp)),
                   {attrs.format('attributes')})::Tuple(name String, timestamp String, fields Array(Map(String, String))),
                   `{events}.Name`, `{events}.Timestamp`, `{events}.Attributes`) AS logs,
               arrayMap((traceID, spanID, attributes) -> tuple(traceID, spanID,
                   {attrs.format('attributes')})::Tuple(traceID String, spanID String, tags Array(Map(String, String))),
                   `{links}.TraceId`, `{links}.SpanId`, `{links}.Attributes`) AS references,
               {col('kindColumn')} AS kind, {col('statusMessageColumn')} AS statusMessage,
               {col('instrumentationLibraryNameColumn')} AS instrumentationLibraryName,
               {col('instrumentationLibraryVersionColumn')} AS instrumentationLibraryVersion,
               {col('stateColumn')} AS traceState
        FROM {table}
        WHERE traceID = __gf_trace_id
          AND {col('startTimeColumn')} >= __gf_trace_start AND {col('startTimeColumn')} <= __gf_trace_end"""


def linked_trace() -> TraceBatch:
    """A three-span trace with an error, an event and a link, as an SDK would send it."""
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.extend(key_values({"service.name": "agent", "deployment.environment": "test"}))
    scope = rs.scope_spans.add()
    scope.scope.name, scope.scope.version = "agent-lib", "1.2.3"
    t0 = 1_767_225_600_000_000_000
    for i, (name, parent) in enumerate((("run", 0), ("chat gpt-4o", 1), ("tool", 2)), start=1):
        span = scope.spans.add()
        span.trace_id = bytes.fromhex("ab" * 16)
        span.span_id = i.to_bytes(8, "big")
        if parent:
            span.parent_span_id = parent.to_bytes(8, "big")
        span.name, span.kind = name, Span.SPAN_KIND_CLIENT if i == 2 else Span.SPAN_KIND_INTERNAL
        span.start_time_unix_nano = t0 + i * 1_000_000
        span.end_time_unix_nano = span.start_time_unix_nano + (4 - i) * 250_000_123
        span.attributes.extend(key_values({"step": i, "gen_ai.request.model": "gpt-4o"} if i == 2 else {"step": i}))
    chat = scope.spans[1]
    event = chat.events.add()
    event.name, event.time_unix_nano = "retry", chat.start_time_unix_nano + 5_000_000
    event.attributes.extend(key_values({"attempt": 2}))
    link = chat.links.add()
    link.trace_id, link.span_id = bytes.fromhex("cd" * 16), (9).to_bytes(8, "big")
    link.attributes.extend(key_values({"kind": "previous run"}))
    scope.spans[2].status.code, scope.spans[2].status.message = Status.STATUS_CODE_ERROR, "tool failed"
    return TraceBatch.from_request(request)


@pytest.fixture(scope="module")
def stored(chdb_endpoint: str) -> tuple[str, str]:
    """Real spans written by the exporter: the linked trace plus every captured fixture."""
    database = f"grafana_{uuid.uuid4().hex[:10]}"
    exporter = ClickHouseExporter(Settings(ComponentID("clickhouse"), Kind.EXPORTER),
                                  ClickHouseExporterConfig(endpoint=chdb_endpoint, database=database))

    async def write() -> None:
        await exporter.start(TestHost())
        try:
            await exporter.consume(linked_trace())
            await exporter.consume(load_batch("openinference/http-protobuf.pb"))
        finally:
            await exporter.shutdown()
    asyncio.run(write())
    return chdb_endpoint, database


def test_trace_mapping_names_columns_with_the_types_the_plugin_needs(stored: tuple[str, str]) -> None:
    endpoint, database = stored
    t = traces_settings()
    assert t["durationUnit"] == "nanoseconds" and t["flattenNested"] is False
    client = open_client(endpoint)
    try:
        columns = dict(client.query(
            "SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String}",
            parameters={"db": database, "t": t["defaultTable"]}).result_rows)
        lookup = dict(client.query(
            "SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String}",
            parameters={"db": database, "t": t["defaultTable"] + t["traceTimestampTableSuffix"]}).result_rows)
    finally:
        client.close()
    problems = [f"{key} -> {t[key]}: {columns.get(t[key], 'missing')}" for key, pattern in EXPECTED_TYPES.items()
                if not pattern.match(columns.get(t[key], ""))]
    problems += [f"{t[prefix]}.{field}: {columns.get(t[prefix] + '.' + field, 'missing')}"
                 for (prefix, field), pattern in NESTED_TYPES.items()
                 if not pattern.match(columns.get(f"{t[prefix]}.{field}", ""))]
    assert problems == []
    assert lookup.keys() >= {"TraceId", "Start", "End"}


def test_the_trace_view_query_returns_the_trace_as_sent(stored: tuple[str, str]) -> None:
    endpoint, database = stored
    client = open_client(endpoint)
    try:
        result = client.query(trace_id_query(traces_settings(), database, "ab" * 16))
    finally:
        client.close()
    rows = sorted((dict(zip(result.column_names, row, strict=True)) for row in result.result_rows),
                  key=lambda r: r["spanID"])
    sent = sorted(((span, rs) for rs, _, span in linked_trace().iter_spans()), key=lambda p: p[0].span_id)
    assert len(rows) == len(sent) == 3
    for row, (span, rs) in zip(rows, sent, strict=True):
        assert row["traceID"] == span.trace_id.hex() and row["spanID"] == span.span_id.hex()
        assert row["parentSpanID"] == span.parent_span_id.hex()
        assert row["operationName"] == span.name and row["serviceName"] == "agent"
        assert row["startTime"] == pytest.approx(span.start_time_unix_nano / 1e6)
        assert row["duration"] == pytest.approx((span.end_time_unix_nano - span.start_time_unix_nano) / 1e6)
        assert {m["key"]: m["value"] for m in row["tags"]} == {kv.key: str(kv.value.int_value or kv.value.string_value)
                                                               for kv in span.attributes}
        assert {m["key"]: m["value"] for m in row["serviceTags"]} == {
            "service.name": "agent", "deployment.environment": "test"}
        assert row["statusCode"] == (2 if span.status.code == Status.STATUS_CODE_ERROR else 0)
        assert row["instrumentationLibraryName"] == "agent-lib" and row["instrumentationLibraryVersion"] == "1.2.3"
        assert len(row["logs"]) == len(span.events) and len(row["references"]) == len(span.links)
    chat = rows[1]
    assert chat["logs"] == [{"name": "retry", "fields": [{"key": "attempt", "value": "2"}],
                             "timestamp": str(sent[1][0].events[0].time_unix_nano // 1_000_000)}]
    assert chat["references"] == [{"traceID": "cd" * 16, "spanID": (9).to_bytes(8, "big").hex(),
                                   "tags": [{"key": "kind", "value": "previous run"}]}]
    assert rows[2]["statusMessage"] == "tool failed" and rows[1]["kind"] == "Client"


def test_the_trace_view_query_finds_a_captured_client_trace(stored: tuple[str, str]) -> None:
    endpoint, database = stored
    batch = load_batch("openinference/http-protobuf.pb")
    spans = [span for _, _, span in batch.iter_spans()]
    trace_id = spans[0].trace_id.hex()
    expected = {span.span_id.hex(): span for span in spans if span.trace_id.hex() == trace_id}
    client = open_client(endpoint)
    try:
        result = client.query(trace_id_query(traces_settings(), database, trace_id))
    finally:
        client.close()
    rows = {row[1]: dict(zip(result.column_names, row, strict=True)) for row in result.result_rows}
    assert rows.keys() == expected.keys()
    for span_id, row in rows.items():
        assert row["operationName"] == expected[span_id].name
        assert row["parentSpanID"] == expected[span_id].parent_span_id.hex()

