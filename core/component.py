"""The component model, after the OpenTelemetry Collector's.

Receivers, processors and exporters (and extensions such as the query API) are built by
factories from typed configs. Every component has `start(host)` and `shutdown()`;
shutdown is safe before start and safe twice, and it drains what the component holds.
Data moves by `await next.consume(batch)`: returning means the spans were durably
handed on, raising means they were not (see tracehouse.core.errors).
"""

from __future__ import annotations

import builtins
import enum
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

import structlog
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from tracehouse.core.pdata import TraceBatch
    from tracehouse.core.telemetry import Telemetry


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
class TracesConsumer(Protocol):
    """Takes batches. A consumer that changes the batches it is given (their spans or their
    enrichment) declares `mutates_data = True`, so a fanout in front of it hands it a
    clone (the Collector's consumer.Capabilities)."""

    async def consume(self, batch: TraceBatch) -> None:
        """Return once the spans are durably handed on; raise a PipelineError if not."""


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
    """Builds one component type from its config (the Collector's component.Factory)."""

    type: str
    kind: Kind
    config_type: builtins.type[ComponentConfig]

    def create(self, settings: Settings, config: Any, next_consumer: TracesConsumer | None) -> Component: ...


@dataclass(frozen=True, slots=True)
class SimpleFactory(Generic[C]):
    """A factory from a config class and a constructor; enough for every component so far."""

    type: str
    kind: Kind
    config_type: builtins.type[C]
    constructor: Any  # Callable[[Settings, C, TracesConsumer | None], Component]

    def create(self, settings: Settings, config: C, next_consumer: TracesConsumer | None) -> Component:
        component: Component = self.constructor(settings, config, next_consumer)
        return component
