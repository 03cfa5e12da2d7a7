"""The component model, after the OpenTelemetry Collector's.

Receivers, processors and exporters (and extensions such as the query API) are built by
factories from typed configs. Every component has `start(host)` and `shutdown()`;
shutdown is safe before start and safe twice, and it drains what the component holds.
Data moves by `await next.consume(batch)`: returning means the data was durably handed
on, raising means it was not (see tracehouse.core.errors). Each pipeline carries one
signal (traces, logs or metrics, `Signal`); a factory says which signals its component
takes, and a component shared by pipelines of several signals (a receiver, an exporter)
is one instance that gets every signal's batches.
"""

from __future__ import annotations

import builtins
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

import structlog
from pydantic import BaseModel, ConfigDict

from tracehouse.core.errors import PermanentError

if TYPE_CHECKING:
    from tracehouse.core.pdata import LogBatch, MetricBatch, OtlpBatch, TraceBatch
    from tracehouse.core.telemetry import Telemetry


class Signal(enum.StrEnum):
    """The kinds of telemetry a pipeline carries, as the Collector names its pipelines."""

    TRACES = "traces"
    LOGS = "logs"
    METRICS = "metrics"

    @property
    def items(self) -> str:
        """What a batch of this signal counts, for messages: spans, log records, data points."""
        return _ITEMS[self]


_ITEMS = {Signal.TRACES: "spans", Signal.LOGS: "log records", Signal.METRICS: "data points"}
ALL_SIGNALS = frozenset(Signal)
TRACES_ONLY = frozenset({Signal.TRACES})


class Kind(enum.StrEnum):
    RECEIVER = "receiver"
    PROCESSOR = "processor"
    EXPORTER = "exporter"
    EXTENSION = "extension"

    @property
    def plural(self) -> str:
        return f"{self.value}s"


_ID_RE = re.compile(r"^(?P<type>[a-z][a-z0-9_]*)(?:/(?P<name>[^/\s]+))?$")


@dataclass(frozen=True, slots=True)
class ComponentID:
    """`type[/name]`, e.g. `otlp` or `clickhouse/archive`."""

    type: str
    name: str = ""

    @classmethod
    def parse(cls, text: str) -> ComponentID:
        m = _ID_RE.match(text.strip())
        if not m:
            raise ValueError(f"invalid component id {text!r}: expected type[/name] with a lower_snake_case type")
        return cls(m["type"], m["name"] or "")

    def __str__(self) -> str:
        return f"{self.type}/{self.name}" if self.name else self.type


class ComponentConfig(BaseModel):
    """Base of every component config: unknown keys are errors, as in the Collector."""

    model_config = ConfigDict(extra="forbid", frozen=True)


C = TypeVar("C", bound=ComponentConfig)


class Status(enum.StrEnum):
    """Component health, after the Collector's componentstatus."""

    STARTING = "starting"
    OK = "ok"
    RECOVERABLE_ERROR = "recoverable_error"
    PERMANENT_ERROR = "permanent_error"
    FATAL_ERROR = "fatal_error"
    STOPPING = "stopping"
    STOPPED = "stopped"


@runtime_checkable
class Consumer(Protocol):
    """Takes batches of any signal (what batch, memory_limiter and the exporters are). A
    consumer that changes the batches it is given (their items or their enrichment)
    declares `mutates_data = True`, so a fanout in front of it hands it a clone (the
    Collector's consumer.Capabilities)."""

    async def consume(self, batch: OtlpBatch) -> None:
        """Return once the data is durably handed on; raise a PipelineError if not."""


@runtime_checkable
class TracesConsumer(Protocol):
    """Takes trace batches (the GenAI processors take nothing else)."""

    async def consume(self, batch: TraceBatch) -> None:
        """Return once the spans are durably handed on; raise a PipelineError if not."""


class LogsConsumer(Protocol):
    async def consume(self, batch: LogBatch) -> None: ...


class MetricsConsumer(Protocol):
    async def consume(self, batch: MetricBatch) -> None: ...


class SignalConsumers:
    """What a receiver is given: the first consumer of each signal that has a pipeline
    (a fanout when several pipelines of the signal share the receiver).

    A receiver serves the signals in `signals` and answers the others as the Collector
    does when a signal has no pipeline (HTTP 404, gRPC UNIMPLEMENTED). It is itself a
    consumer that routes each batch by its signal, for receivers that take one kind only."""

    mutates_data = False  # routes; the pipelines behind it declare their own

    def __init__(self, by_signal: Mapping[Signal, Any]):
        if not by_signal:
            raise ValueError("a receiver needs at least one pipeline")
        self._by_signal: dict[Signal, Any] = dict(by_signal)

    @property
    def signals(self) -> frozenset[Signal]:
        return frozenset(self._by_signal)

    def get(self, signal: Signal) -> Any | None:
        """The consumer of `signal`'s pipelines, or None when it has none."""
        return self._by_signal.get(signal)

    async def consume(self, batch: OtlpBatch) -> None:
        consumer = self._by_signal.get(batch.signal)
        if consumer is None:
            raise PermanentError(f"no {batch.signal.value} pipeline takes this receiver's data")
        await consumer.consume(batch)


def signal_consumers(next_consumer: object) -> SignalConsumers:
    """`next_consumer` as a receiver's SignalConsumers: a plain consumer (a receiver built
    outside a Service, in tests) is a traces pipeline."""
    if isinstance(next_consumer, SignalConsumers):
        return next_consumer
    if next_consumer is None:
        raise ValueError("a receiver needs a next consumer")
    return SignalConsumers({Signal.TRACES: next_consumer})


def mutates_data(consumer: object) -> bool:
    """Whether `consumer` may change what it consumes; undeclared counts as yes (safe)."""
    return bool(getattr(consumer, "mutates_data", True))


class Host(Protocol):
    """What the running service offers its components."""

    telemetry: Telemetry

    def report_status(self, component: ComponentID, kind: Kind, status: Status, error: str | None = None) -> None: ...

    def statuses(self) -> dict[str, tuple[Status, str | None]]: ...

    def extension(self, cid: ComponentID) -> object | None:
        """A running extension by id (authenticators are looked up this way), or None."""


@runtime_checkable
class Component(Protocol):
    async def start(self, host: Host) -> None:
        """Begin work; return quickly (long-running work goes in tasks)."""

    async def shutdown(self) -> None:
        """Stop and drain. Safe before start and safe twice."""


class ListenerRole(enum.StrEnum):
    """What a client does with a listener: `tracehouse run` prints each with its URL."""

    OTLP_GRPC = "OTLP/gRPC"
    OTLP_HTTP = "OTLP/HTTP"
    MLFLOW = "MLflow tracking"
    QUERY = "query API and UI"
    CLICKHOUSE_HTTP = "ClickHouse HTTP (Grafana, clients)"
    HEALTH = "health and metrics"


@dataclass(frozen=True, slots=True)
class Listener:
    """A bound listener: `url` is what a client on this machine dials, `addresses` what was
    bound (127.0.0.1:4318, [::1]:4318)."""

    role: ListenerRole
    url: str
    addresses: tuple[str, ...]
    component: str = ""


@runtime_checkable
class Listens(Protocol):
    """A component that serves clients; `listeners()` once started."""

    def listeners(self) -> list[Listener]: ...


@dataclass(slots=True)
class Settings:
    """Per-instance settings a factory gets beside its config."""

    id: ComponentID
    kind: Kind
    pipeline: str | None = None
    logger: Any = field(default=None)

    def __post_init__(self) -> None:
        if self.logger is None:
            bound: dict[str, Any] = {"otelcol.component.kind": self.kind.value, "otelcol.component.id": str(self.id)}
            if self.pipeline:
                bound["pipeline"] = self.pipeline
            self.logger = structlog.get_logger("tracehouse").bind(**bound)


class Factory(Protocol):
    """Builds one component type from its config (the Collector's component.Factory).

    `signals`: the pipelines the component may sit in. A receiver's next consumer is a
    `SignalConsumers`; a processor's or an exporter's is (or is nothing but) a consumer
    of its pipeline's signal."""

    type: str
    kind: Kind
    config_type: builtins.type[ComponentConfig]
    signals: frozenset[Signal]

    def create(self, settings: Settings, config: Any, next_consumer: Any) -> Component: ...


@dataclass(frozen=True, slots=True)
class SimpleFactory(Generic[C]):
    """A factory from a config class and a constructor; enough for every component so far."""

    type: str
    kind: Kind
    config_type: builtins.type[C]
    constructor: Any  # Callable[[Settings, C, next consumer | None], Component]
    # Extensions sit in no pipeline; the GenAI processors take only traces.
    signals: frozenset[Signal] = TRACES_ONLY
    # A processor that is a pure function of each batch (no state across batches that
    # matters, no host services) may run in `service.workers` processes (core/workers.py).
    runs_in_workers: bool = False

    def create(self, settings: Settings, config: C, next_consumer: Any) -> Component:
        component: Component = self.constructor(settings, config, next_consumer)
        return component
