from __future__ import annotations

from typing import Any

from tracehouse.core.component import Component, Kind, Settings, SimpleFactory
from tracehouse.extensions.clickhouse_http.config import ClickHouseHttpConfig


def _create(settings: Settings, config: ClickHouseHttpConfig, _next: Any) -> Component:
    # Imported here so validating a config never loads the engine or the web stack.
    from tracehouse.extensions.clickhouse_http.extension import ClickHouseHttpEndpoint

    return ClickHouseHttpEndpoint(settings, config)


factory: SimpleFactory[ClickHouseHttpConfig] = SimpleFactory("clickhouse_http", Kind.EXTENSION, ClickHouseHttpConfig,
                                                             _create)
