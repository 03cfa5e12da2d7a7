"""The "GenAI overview" dashboard: requests, tokens, cost, errors and latency by provider and
model; top prompts by cost; the most expensive traces, linked into the trace view.

Every panel reads a rollup kept by materialized views, never the spans table: the per-minute
usage rollup (`otel_traces_genai_usage_1m`) or the per-trace rollup (`otel_traces_trace_rollup`).
Rollup rows are partial aggregates until merges combine them, so every query re-aggregates
(sum, quantilesTDigestMerge) — the same rule the query API follows.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import piechart
from grafana_foundation_sdk.models.dashboard import DashboardCursorSync, DynamicConfigValue
from grafana_foundation_sdk.models.common import LegendDisplayMode, LegendPlacement
from grafana_foundation_sdk.models.piechart import PieChartLegendValues, PieChartType

from tracehouse.grafana.common import (
    JAEGER_UID,
    MODEL,
    OVERVIEW_UID,
    QUANTILES,
    PanelBuilder,
    PIPELINE_UID,
    PROMPTS_UID,
    SQL,
    TAGS,
    TRACE_ROLLUP,
    USAGE,
    CLICKHOUSE,
    dashboard_link,
    genai_variables,
    usage_series,
    usage_total,
    usage_filter,
)
from tracehouse.grafana.panels import series_panel, stat_panel, table_panel, units, with_overrides

WHERE = usage_filter()
SERIES = f"concat(Provider, ' / ', {MODEL})"


def _by_model(value: str, alias: str) -> str:
    """A time series of `value` per provider/model, over minutes with model calls."""
    return usage_series(SERIES, value, alias, WHERE, having="sum(Requests) > 0")


def total(expression: str) -> str:
    return usage_total(expression, WHERE)


def totals_row() -> list[PanelBuilder]:
    return [
        stat_panel("Requests", total("sum(Requests) AS Requests"), "short",
                   description="Model calls (LLM, embedding and reranker spans) in the time range."),
        stat_panel("Input tokens", total("sum(InputTokens) AS `Input tokens`"), "short"),
        stat_panel("Output tokens", total("sum(OutputTokens) AS `Output tokens`"), "short"),
        stat_panel("Cost", total("toFloat64(sum(TotalCostUSD)) AS `Cost (USD)`"), "currencyUSD", decimals=4,
                   description="Priced from the shipped price table, or the cost the client reported."),
        stat_panel("Error rate", total("sum(Errors) / nullIf(sum(Requests), 0) AS `Error rate`"), "percentunit",
                   decimals=2),
        stat_panel("Unpriced requests", total("sum(UnpricedRequests) AS `Unpriced requests`"), "short",
                   description="Model calls whose model is not in the price table: their cost is left "
                               "empty, never guessed. See the table below for which models."),
    ]


def traffic_panels() -> list[PanelBuilder]:
    return [
        series_panel("Requests by provider / model", _by_model("sum(Requests)", "requests"), "short", bars=True,
                     stacked=True),
        series_panel("Cost by provider / model", _by_model("toFloat64(sum(TotalCostUSD))", "cost_usd"),
                     "currencyUSD", bars=True, stacked=True),
        series_panel("Input tokens by provider / model", _by_model("sum(InputTokens)", "input_tokens"), "short",
                     bars=True, stacked=True),
        series_panel("Output tokens by provider / model", _by_model("sum(OutputTokens)", "output_tokens"), "short",
                     bars=True, stacked=True),
        series_panel("Error rate by provider / model",
                     _by_model("sum(Errors) / sum(Requests)", "error_rate"), "percentunit"),
        series_panel("Latency p95 by provider / model", _by_model(f"{QUANTILES}[3] / 1e6", "p95_ms"), "ms",
                     description="95th percentile of model-call duration (t-digest merged across minutes)."),
    ]


def latency_table() -> PanelBuilder:
    # Aggregates get lower-case names first: an alias equal to a column name (`Requests`)
    # would make ClickHouse read sum(Requests) inside the next aggregate.
    sql = f"""
        SELECT
            provider AS Provider,
            model AS Model,
            requests AS Requests,
            errors AS Errors,
            duration_ns / requests / 1e6 AS `Mean (ms)`,
            q[1] / 1e6 AS `p50 (ms)`,
            q[3] / 1e6 AS `p95 (ms)`,
            q[4] / 1e6 AS `p99 (ms)`
        FROM
        (
            SELECT
                toString(Provider) AS provider,
                toString({MODEL}) AS model,
                sum(Requests) AS requests,
                sum(Errors) AS errors,
                sum(DurationSumNs) AS duration_ns,
                {QUANTILES} AS q
            FROM {USAGE}
            WHERE {WHERE}
            GROUP BY provider, model
            HAVING requests > 0
        )
        ORDER BY Requests DESC, Provider, Model
        LIMIT 50"""
    panel = table_panel("Latency per model (p50 / p95 / p99)", sql,
                        description="Model-call duration; percentiles are t-digest estimates.")
    return with_overrides(panel, [*units(("Mean (ms)", "ms"), ("p50 (ms)", "ms"), ("p95 (ms)", "ms"),
                                         ("p99 (ms)", "ms"))])


def top_prompts_table() -> PanelBuilder:
    sql = f"""
        SELECT
            toString(PromptName) AS Prompt,
            toString(PromptVersion) AS Version,
            sum(Spans) AS Uses,
            sum(Requests) AS Requests,
            sum(TotalTokens) AS Tokens,
            toFloat64(sum(TotalCostUSD)) AS `Cost (USD)`
        FROM {USAGE}
        WHERE {usage_filter(prompt_required=True)}
        GROUP BY Prompt, Version
        ORDER BY `Cost (USD)` DESC, Uses DESC
        LIMIT 10"""
    link = {"title": "Open in the Prompts dashboard", "targetBlank": False,
            "url": f"/d/{PROMPTS_UID}?var-prompt=${{__data.fields.Prompt}}&${{__url_time_range}}"}
    panel = table_panel("Top prompts by cost", sql, description="Per prompt version; uses include spans that "
                        "rendered the prompt without calling a model.")
    return with_overrides(panel, [*units(("Cost (USD)", "currencyUSD")),
                                  ("Prompt", [DynamicConfigValue(id_val="links", value=[link])])])


def expensive_traces_table() -> PanelBuilder:
    # A trace's rollup rows can sit in several parts: pick the traces with a row in range,
    # then re-aggregate all of their rows.
    sql = f"""
        SELECT
            TraceId,
            start AS Start,
            service AS Service,
            root AS `Root span`,
            duration_ms AS `Duration (ms)`,
            spans AS Spans,
            errors AS Errors,
            total_tokens AS Tokens,
            cost AS `Cost (USD)`,
            arrayStringConcat(arraySort(models), ', ') AS Models
        FROM
        (
            SELECT
                TraceId,
                min(Start) AS start,
                max(RootServiceName) AS service,
                max(RootSpanName) AS root,
                dateDiff('millisecond', min(Start), max(End)) AS duration_ms,
                sum(Spans) AS spans,
                sum(ErrorSpans) AS errors,
                ifNull(sum(TotalTokens), 0) AS total_tokens,
                toFloat64(ifNull(sum(TotalCostUSD), 0)) AS cost,
                groupUniqArrayArray(ServiceNames) AS services,
                groupUniqArrayArray(Providers) AS providers,
                groupUniqArrayArray(Models) AS models,
                groupUniqArrayArray(Prompts) AS prompts
            FROM {TRACE_ROLLUP}
            WHERE TraceId IN (SELECT TraceId FROM {TRACE_ROLLUP} WHERE $__timeFilter(Start))
            GROUP BY TraceId
            HAVING cost > 0
              AND $__conditionalAll(hasAny(services, [${{service:singlequote}}]), $service)
              AND $__conditionalAll(hasAny(providers, [${{provider:singlequote}}]), $provider)
              AND $__conditionalAll(hasAny(models, [${{model:singlequote}}]), $model)
              AND $__conditionalAll(hasAny(prompts, [${{prompt:singlequote}}]), $prompt)
        )
        ORDER BY `Cost (USD)` DESC, Start DESC
        LIMIT 20"""
    # The ClickHouse plugin links a `TraceId` column into its trace view by itself (with the
    # datasource's trace settings); this second link opens the same trace through the query
    # service's Jaeger API, for Grafanas without the plugin's trace mode.
    jaeger = {"title": "Open in trace view (Jaeger API)", "url": "",
              "internal": {"datasourceUid": JAEGER_UID, "datasourceName": "tracehouse Jaeger",
                           "query": {"query": "${__value.raw}", "queryType": ""}}}
    panel = table_panel("Most expensive traces", sql, width=24, height=10,
                        description="Click a trace id to open the trace view.")
    return with_overrides(panel, [*units(("Cost (USD)", "currencyUSD"), ("Duration (ms)", "ms")),
                                  ("TraceId", [DynamicConfigValue(id_val="links", value=[jaeger])])])


def token_share_panel() -> PanelBuilder:
    sql = f"""
        SELECT
            sum(TotalTokens) - sum(EstimatedTokens) AS Reported,
            sum(EstimatedTokens) AS Estimated
        FROM {USAGE}
        WHERE {WHERE}"""
    return (piechart.Panel().title("Tokens: reported vs estimated")
            .description("Estimated = counted offline with a tokenizer because the client reported no usage.")
            .datasource(CLICKHOUSE).with_target(SQL(sql)).unit("short").height(9).span(6)
            .pie_type(PieChartType.DONUT)
            .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
            .legend(piechart.PieChartLegendOptions().display_mode(LegendDisplayMode.LIST)
                    .placement(LegendPlacement.RIGHT).show_legend(True)
                    .values([PieChartLegendValues.PERCENT, PieChartLegendValues.VALUE]))
            .hide_from(common_builders.HideSeriesConfig().legend(False).tooltip(False).viz(False)))


def unpriced_table() -> PanelBuilder:
    sql = f"""
        SELECT
            toString(Provider) AS Provider,
            toString({MODEL}) AS Model,
            sum(UnpricedRequests) AS `Unpriced requests`,
            sum(TotalTokens) AS Tokens
        FROM {USAGE}
        WHERE {WHERE}
        GROUP BY Provider, Model
        HAVING `Unpriced requests` > 0
        ORDER BY `Unpriced requests` DESC
        LIMIT 50"""
    return table_panel("Unpriced models", sql, width=6,
                       description="Models missing from the price table; add them to price their calls.")


def build() -> dash.Dashboard:
    board = (dash.Dashboard("tracehouse / GenAI overview").uid(OVERVIEW_UID).tags(TAGS)
             .description("LLM usage, cost, errors and latency from tracehouse's ClickHouse rollups.")
             .time("now-6h", "now").refresh("1m").tooltip(DashboardCursorSync.CROSSHAIR)
             .variables(genai_variables())
             .link(dashboard_link("Prompts", PROMPTS_UID)).link(dashboard_link("Pipeline health", PIPELINE_UID)))
    board = board.with_row(dash.Row("Totals"))
    for panel in totals_row():
        board = board.with_panel(panel)
    board = board.with_row(dash.Row("By provider and model"))
    for panel in traffic_panels():
        board = board.with_panel(panel)
    board = board.with_panel(latency_table()).with_panel(top_prompts_table())
    board = board.with_row(dash.Row("Traces and pricing"))
    board = board.with_panel(expensive_traces_table())
    board = board.with_panel(token_share_panel()).with_panel(unpriced_table())
    return board
