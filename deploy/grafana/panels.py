"""Panel shapes the GenAI dashboards repeat: a stat, a per-series time series, a table."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.models.common import (
    BigValueColorMode,
    BigValueGraphMode,
    FieldTextAlignment,
    GraphDrawStyle,
    LegendDisplayMode,
    LegendPlacement,
    SortOrder,
    StackingMode,
    TooltipDisplayMode,
)
from grafana_foundation_sdk.models.dashboard import DynamicConfigValue

from tracehouse.grafana.common import CLICKHOUSE, SQL

# One series per `series` label of a long-format result: the label alone names it.
SERIES_NAME = "${__field.labels.series}"


def stat_panel(title: str, sql: str, unit: str, *, description: str = "", decimals: int | None = None,
               height: int = 4, width: int = 4) -> stat.Panel:
    panel = (stat.Panel().title(title).description(description).datasource(CLICKHOUSE)
             .with_target(SQL(sql)).unit(unit).height(height).span(width)
             .graph_mode(BigValueGraphMode.NONE).color_mode(BigValueColorMode.VALUE)
             .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False)))
    if decimals is not None:
        panel = panel.decimals(decimals)
    return panel


def series_panel(title: str, sql: str, unit: str, *, description: str = "", stacked: bool = False,
                 height: int = 8, width: int = 12, bars: bool = False) -> timeseries.Panel:
    """A time series from a long-format query (time, series, value): one line per `series`."""
    panel = (timeseries.Panel().title(title).description(description).datasource(CLICKHOUSE)
             .with_target(SQL(sql).timeseries()).unit(unit).height(height).span(width)
             .display_name(SERIES_NAME).fill_opacity(10 if not bars else 80)
             .draw_style(GraphDrawStyle.BARS if bars else GraphDrawStyle.LINE)
             .legend(common_builders.VizLegendOptions().display_mode(LegendDisplayMode.TABLE)
                     .placement(LegendPlacement.RIGHT).show_legend(True).calcs(["sum", "max"]))
             .tooltip(common_builders.VizTooltipOptions().mode(TooltipDisplayMode.MULTI).sort(SortOrder.DESCENDING)))
    if stacked:
        panel = panel.stacking(common_builders.StackingConfig().mode(StackingMode.NORMAL))
    return panel


def table_panel(title: str, sql: str, *, description: str = "", height: int = 9, width: int = 12) -> table.Panel:
    return (table.Panel().title(title).description(description).datasource(CLICKHOUSE)
            .with_target(SQL(sql)).height(height).span(width)
            .align(FieldTextAlignment.AUTO).inspect(False))


def units(*pairs: tuple[str, str]) -> list[tuple[str, list[DynamicConfigValue]]]:
    """`(column, unit)` pairs as field overrides."""
    return [(name, [DynamicConfigValue(id_val="unit", value=unit)]) for name, unit in pairs]


def with_overrides(panel: table.Panel, overrides: list[tuple[str, list[DynamicConfigValue]]]) -> table.Panel:
    for name, properties in overrides:
        panel = panel.override_by_name(name, properties)
    return panel
