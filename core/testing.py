"""Test doubles shipped with the package, as the Collector ships consumertest.

These stand in for *neighbouring components*, never for Kafka or ClickHouse: tests of
the real engines use the real engines.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from tracehouse.core.component import ComponentID, Kind, Status
from tracehouse.core.pdata import OtlpBatch
from tracehouse.core.telemetry import Telemetry


@dataclass
class TestHost:
    """A Host for running one component outside a Service."""

    __test__ = False  # not a pytest test class
    telemetry: Telemetry = field(default_factory=Telemetry)
    status: dict[str, tuple[Status, str | None]] = field(default_factory=dict)

    def report_status(self, component: ComponentID, kind: Kind, status: Status, error: str | None = None) -> None:
        self.status[f"{kind.value}/{component}"] = (status, error)

    extensions: dict[ComponentID, object] = field(default_factory=dict)

    def statuses(self) -> dict[str, tuple[Status, str | None]]:
        return dict(self.status)

    def extension(self, cid: ComponentID) -> object | None:
        return self.extensions.get(cid)


@dataclass
class Sink:
    """Collects what it consumes, of any signal. Can be told to block (a stalled exporter)
    or to fail."""

    batches: list[Any] = field(default_factory=list)
    error: Exception | None = None
    gate: asyncio.Event | None = None

    @property
    def item_count(self) -> int:
        return sum(b.item_count for b in self.batches)

    @property
    def span_count(self) -> int:
        return self.item_count

    def block(self) -> None:
        self.gate = asyncio.Event()

    def unblock(self) -> None:
        if self.gate is not None:
            self.gate.set()

    async def consume(self, batch: OtlpBatch[Any]) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        self.batches.append(batch)

    async def start(self, host: object) -> None:
        return None

    async def shutdown(self) -> None:
        self.unblock()


TracesSink = Sink  # the name from before logs and metrics
