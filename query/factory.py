from __future__ import annotations

from typing import Any

from tracehouse.core.component import Component, Kind, Settings, SimpleFactory
from tracehouse.query.config import QueryApiConfig


def _create(settings: Settings, config: QueryApiConfig, _next: Any) -> Component:
    # Imported here so validating a config never loads FastAPI, uvicorn or the ClickHouse client.
    from tracehouse.query.extension import QueryApiExtension

    return QueryApiExtension(settings, config)


factory: SimpleFactory[QueryApiConfig] = SimpleFactory("query_api", Kind.EXTENSION, QueryApiConfig, _create)
