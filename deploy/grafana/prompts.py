"""The "Prompts" dashboard: usage, cost and latency per prompt version over time, a version
comparison table, the scores of each version, and the prompt registry.

Usage comes from the per-minute usage rollup, whose key includes the prompt name and version;
registration times and templates from the registry table (`otel_traces_prompts`); scores from
the scores table joined to the labels of the spans they judge (`common.scored_labels`).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.models.dashboard import DashboardCursorSync, DynamicConfigValue

from tracehouse.grafana.common import (
    OVERVIEW_UID,
    PanelBuilder,
    PIPELINE_UID,
    PROMPT_REGISTRY,
    PROMPTS_UID,
    QUANTILES,
    TAGS,
    USAGE,
    dashboard_link,
    genai_variables,
    scored_labels,
    scores_filter,
    sql_variable,
    usage_filter,
    usage_series,
    usage_total,
)
from tracehouse.grafana.panels import series_panel, stat_panel, table_panel, units, with_overrides

WHERE = (usage_filter(prompt_required=True)
         + "\n  AND $__conditionalAll(PromptVersion IN (${version:singlequote}), $version)")
VERSION = "concat(PromptName, ' @ ', PromptVersion)"


def version_variable() -> dash.QueryVariable:
    return sql_variable("version", "Version", f"""
        SELECT DISTINCT toString(PromptVersion) AS v FROM {USAGE}
        WHERE $__timeFilter(Minute) AND PromptName != ''
          AND $__conditionalAll(PromptName IN (${{prompt:singlequote}}), $prompt)
        ORDER BY v""")


def _by_version(value: str, alias: str, having: str = "1") -> str:
    return usage_series(VERSION, value, alias, WHERE, having)


def total(expression: str) -> str:
    return usage_total(expression, WHERE)


def totals_row() -> list[PanelBuilder]:
    return [
        stat_panel("Prompts used", total("uniqExact(PromptName) AS Prompts"), "short", width=6),
        stat_panel("Versions used", total("uniqExact(PromptName, PromptVersion) AS Versions"), "short", width=6),
        stat_panel("Uses", total("sum(Spans) AS Uses"), "short", width=6,
                   description="Spans linked to a prompt version: model calls and render steps."),
        stat_panel("Cost", total("toFloat64(sum(TotalCostUSD)) AS `Cost (USD)`"), "currencyUSD", decimals=4,
                   width=6),
    ]


def over_time_panels() -> list[PanelBuilder]:
    return [
        series_panel("Uses per prompt version", _by_version("sum(Spans)", "uses"), "short", bars=True, stacked=True),
        series_panel("Cost per prompt version", _by_version("toFloat64(sum(TotalCostUSD))", "cost_usd"),
                     "currencyUSD", bars=True, stacked=True),
        series_panel("Latency p95 per prompt version", _by_version(f"{QUANTILES}[3] / 1e6", "p95_ms",
                                                                   having="sum(Requests) > 0"), "ms"),
        series_panel("Tokens per request per prompt version",
                     _by_version("sum(TotalTokens) / sum(Requests)", "tokens_per_request",
                                 having="sum(Requests) > 0"), "short"),
    ]


def comparison_table() -> PanelBuilder:
    sql = f"""
        SELECT
            u.Prompt AS Prompt,
            u.Version AS Version,
            r.registered AS Registered,
            r.source AS Source,
            u.Uses AS Uses,
            u.Requests AS Requests,
            u.Errors / nullIf(u.Requests, 0) AS `Error rate`,
            u.Tokens / nullIf(u.Requests, 0) AS `Tokens / request`,
            u.Cost AS `Cost (USD)`,
            u.Cost / nullIf(u.Requests, 0) AS `Cost / request (USD)`,
            u.q[1] / 1e6 AS `p50 (ms)`,
            u.q[3] / 1e6 AS `p95 (ms)`,
            u.FirstSeen AS `First seen`,
            u.LastSeen AS `Last seen`
        FROM
        (
            SELECT
                toString(PromptName) AS Prompt,
                toString(PromptVersion) AS Version,
                sum(Spans) AS Uses,
                sum(Requests) AS Requests,
                sum(Errors) AS Errors,
                sum(TotalTokens) AS Tokens,
                toFloat64(sum(TotalCostUSD)) AS Cost,
                {QUANTILES} AS q,
                min(FirstSeen) AS FirstSeen,
                max(LastSeen) AS LastSeen
            FROM {USAGE}
            WHERE {WHERE}
            GROUP BY Prompt, Version
        ) AS u
        LEFT JOIN
        (
            -- A version claimed twice at once keeps the smaller template hash (the registry's rule).
            SELECT Name, Version, min(RegisteredAt) AS registered,
                   argMin(Source, (RegisteredAt, TemplateHash)) AS source
            FROM {PROMPT_REGISTRY}
            GROUP BY Name, Version
        ) AS r ON r.Name = u.Prompt AND r.Version = u.Version
        ORDER BY Prompt, Registered, Version
        LIMIT 500
        -- a version with no registry row (stored before the registry existed) shows no date
        SETTINGS join_use_nulls = 1"""
    panel = table_panel("Prompt versions compared", sql, width=24, height=10,
                        description="One row per prompt version used in the time range. Select versions "
                                    "with the Version variable to compare them side by side.")
    return with_overrides(panel, [*units(("Error rate", "percentunit"), ("Cost (USD)", "currencyUSD"),
                                         ("Cost / request (USD)", "currencyUSD"), ("p50 (ms)", "ms"),
                                         ("p95 (ms)", "ms"))])


# Each score once per prompt version it is about (a whole-trace score on a trace with two
# calls of one version is one score of that version), after the variables' filters.
SCORED_VERSIONS = scored_labels() + f""",
        versions AS (
            SELECT DISTINCT Tenant, TraceId, ScoreId, Name, NumericValue, StringValue, has_number, Timestamp,
                            Prompt, Version
            FROM labelled
            WHERE {scores_filter()}
              AND Prompt != ''
              AND $__conditionalAll(Version IN (${{version:singlequote}}), $version)
        )"""


def scores_table() -> PanelBuilder:
    sql = SCORED_VERSIONS + """
        SELECT
            Prompt,
            Version,
            Name AS Score,
            count() AS Scores,
            if(countIf(has_number) > 0, avgIf(assumeNotNull(NumericValue), has_number), NULL) AS Mean,
            if(countIf(has_number) > 0, minIf(assumeNotNull(NumericValue), has_number), NULL) AS Min,
            if(countIf(has_number) > 0, maxIf(assumeNotNull(NumericValue), has_number), NULL) AS Max,
            arrayStringConcat(arrayMap((label, n) -> concat(label, ': ', toString(n)),
                sumMap(if(StringValue != '', [StringValue], []), if(StringValue != '', [toUInt64(1)], [])).1,
                sumMap(if(StringValue != '', [StringValue], []), if(StringValue != '', [toUInt64(1)], [])).2),
                ', ') AS Labels
        FROM versions
        GROUP BY Prompt, Version, Score
        ORDER BY Prompt, Version, Score
        LIMIT 1000"""
    return table_panel("Scores per prompt version", sql, width=24, height=9, description=(
        "Scores (POST /api/v1/scores, MLflow assessments, gen_ai.evaluation.result events) made in the time "
        "range on the spans and traces that used each version: count, mean / min / max of the numbers (booleans "
        "as 1/0) and the labels. A whole-trace score counts for every version its trace used."))


def scores_over_time() -> PanelBuilder:
    sql = SCORED_VERSIONS + """
        SELECT
            toStartOfInterval(Timestamp, INTERVAL greatest($__interval_s, 60) second) AS time,
            concat(Prompt, ' @ ', Version, ' · ', Name) AS series,
            avgIf(assumeNotNull(NumericValue), has_number) AS mean_score
        FROM versions
        GROUP BY time, series
        HAVING countIf(has_number) > 0
        ORDER BY time, series"""
    return series_panel("Mean score per prompt version", sql, "short", width=24, description=(
        "The mean of the numeric (and boolean, as 1/0) scores per prompt version and score name, by when the "
        "scores were made."))


def registry_table() -> PanelBuilder:
    sql = f"""
        SELECT
            Name AS Prompt,
            Version,
            min(RegisteredAt) AS Registered,
            argMin(Source, (RegisteredAt, TemplateHash)) AS Source,
            argMin(Template, (RegisteredAt, TemplateHash)) AS Template
        FROM {PROMPT_REGISTRY}
        WHERE $__conditionalAll(Name IN (${{prompt:singlequote}}), $prompt)
        GROUP BY Name, Version
        ORDER BY Prompt, Registered, Version
        LIMIT 500"""
    panel = table_panel("Prompt registry", sql, width=24, height=10,
                        description="Every registered version and its template (all time).")
    wrap = DynamicConfigValue(id_val="custom.cellOptions", value={"type": "auto", "wrapText": True})
    return with_overrides(panel, [("Template", [wrap])])


def build() -> dash.Dashboard:
    board = (dash.Dashboard("tracehouse / Prompts").uid(PROMPTS_UID).tags([*TAGS, "prompts"])
             .description("Usage, cost and latency per prompt version, from tracehouse's ClickHouse rollups.")
             .time("now-24h", "now").refresh("5m").tooltip(DashboardCursorSync.CROSSHAIR)
             .variables([*genai_variables(), version_variable()])
             .link(dashboard_link("GenAI overview", OVERVIEW_UID))
             .link(dashboard_link("Pipeline health", PIPELINE_UID)))
    for panel in totals_row():
        board = board.with_panel(panel)
    for panel in over_time_panels():
        board = board.with_panel(panel)
    return (board.with_panel(comparison_table()).with_panel(scores_table()).with_panel(scores_over_time())
            .with_panel(registry_table()))
