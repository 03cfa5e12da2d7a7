from __future__ import annotations

from typing import Any

from tracehouse.core.component import ALL_SIGNALS, Component, Kind, Settings, SimpleFactory
from tracehouse.sinks.clickhouse.config import ClickHouseExporterConfig


def _create(settings: Settings, config: ClickHouseExporterConfig, next_consumer: Any) -> Component:
    # Imported here so validating a config never loads the ClickHouse client or engine.
    from tracehouse.sinks.clickhouse.exporter import ClickHouseExporter

    return ClickHouseExporter(settings, config, next_consumer)


factory: SimpleFactory[ClickHouseExporterConfig] = SimpleFactory("clickhouse", Kind.EXPORTER, ClickHouseExporterConfig, _create,
                                                     ALL_SIGNALS)
