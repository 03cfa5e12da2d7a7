"""Service configuration in the OpenTelemetry Collector's vocabulary.

    receivers: {otlp: {...}}
    processors: {memory_limiter: {...}, batch: {...}}
    exporters: {clickhouse: {...}}
    extensions: {query_api: {...}}
    service:
      extensions: [query_api]
      pipelines:
        traces: {receivers: [otlp], processors: [memory_limiter, batch], exporters: [clickhouse]}
        logs: {receivers: [otlp], processors: [memory_limiter, batch], exporters: [clickhouse]}
        metrics: {receivers: [otlp], processors: [memory_limiter, batch], exporters: [clickhouse]}

Values of the form `${env:NAME}`, `${env:NAME:-default}` or `${NAME}` are replaced from
the environment, as the Collector does. Every error names the key path it concerns,
joined with `::` like the Collector's (`exporters::clickhouse::endpoint: ...`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo

from tracehouse.core.component import ComponentConfig, ComponentID, Kind, Signal
from tracehouse.core.errors import ConfigError
from tracehouse.core.registry import get_factory, known_types

# ---------------------------------------------------------------------------- durations

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """`200ms`, `5s`, `1m`, or a bare number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '200ms' or '5s'")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = _DURATION_RE.match(str(value))
        if not m:
            raise ValueError(f"invalid duration {value!r}: expected a number with a unit (ns, us, ms, s, m, h), e.g. '200ms'")
        seconds = float(m[1]) * _UNIT_SECONDS[m[2]]
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""A config field holding seconds, written as `200ms`, `5s`, ... in YAML."""


def _positive(seconds: float) -> float:
    if seconds <= 0:
        raise ValueError("must be greater than zero")
    return seconds


PositiveDuration = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_positive)]
"""A Duration that must be above zero (timeouts, intervals)."""


# ---------------------------------------------------------------------------- files

_CHECK_FILES = "check_files"


def files_checked(info: ValidationInfo) -> bool:
    """Whether validators should check the files a config names (TLS certificates and keys).

    On unless the config is loaded with `check_files=False`: a config checked away from the
    machine it will run on (a CI job, the Helm chart's tests) names files that are not there."""
    context = info.context
    return bool(context.get(_CHECK_FILES, True)) if isinstance(context, dict) else True


# ---------------------------------------------------------------------------- env vars

_ENV_RE = re.compile(r"\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(value: Any, path: str) -> Any:
    if isinstance(value, dict):
        return {k: _expand_env(v, f"{path}::{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, f"{path}::{i}") for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def replace(m: re.Match[str]) -> str:
        name, default = m[1], m[2]
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(path, f"environment variable {name} is not set and has no default (write ${{env:{name}:-default}})")

    whole = _ENV_RE.fullmatch(value)
    expanded = _ENV_RE.sub(replace, value)
    if whole:
        # A value that is only a reference may expand to a YAML list or map. A scalar stays
        # the text it is: the field's type then decides (`port: ${env:PORT}` becomes an int by
        # validation), so a password of `12345678` or `007` reaches a string field unchanged.
        try:
            loaded = yaml.safe_load(expanded) if expanded != "" else ""
        except yaml.YAMLError:
            return expanded
        return loaded if isinstance(loaded, dict | list) else expanded
    return expanded


# ---------------------------------------------------------------------------- service section


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PipelineConfig(_Strict):
    receivers: list[str]
    processors: list[str] = []
    exporters: list[str]


class LogsConfig(_Strict):
    level: Literal["debug", "info", "warn", "warning", "error"] = "info"
    encoding: Literal["auto", "console", "json"] = "auto"


class TelemetryConfig(_Strict):
    logs: LogsConfig = LogsConfig()


class ServiceSection(_Strict):
    extensions: list[str] = []
    pipelines: dict[str, PipelineConfig] = {}
    telemetry: TelemetryConfig = TelemetryConfig()
    shutdown_timeout: Annotated[float, BeforeValidator(parse_duration)] = 30.0
    # Processes that run the pipelines' enrichment processors (core/workers.py); 0: in-process.
    workers: Annotated[int, Field(ge=0, le=256)] = 0


@dataclass(frozen=True, slots=True)
class ComponentEntry:
    id: ComponentID
    kind: Kind
    config: ComponentConfig


@dataclass(frozen=True)
class Config:
    """A validated configuration: typed component configs and the pipelines wiring them."""

    components: dict[tuple[Kind, ComponentID], ComponentEntry]
    service: ServiceSection
    source: str = "<memory>"

    @property
    def pipelines(self) -> dict[str, PipelineConfig]:
        return self.service.pipelines

    @staticmethod
    def signal_of(pipeline: str) -> Signal:
        """The signal a pipeline named `traces`, `logs/archive`, ... carries."""
        return Signal(pipeline.split("/", 1)[0])

    def entry(self, kind: Kind, cid: ComponentID) -> ComponentEntry:
        return self.components[(kind, cid)]


def _format_validation_error(prefix: str, exc: ValidationError) -> ConfigError:
    problems = []
    for err in exc.errors():
        loc = "::".join(str(p) for p in (prefix, *err["loc"]) if p != "")
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see the component's README for its keys)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        problems.append((loc, msg))
    if len(problems) == 1:
        return ConfigError(*problems[0])
    first = ConfigError(*problems[0])
    detail = "; ".join(f"{loc}: {msg}" for loc, msg in problems)
    return ConfigError(first.path, f"{first.reason} (all problems: {detail})")


def _build_component(kind: Kind, key: str, raw: Any, check_files: bool = True) -> ComponentEntry:
    path = f"{kind.plural}::{key}"
    try:
        cid = ComponentID.parse(key)
    except ValueError as exc:
        raise ConfigError(path, str(exc)) from None
    factory = get_factory(kind, cid.type)
    if factory is None:
        known = ", ".join(known_types(kind)) or "none"
        raise ConfigError(path, f"unknown {kind.value} type {cid.type!r}; known types: {known}")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(path, f"expected a mapping of settings, got {type(raw).__name__}")
    try:
        config = factory.config_type.model_validate(raw, context={_CHECK_FILES: check_files})
    except ValidationError as exc:
        raise _format_validation_error(path, exc) from None
    except ConfigError as exc:
        raise ConfigError(f"{path}::{exc.path}" if exc.path else path, exc.reason) from None
    return ComponentEntry(cid, kind, config)


_TOP_KEYS = {"receivers", "processors", "exporters", "extensions", "service", "connectors"}


def load_config_dict(data: Any, source: str = "<memory>", *, check_files: bool = True) -> Config:
    """Validate a config. `check_files=False` skips the checks of the files it names (TLS
    certificates and keys: present, readable, loadable), for a config checked elsewhere than
    where it runs."""
    if not isinstance(data, dict):
        raise ConfigError("", f"{source}: expected a YAML mapping at the top level")
    data = _expand_env(data, "")
    for key in data:
        if key not in _TOP_KEYS:
            raise ConfigError(str(key), f"unknown top-level key; expected one of {sorted(_TOP_KEYS - {'connectors'})}")
    if data.get("connectors"):
        raise ConfigError("connectors", "connectors are not supported yet")

    components: dict[tuple[Kind, ComponentID], ComponentEntry] = {}
    for kind in (Kind.RECEIVER, Kind.PROCESSOR, Kind.EXPORTER, Kind.EXTENSION):
        section = data.get(kind.plural) or {}
        if not isinstance(section, dict):
            raise ConfigError(kind.plural, "expected a mapping of component id to settings")
        for key, raw in section.items():
            entry = _build_component(kind, str(key), raw, check_files)
            components[(kind, entry.id)] = entry

    if "service" not in data:
        raise ConfigError("service", "required key is missing")
    try:
        service = ServiceSection.model_validate(data["service"] or {})
    except ValidationError as exc:
        raise _format_validation_error("service", exc) from None

    if not service.pipelines and not service.extensions:
        # A service with only extensions is legitimate: the query API alone over a server.
        raise ConfigError("service::pipelines", "at least one pipeline (or an extension such as query_api) is required")
    for name, pipeline in service.pipelines.items():
        ppath = f"service::pipelines::{name}"
        try:
            signal = Config.signal_of(name)
        except ValueError:
            raise ConfigError(ppath, f"unknown signal {name.split('/', 1)[0]!r}: a pipeline is named "
                                     f"{' | '.join(s.value for s in Signal)}, optionally followed by /<name>") from None
        if "/" in name and not name.split("/", 1)[1].strip():
            raise ConfigError(ppath, "empty pipeline name after '/'")
        for kind, ids in ((Kind.RECEIVER, pipeline.receivers), (Kind.PROCESSOR, pipeline.processors),
                          (Kind.EXPORTER, pipeline.exporters)):
            if kind is not Kind.PROCESSOR and not ids:
                raise ConfigError(f"{ppath}::{kind.plural}", f"a pipeline needs at least one {kind.value}")
            seen: set[ComponentID] = set()
            for ref in ids:
                try:
                    cid = ComponentID.parse(ref)
                except ValueError as exc:
                    raise ConfigError(f"{ppath}::{kind.plural}", str(exc)) from None
                if (kind, cid) not in components:
                    raise ConfigError(f"{ppath}::{kind.plural}",
                                      f'references {kind.value} "{cid}" which is not configured')
                if cid in seen:
                    raise ConfigError(f"{ppath}::{kind.plural}", f'{kind.value} "{cid}" is listed twice')
                seen.add(cid)
                _check_signal(f"{ppath}::{kind.plural}", kind, cid, signal)
    for ref in service.extensions:
        try:
            cid = ComponentID.parse(ref)
        except ValueError as exc:
            raise ConfigError("service::extensions", str(exc)) from None
        if (Kind.EXTENSION, cid) not in components:
            raise ConfigError("service::extensions", f'references extension "{cid}" which is not configured')
    _check_beside_others(components, service)
    return Config(components=components, service=service, source=source)


def _check_beside_others(components: dict[tuple[Kind, ComponentID], ComponentEntry], service: ServiceSection) -> None:
    """An extension whose config has `check_service(extension_ids)` is asked whether it may
    run beside the service's other extensions (the ClickHouse HTTP endpoint refuses to run
    beside tenants' authenticators)."""
    ids = [ComponentID.parse(ref) for ref in service.extensions]
    for cid in ids:
        check = getattr(components[(Kind.EXTENSION, cid)].config, "check_service", None)
        if check is None:
            continue
        try:
            check(ids)
        except ValueError as exc:
            raise ConfigError(f"extensions::{cid}", str(exc)) from None


def _check_signal(path: str, kind: Kind, cid: ComponentID, signal: Signal) -> None:
    """A component in a pipeline of a signal its factory does not take is a config error,
    as in the Collector ("telemetry type is not supported")."""
    factory = get_factory(kind, cid.type)
    assert factory is not None  # the component was built above
    if signal not in factory.signals:
        takes = ", ".join(s.value for s in Signal if s in factory.signals)
        raise ConfigError(path, f'{kind.value} "{cid}" does not support {signal.value}: it takes {takes} '
                                f"only; remove it from this pipeline")


def load_config(path: str | Path, *, check_files: bool = True) -> Config:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError("", f"cannot read config file {str(p)!r}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError("", f"{p}: invalid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return load_config_dict(data, source=str(p), check_files=check_files)
