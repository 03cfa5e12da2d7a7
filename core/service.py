"""Builds the component graph from a Config and runs it.

As in the Collector: receivers and exporters are shared by every pipeline that names
them, whatever the pipelines' signals (one OTLP receiver serves traces, logs and
metrics; one ClickHouse exporter writes all three), each pipeline gets its own processor
instances, and a fanout sits wherever one component feeds several pipelines of a signal.
A receiver gets a `SignalConsumers`: the pipelines of each signal it feeds. Start goes exporters -> processors -> receivers (each stage
starts before anything can send to it); shutdown goes the other way, so every stage
drains into a consumer that is still running.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import structlog

from tracehouse.core.auth import ServerAuthenticator
from typing import Any

from tracehouse.core.component import (
    Component,
    ComponentID,
    Consumer,
    Kind,
    Listener,
    Listens,
    Settings,
    Signal,
    SignalConsumers,
    Status,
    mutates_data,
)
from tracehouse.core.config import Config
from tracehouse.core.fanout import fanout
from tracehouse.core.pdata import OtlpBatch
from tracehouse.core.registry import get_factory
from tracehouse.core.telemetry import Telemetry
from tracehouse.core.workers import WorkerPool, WorkerStage, offloadable

log = structlog.get_logger("tracehouse.service")

_HEALTHY = {Status.OK, Status.RECOVERABLE_ERROR}


@dataclass
class _Node:
    id: ComponentID
    kind: Kind
    component: Component
    pipeline: str | None = None


@dataclass
class Service:
    """A running set of pipelines. Implements the `Host` protocol for its components."""

    config: Config
    telemetry: Telemetry = field(default_factory=Telemetry)
    _nodes: list[_Node] = field(default_factory=list)
    _status: dict[str, tuple[Status, str | None]] = field(default_factory=dict)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _started: bool = False

    # -- Host ------------------------------------------------------------------------
    def report_status(self, component: ComponentID, kind: Kind, status: Status, error: str | None = None) -> None:
        key = f"{kind.value}/{component}"
        previous = self._status.get(key)
        self._status[key] = (status, error)
        if previous is None or previous[0] != status:
            level = "warning" if status in (Status.RECOVERABLE_ERROR, Status.PERMANENT_ERROR, Status.FATAL_ERROR) else "debug"
            getattr(log, level)("component status", component=key, status=status.value, error=error)

    def statuses(self) -> dict[str, tuple[Status, str | None]]:
        return dict(self._status)

    def extension(self, cid: ComponentID) -> object | None:
        return next((n.component for n in self._nodes if n.kind is Kind.EXTENSION and n.id == cid), None)

    def healthy(self) -> bool:
        """Liveness: false only when something failed fatally."""
        return all(s != Status.FATAL_ERROR for s, _ in self._status.values())

    def ready(self) -> bool:
        """Readiness: every component started and none failed permanently."""
        return self._started and all(s in _HEALTHY for s, _ in self._status.values())

    # -- graph -----------------------------------------------------------------------
    def _create(self, kind: Kind, cid: ComponentID, next_consumer: Any,
                pipeline: str | None = None) -> Component:
        entry = self.config.entry(kind, cid)
        factory = get_factory(kind, cid.type)
        assert factory is not None, f"{kind.value} {cid} passed validation without a factory"
        component = factory.create(Settings(cid, kind, pipeline), entry.config, next_consumer)
        self._nodes.append(_Node(cid, kind, component, pipeline))
        return component

    def _worker_pool(self) -> WorkerPool | None:
        size = self.config.service.workers
        if not size:
            return None
        logs = self.config.service.telemetry.logs
        return WorkerPool(size, logs.level, logs.encoding)

    def _processors(self, name: str, refs: list[str], head: Consumer, chain: list[Consumer],
                    pool: WorkerPool | None) -> Consumer:
        """A pipeline's processors in front of `head`, built last to first. With workers, each
        maximal run of processors that run in workers becomes one `WorkerStage`."""
        i = len(refs)
        while i > 0:
            cid = ComponentID.parse(refs[i - 1])
            if pool is None or not offloadable(cid.type):
                head = _as_consumer(self._create(Kind.PROCESSOR, cid, head, name), Kind.PROCESSOR, cid)
                chain.append(head)
                i -= 1
                continue
            j = i - 1
            while j > 0 and offloadable(ComponentID.parse(refs[j - 1]).type):
                j -= 1
            run = refs[j:i]
            key = pool.add_run(name, [(ref, self.config.entry(Kind.PROCESSOR, ComponentID.parse(ref)).config)
                                      for ref in run])
            sid = ComponentID("workers", "+".join(str(ComponentID.parse(r)) for r in run).replace("/", ":"))
            head = WorkerStage(Settings(sid, Kind.PROCESSOR, name), pool, key, head)
            self._nodes.append(_Node(sid, Kind.PROCESSOR, head, name))
            chain.append(head)
            i = j
        return head

    def build(self) -> None:
        pool = self._worker_pool()
        exporters: dict[ComponentID, Component] = {}
        pipeline_heads: dict[str, Consumer] = {}
        for name, pipeline in self.config.pipelines.items():
            consumers: list[Consumer] = []
            for ref in pipeline.exporters:
                cid = ComponentID.parse(ref)
                if cid not in exporters:
                    exporters[cid] = self._create(Kind.EXPORTER, cid, None)
                consumers.append(_as_consumer(exporters[cid], Kind.EXPORTER, cid))
            head: Consumer = fanout(consumers)
            chain = [head]
            head = self._processors(name, pipeline.processors, head, chain, pool)
            pipeline_heads[name] = _PipelineHead(head, any(mutates_data(c) for c in chain))

        # Per receiver, per signal: the pipelines it feeds.
        receiver_targets: dict[ComponentID, dict[Signal, list[str]]] = {}
        for name, pipeline in self.config.pipelines.items():
            for ref in pipeline.receivers:
                by_signal = receiver_targets.setdefault(ComponentID.parse(ref), {})
                by_signal.setdefault(Config.signal_of(name), []).append(name)
        for cid, targets in receiver_targets.items():
            self._create(Kind.RECEIVER, cid, SignalConsumers(
                {signal: fanout([pipeline_heads[n] for n in names]) for signal, names in targets.items()}))

        for ref in self.config.service.extensions:
            cid = ComponentID.parse(ref)
            self._create(Kind.EXTENSION, cid, None)

    def listeners(self) -> list[Listener]:
        """What the started components serve on, in start order (extensions first)."""
        return [replace(listener, component=f"{node.kind.value}/{node.id}")
                for node in self._ordered(Kind.EXTENSION, Kind.RECEIVER) if isinstance(node.component, Listens)
                for listener in node.component.listeners()]

    def _ordered(self, *kinds: Kind) -> list[_Node]:
        return [n for k in kinds for n in self._nodes if n.kind is k]

    # -- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        if not self._nodes:
            self.build()
        # Extensions first (the query API answers probes while the rest starts), then
        # exporters, processors in reverse pipeline order, receivers last.
        # Authenticators before the extensions that ask them (the query API).
        extensions = sorted(self._ordered(Kind.EXTENSION), key=lambda n: not isinstance(n.component, ServerAuthenticator))
        order = extensions + self._ordered(Kind.EXPORTER)
        order += list(reversed(self._ordered(Kind.PROCESSOR))) + self._ordered(Kind.RECEIVER)
        for node in order:
            self.report_status(node.id, node.kind, Status.STARTING)
        for node in order:
            t0 = time.perf_counter()
            try:
                await node.component.start(self)
            except Exception as exc:
                self.report_status(node.id, node.kind, Status.PERMANENT_ERROR, str(exc))
                log.error("component failed to start", component=f"{node.kind.value}/{node.id}", error=str(exc))
                await self.shutdown()
                raise
            if self._status[f"{node.kind.value}/{node.id}"][0] == Status.STARTING:
                self.report_status(node.id, node.kind, Status.OK)
            log.info("component started", component=f"{node.kind.value}/{node.id}",
                     seconds=round(time.perf_counter() - t0, 3), **({"pipeline": node.pipeline} if node.pipeline else {}))
        self._started = True
        log.info("service started", pipelines=sorted(self.config.pipelines), config=self.config.source)

    async def shutdown(self) -> None:
        """Drain in topological order, within `service.shutdown_timeout`.

        Receivers stop accepting at once, but their in-flight requests may be waiting on a
        batch that only the processors' drain will send: so receivers finish *while*
        processors flush, and exporters close only after both.
        """
        deadline = time.monotonic() + self.config.service.shutdown_timeout
        receivers = [asyncio.create_task(self._stop_node(node, deadline)) for node in self._ordered(Kind.RECEIVER)]
        await asyncio.sleep(0.05)  # let receivers close their listeners first
        for node in self._ordered(Kind.PROCESSOR):
            await self._stop_node(node, deadline)
        await asyncio.gather(*receivers)
        for node in self._ordered(Kind.EXPORTER, Kind.EXTENSION):
            await self._stop_node(node, deadline)
        self._started = False

    async def _stop_node(self, node: _Node, deadline: float) -> None:
        component = f"{node.kind.value}/{node.id}"
        self.report_status(node.id, node.kind, Status.STOPPING)
        try:
            await asyncio.wait_for(node.component.shutdown(), max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            log.error("component did not drain within the shutdown timeout", component=component,
                      timeout_s=self.config.service.shutdown_timeout)
        except Exception as exc:  # keep shutting the rest down
            log.error("component failed to shut down", component=component, error=str(exc))
        self.report_status(node.id, node.kind, Status.STOPPED)

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self, on_started: Callable[[Service], None] | None = None) -> None:
        """Start, serve until SIGTERM/SIGINT, then drain and stop. `on_started` runs once
        everything started (the CLI prints the endpoints)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            await self.start()
            if on_started is not None:
                on_started(self)
            await self._stop.wait()
        finally:
            log.info("draining: stopping receivers, flushing batches, closing exporters")
            await self.shutdown()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            log.info("service stopped")

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info("signal received, shutting down", signal=sig.name)
        self._stop.set()


@dataclass(slots=True)
class _PipelineHead:
    """A pipeline's first consumer, declaring whether anything down the pipeline mutates
    data: a receiver's fanout over several pipelines clones only for those that do."""

    first: Consumer
    mutates_data: bool

    async def consume(self, batch: OtlpBatch[Any]) -> None:
        await self.first.consume(batch)


def _as_consumer(component: Component, kind: Kind, cid: ComponentID) -> Consumer:
    if not isinstance(component, Consumer):
        raise TypeError(f"{kind.value} {cid} cannot consume data")
    return component
