"""The `debug` exporter: logs what arrives (counts, or every span's name and ids), of any signal."""

from __future__ import annotations

from typing import Any, Literal

from tracehouse.core.component import ALL_SIGNALS, ComponentConfig, Host, Kind, Settings, Signal, SimpleFactory
from tracehouse.core.pdata import OtlpBatch, TraceBatch


class DebugExporterConfig(ComponentConfig):
    verbosity: Literal["basic", "detailed"] = "basic"


class DebugExporter:
    mutates_data = False  # only logs

    def __init__(self, settings: Settings, config: DebugExporterConfig, _next: Any = None):
        self._log = settings.logger
        self._config = config
        self.received_spans = 0
        self.received: dict[Signal, int] = {}  # items by signal

    async def start(self, host: Host) -> None:
        return None

    async def consume(self, batch: OtlpBatch[Any]) -> None:
        self.received[batch.signal] = self.received.get(batch.signal, 0) + batch.item_count
        if not isinstance(batch, TraceBatch):
            self._log.info(batch.signal.value, items=batch.item_count, resources=sum(1 for _ in batch.resources()))
            return
        self.received_spans += batch.span_count
        self._log.info("traces", spans=batch.span_count, resource_spans=sum(1 for _ in batch.resources()))
        if self._config.verbosity == "detailed":
            for _, _, span in batch.iter_spans():
                self._log.info("span", name=span.name, trace_id=span.trace_id.hex(), span_id=span.span_id.hex())

    async def shutdown(self) -> None:
        return None


factory: SimpleFactory[DebugExporterConfig] = SimpleFactory("debug", Kind.EXPORTER, DebugExporterConfig, DebugExporter,
                                                             ALL_SIGNALS)
