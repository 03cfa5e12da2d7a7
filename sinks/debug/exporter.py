"""The `debug` exporter: logs what arrives (counts, or every span's name and ids)."""

from __future__ import annotations

from typing import Any, Literal

from tracehouse.core.component import ComponentConfig, Host, Kind, Settings, SimpleFactory
from tracehouse.core.pdata import TraceBatch


class DebugExporterConfig(ComponentConfig):
    verbosity: Literal["basic", "detailed"] = "basic"


class DebugExporter:
    mutates_data = False  # only logs

    def __init__(self, settings: Settings, config: DebugExporterConfig, _next: Any = None):
        self._log = settings.logger
        self._config = config
        self.received_spans = 0

    async def start(self, host: Host) -> None:
        return None

    async def consume(self, batch: TraceBatch) -> None:
        self.received_spans += batch.span_count
        self._log.info("traces", spans=batch.span_count, resource_spans=len(batch.request.resource_spans))
        if self._config.verbosity == "detailed":
            for _, _, span in batch.iter_spans():
                self._log.info("span", name=span.name, trace_id=span.trace_id.hex(), span_id=span.span_id.hex())

    async def shutdown(self) -> None:
        return None


factory: SimpleFactory[DebugExporterConfig] = SimpleFactory("debug", Kind.EXPORTER, DebugExporterConfig, DebugExporter)
