"""What every tracehouse dashboard shares: datasources, the ClickHouse query type, template
variables and the SQL filter they expand to.

Panels query the official ClickHouse plugin (`grafana-clickhouse-datasource`) with raw SQL.
The SDK has no model for that plugin's query, so `ClickHouseQuery` is one, registered with
the SDK's runtime so `Dashboard.from_json` parses our targets strictly (the schema test).

Macros are the plugin's: `$__timeFilter(col)` (seconds), `$__interval_s`, and
`$__conditionalAll(cond, $var)`, which the plugin replaces with `1=1` when "All" is selected.
Template variables are always expanded with `${var:singlequote}`: the plugin's default
format leaves a single value unquoted.
"""

from __future__ import annotations

import json
import typing
from dataclasses import dataclass, field

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dashboard_models
from grafana_foundation_sdk.models.dashboard import (
    DashboardLinkType,
    DataSourceRef,
    VariableOption,
    VariableRefresh,
    VariableSort,
)

CLICKHOUSE_PLUGIN = "grafana-clickhouse-datasource"
# The provisioned datasources' uids (deploy/grafana/provisioning/datasources/tracehouse.yaml).
CLICKHOUSE_UID = "tracehouse-clickhouse"
PROMETHEUS_UID = "tracehouse-prometheus"
JAEGER_UID = "tracehouse-jaeger"

# Dashboard uids, so dashboards can link to each other.
OVERVIEW_UID = "tracehouse-genai-overview"
PROMPTS_UID = "tracehouse-prompts"
PIPELINE_UID = "tracehouse-pipeline-health"
TAGS = ["tracehouse", "genai"]

# The tables the panels read (the exporter's default `traces_table: otel_traces`). The
# datasource's `defaultDatabase` selects the database, so the SQL names tables unqualified.
SPANS = "otel_traces"
USAGE = "otel_traces_genai_usage_1m"
TRACE_ROLLUP = "otel_traces_trace_rollup"
PROMPT_REGISTRY = "otel_traces_prompts"
SCORES = "otel_traces_scores"
SPAN_KEYS = "otel_traces_span_keys"  # one row per stored span, with its GenAI labels (migration 011)

# Any panel builder (stat, timeseries, table, ...), as `Dashboard.with_panel` takes it.
PanelBuilder = cogbuilder.Builder[dashboard_models.Panel]

CLICKHOUSE = DataSourceRef(type_val=CLICKHOUSE_PLUGIN, uid="${clickhouse}")
PROMETHEUS = DataSourceRef(type_val="prometheus", uid="${prometheus}")

FORMAT_TIMESERIES = 0  # sqlds: long rows (time, label columns, values) become one series per label set
FORMAT_TABLE = 1


@dataclass
class ClickHouseQuery(cogvariants.Dataquery):
    """A raw-SQL target of the ClickHouse plugin (its `CHSqlQuery`)."""

    ref_id: str = "A"
    raw_sql: str = ""
    format: int = FORMAT_TABLE
    query_type: str = "table"
    datasource: DataSourceRef = field(default_factory=lambda: CLICKHOUSE)
    editor_type: str = "sql"
    plugin_version: str = "4.0.0"

    _KEYS: typing.ClassVar = {"refId", "rawSql", "format", "queryType", "datasource", "editorType", "pluginVersion"}

    def to_json(self) -> dict[str, object]:
        return {"refId": self.ref_id, "datasource": self.datasource, "editorType": self.editor_type,
                "format": self.format, "queryType": self.query_type, "rawSql": self.raw_sql,
                "pluginVersion": self.plugin_version}

    @classmethod
    def from_json(cls, data: dict[str, typing.Any]) -> ClickHouseQuery:
        unknown = set(data) - cls._KEYS
        if unknown:
            raise ValueError(f"ClickHouse query {data.get('refId')!r}: unknown keys {sorted(unknown)}")
        if data.get("editorType") != "sql" or not isinstance(data.get("rawSql"), str):
            raise ValueError(f"ClickHouse query {data.get('refId')!r}: needs editorType 'sql' and a rawSql string")
        if data.get("format") not in (FORMAT_TIMESERIES, FORMAT_TABLE):
            raise ValueError(f"ClickHouse query {data.get('refId')!r}: format must be 0 (time series) or 1 (table)")
        ds = DataSourceRef.from_json(data["datasource"])
        return cls(ref_id=data["refId"], raw_sql=data["rawSql"], format=data["format"],
                   query_type=data["queryType"], datasource=ds, editor_type=data["editorType"],
                   plugin_version=data["pluginVersion"])


def register_clickhouse_query() -> None:
    """Make the SDK's `from_json` parse ClickHouse targets with `ClickHouseQuery.from_json`."""
    cogruntime.register_dataquery_variant(cogruntime.DataqueryConfig(
        identifier=CLICKHOUSE_PLUGIN, from_json_hook=ClickHouseQuery.from_json))


class SQL(cogbuilder.Builder[cogvariants.Dataquery]):
    """Builder for a ClickHouse target: `SQL(text)` is a table, `.timeseries()` a time series."""

    def __init__(self, raw_sql: str, ref_id: str = "A") -> None:
        self._internal = ClickHouseQuery(ref_id=ref_id, raw_sql=dedent(raw_sql))

    def build(self) -> cogvariants.Dataquery:
        return self._internal

    def timeseries(self) -> SQL:
        self._internal.format, self._internal.query_type = FORMAT_TIMESERIES, "timeseries"
        return self


def dedent(text: str) -> str:
    """Strip the first line's indentation from every line (source indentation, not SQL's);
    lines spliced in from other strings keep their own."""
    lines = [line.rstrip() for line in text.strip("\n").splitlines()]
    indent = len(lines[0]) - len(lines[0].lstrip()) if lines else 0
    out, anchor = [], 0
    for line in lines:
        if not line or line[:indent].isspace() or indent == 0:
            out.append(line[indent:])
            anchor = len(out[-1]) - len(out[-1].lstrip())
        else:  # spliced in: indent under the line it continues
            out.append(" " * (anchor + 2) + line.lstrip())
    return "\n".join(out)


# ------------------------------------------------------------------------------ variables


def datasource_variable(name: str, label: str, plugin: str, default_uid: str) -> dash.DatasourceVariable:
    return (dash.DatasourceVariable(name).label(label).type(plugin)
            .current(VariableOption(text=default_uid, value=default_uid)))


def sql_variable(name: str, label: str, sql: str) -> dash.QueryVariable:
    """A multi-value filter on the ClickHouse datasource, re-read when the time range changes.
    No custom "All" value: the plugin's `$__conditionalAll` turns "All" into `1=1`."""
    return (dash.QueryVariable(name).label(label)
            .datasource(CLICKHOUSE)
            .query(dedent(sql))
            .multi(True).include_all(True)
            .current(VariableOption(text="All", value="$__all"))
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC))


def clickhouse_datasource_variable() -> dash.DatasourceVariable:
    return datasource_variable("clickhouse", "ClickHouse", CLICKHOUSE_PLUGIN, CLICKHOUSE_UID)


# The model a usage row is about: the requested model, else the one the response named
# (the query API's `model` dimension does the same).
MODEL = "if(RequestModel != '', RequestModel, ResponseModel)"


def genai_variables() -> list[cogbuilder.Builder[typing.Any]]:
    """Service, provider, model and prompt, each read from the usage rollup in the time range."""
    def values_of(expression: str) -> str:
        return (f"SELECT DISTINCT toString({expression}) AS v FROM {USAGE}\n"
                f"WHERE $__timeFilter(Minute) AND v != ''\nORDER BY v")
    return [
        clickhouse_datasource_variable(),
        sql_variable("service", "Service", values_of("ServiceName")),
        sql_variable("provider", "Provider", values_of("Provider")),
        sql_variable("model", "Model", values_of(MODEL)),
        sql_variable("prompt", "Prompt", values_of("PromptName")),
    ]


def usage_filter(*, prompt_required: bool = False) -> str:
    """The WHERE clause of every usage-rollup panel: time range plus the four variables."""
    parts = [
        "$__timeFilter(Minute)",
        "$__conditionalAll(ServiceName IN (${service:singlequote}), $service)",
        "$__conditionalAll(Provider IN (${provider:singlequote}), $provider)",
        f"$__conditionalAll({MODEL} IN (${{model:singlequote}}), $model)",
        "$__conditionalAll(PromptName IN (${prompt:singlequote}), $prompt)",
    ]
    if prompt_required:
        parts.append("PromptName != ''")
    return "\n  AND ".join(parts)


# Buckets no finer than the rollup's minute: a smaller Grafana interval would leave gaps.
BUCKET = "toStartOfInterval(Minute, INTERVAL greatest($__interval_s, 60) second)"
QUANTILES = "quantilesTDigestMerge(0.5, 0.9, 0.95, 0.99)(DurationQuantiles)"


def usage_series(series: str, value: str, alias: str, where: str, having: str = "1") -> str:
    """Usage-rollup SQL for a long-format time series: (time, series, `alias`) rows, one
    series per distinct `series` expression (the panels name lines after that label)."""
    return f"""
        SELECT {BUCKET} AS time, {series} AS series, {value} AS {alias}
        FROM {USAGE}
        WHERE {where}
        GROUP BY time, series
        HAVING {having}
        ORDER BY time, series"""


def usage_total(expression: str, where: str) -> str:
    """Usage-rollup SQL for one row of totals over the time range."""
    return f"SELECT {expression} FROM {USAGE}\nWHERE {where}"


# ------------------------------------------------------------------------------ output


def scored_labels() -> str:
    """`WITH ... labelled`: the live scores of the time range (by the scores' time), each with
    the labels of what it judges (`Service`, `Provider`, `Model`, `Prompt`, `Version`): its
    span's when that span has a model or prompt, else every GenAI span of its trace's, else
    none; one row per score and span labels (a panel keeps one row per score and group it
    shows: `SELECT DISTINCT`). The query API's score rollup
    (query/sql/score_rollup.sql) has the same rule: scores are replaced and deleted at any
    time and arrive before or after their spans, so they are joined when read, never summed
    by a view. Scores and labels meet within their tenant."""
    return f"""
        WITH
        scored AS (
            SELECT Tenant, TraceId, SpanId, ScoreId, Name, NumericValue, StringValue, Timestamp,
                   DataType != 'categorical' AND isFinite(ifNull(NumericValue, nan)) AS has_number
            FROM {SCORES} FINAL
            WHERE $__timeFilter(Timestamp) AND NOT Deleted
        ),
        labels AS (
            SELECT Tenant, TraceId,
                   groupUniqArray((SpanId, toString(ServiceName), toString(Provider),
                                   toString(if(RequestModel != '', RequestModel, ResponseModel)),
                                   toString(PromptName), toString(PromptVersion))) AS spans
            FROM {SPAN_KEYS}
            WHERE (Tenant, TraceId) IN (SELECT Tenant, TraceId FROM scored)
              AND (RequestModel != '' OR ResponseModel != '' OR PromptName != '')
            GROUP BY Tenant, TraceId
        ),
        labelled AS (
            SELECT
                Tenant, TraceId, ScoreId, Name, NumericValue, StringValue, has_number, Timestamp,
                label.2 AS Service, label.3 AS Provider, label.4 AS Model, label.5 AS Prompt, label.6 AS Version
            FROM
            (
                SELECT s.*, arrayJoin(if(s.SpanId != '' AND has(arrayMap(x -> x.1, l.spans), s.SpanId),
                                         arrayFilter(x -> x.1 = s.SpanId, l.spans),
                                         if(notEmpty(l.spans), l.spans, [('', '', '', '', '', '')]))) AS label
                FROM scored AS s
                LEFT JOIN labels AS l ON l.Tenant = s.Tenant AND l.TraceId = s.TraceId
            )
        )"""


def scores_filter() -> str:
    """The variables, applied to the labels of what the scores judge."""
    return "\n  AND ".join([
        "$__conditionalAll(Service IN (${service:singlequote}), $service)",
        "$__conditionalAll(Provider IN (${provider:singlequote}), $provider)",
        "$__conditionalAll(Model IN (${model:singlequote}), $model)",
        "$__conditionalAll(Prompt IN (${prompt:singlequote}), $prompt)",
    ])


def to_dict(builder: cogbuilder.Builder[typing.Any]) -> dict[str, typing.Any]:
    """The dashboard as Grafana's JSON model (a plain dict)."""
    result: dict[str, typing.Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    return result


def dashboard_link(title: str, uid: str, *, include_vars: bool = True) -> dash.DashboardLink:
    return (dash.DashboardLink(title).type(DashboardLinkType.LINK).url(f"/d/{uid}")
            .include_vars(include_vars).keep_time(True).as_dropdown(False).target_blank(False)
            .icon("dashboard").tooltip(title).tags([]))

