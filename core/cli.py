"""`tracehouse run [--config FILE]`, `tracehouse validate-config FILE`, `tracehouse keys create`,
`tracehouse version`.

Without `--config`, `run` starts the all-in-one from the config shipped in the package (the
very file deploy/config/all-in-one.yaml, as package data) with its ClickHouse data in the
user's data directory, so an installed `tracehouse` runs from any directory; `make run`
passes the checkout's file and keeps ./data.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from importlib import metadata, resources
from pathlib import Path
from typing import TYPE_CHECKING, Literal

# Before the first pydantic model is defined: plugins other tools register (logfire's
# instruments every model and imports an OpenTelemetry SDK, +27 MB idle) have no place in a
# server that validates only its own config. Worker processes inherit it.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

from tracehouse.core.component import Listener, ListenerRole  # noqa: E402
from tracehouse.core.config import Config, load_config  # noqa: E402
from tracehouse.core.errors import ConfigError  # noqa: E402

if TYPE_CHECKING:
    from tracehouse.core.service import Service

DEFAULT_CONFIG_PACKAGE = "tracehouse.configs"
DEFAULT_CONFIG_NAME = "all-in-one.yaml"


def version() -> str:
    try:
        return metadata.version("tracehouse")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def default_config_path() -> Path:
    """The all-in-one config shipped in the package (a real file in a wheel or an editable
    install, not inside a zip)."""
    return Path(str(resources.files(DEFAULT_CONFIG_PACKAGE).joinpath(DEFAULT_CONFIG_NAME)))


def user_data_dir(env: os._Environ[str] | dict[str, str] = os.environ, platform: str = sys.platform) -> Path:
    """Where the default config keeps its data: $XDG_DATA_HOME/tracehouse (~/.local/share/tracehouse),
    ~/Library/Application Support/tracehouse on macOS, %LOCALAPPDATA%\\tracehouse on Windows."""
    home = Path(env.get("HOME") or Path.home())
    if platform == "win32":
        base = Path(env.get("LOCALAPPDATA") or home / "AppData" / "Local")
    elif platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        xdg = env.get("XDG_DATA_HOME", "")
        # The XDG spec: a relative value is invalid and is ignored.
        base = Path(xdg) if os.path.isabs(xdg) else home / ".local" / "share"
    return base / "tracehouse"


def _load_or_report(path: str, *, check_files: bool = True) -> Config | None:
    try:
        return load_config(path, check_files=check_files)
    except ConfigError as exc:
        print(f"invalid config {path}: {exc}", file=sys.stderr)
        return None


def cmd_validate(args: argparse.Namespace) -> int:
    config = _load_or_report(args.config, check_files=not args.skip_file_checks)
    if config is None:
        return 1
    pipelines = ", ".join(
        f"{name} ({' -> '.join([*p.receivers, *p.processors, *p.exporters])})" for name, p in config.pipelines.items()
    )
    extensions = ", ".join(config.service.extensions)
    parts = [f"pipelines {pipelines}" if pipelines else "no pipelines", f"extensions {extensions}" if extensions else ""]
    print(f"config OK: {args.config}: {'; '.join(p for p in parts if p)}")
    return 0


def _use_default_config() -> str:
    """The packaged config's path, its ClickHouse data pointed at the user's data directory
    (the config reads TRACEHOUSE_CLICKHOUSE_DSN, ./data by default; a value set wins)."""
    if "TRACEHOUSE_CLICKHOUSE_DSN" not in os.environ:
        data = user_data_dir() / "clickhouse"
        data.mkdir(parents=True, exist_ok=True)
        os.environ["TRACEHOUSE_CLICKHOUSE_DSN"] = f"chdb://{data}"
    return str(default_config_path())


def client_environment(listeners: list[Listener]) -> dict[str, str]:
    """The variables that point an app at these listeners: OTLP/HTTP when served (every SDK
    speaks it), else OTLP/gRPC; MLflow's tracking URI."""
    by_role = {listener.role: listener.url for listener in listeners}
    env: dict[str, str] = {}
    if ListenerRole.OTLP_HTTP in by_role:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = by_role[ListenerRole.OTLP_HTTP]
        env["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
    elif ListenerRole.OTLP_GRPC in by_role:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = by_role[ListenerRole.OTLP_GRPC]
        env["OTEL_EXPORTER_OTLP_PROTOCOL"] = "grpc"
    if ListenerRole.MLFLOW in by_role:
        env["MLFLOW_TRACKING_URI"] = by_role[ListenerRole.MLFLOW]
    return env


def ready_message(listeners: list[Listener], config: str) -> str:
    """What `tracehouse run` prints on a terminal once it serves: each listener's URL and the
    lines to paste into an app's shell."""
    order = list(ListenerRole)
    listeners = sorted(listeners, key=lambda listener: order.index(listener.role))
    width = max((len(listener.role.value) for listener in listeners), default=0)
    lines = [f"tracehouse {version()} is ready ({config})"]
    for listener in listeners:
        lines.append(f"  {listener.role.value:<{width}}  {listener.url}   (listening on {', '.join(listener.addresses)})")
    env = client_environment(listeners)
    if env:
        lines.append("Point an app at it:")
        lines.extend(f"  export {name}={value}" for name, value in env.items())
    return "\n".join(lines)


def _announce(encoding: Literal["console", "json"], config: str) -> Callable[[Service], None]:
    def announce(service: Service) -> None:
        listeners = service.listeners()
        if encoding == "console":
            print(ready_message(listeners, config), file=sys.stderr, flush=True)
        else:  # one JSON record like every other line, for log shippers
            import structlog

            structlog.get_logger("tracehouse").info(
                "ready", config=config, listeners={f"{x.component} {x.role.value}": x.url for x in listeners},
                env=client_environment(listeners))

    return announce


def cmd_run(args: argparse.Namespace) -> int:
    from tracehouse.core.logs import configure_logging

    path = args.config if args.config is not None else _use_default_config()
    config = _load_or_report(path)
    if config is None:
        return 1
    logs = config.service.telemetry.logs
    encoding = configure_logging(logs.level, logs.encoding)

    from tracehouse.core.service import Service

    source = path if args.config is not None else (
        f"built-in {DEFAULT_CONFIG_NAME}, data in {os.environ['TRACEHOUSE_CLICKHOUSE_DSN']}")

    async def main() -> None:
        await Service(config).run(on_started=_announce(encoding, source))

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        # Start-up failures (a port in use, an unreachable ClickHouse) were logged with
        # their component; end with one plain line and a non-zero status.
        print(f"tracehouse: failed: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    """Mint an API key: the key once on stdout, and the key file entry (its digest only)."""
    from tracehouse.extensions.bearertokenauth.keys import TENANT_RE, digest, new_key

    if not TENANT_RE.match(args.tenant):
        print(f"tracehouse: tenant {args.tenant!r} must be 1-63 lower-case letters, digits, '-' or '_'",
              file=sys.stderr)
        return 2
    key = new_key()
    name = args.name or f"{args.tenant}-{args.kind}"
    print(key)
    print(f"# Shown once: give the key above to the client. Add this to the key file, under `keys:`\n"
          f"  - {{name: {name}, tenant: {args.tenant}, kind: {args.kind}, sha256: {digest(key)}}}",
          file=sys.stderr)
    return 0


def cmd_inject_webhook(args: argparse.Namespace) -> int:
    """Serve the sidecar injection webhook (tracehouse.core.inject) until SIGTERM."""
    from tracehouse.core.inject.patch import Template
    from tracehouse.core.inject.server import serve
    from tracehouse.core.logs import configure_logging

    configure_logging("info", "auto")
    try:
        template = Template.load(args.template)
    except (OSError, ValueError) as exc:
        print(f"tracehouse: injection template {args.template}: {exc}", file=sys.stderr)
        return 1
    try:
        asyncio.run(serve(template, args.listen, args.tls_cert, args.tls_key))
    except Exception as exc:
        print(f"tracehouse: failed: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_version(args: argparse.Namespace) -> int:
    print(f"tracehouse {version()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tracehouse", description="OpenTelemetry-native GenAI trace pipeline")
    parser.add_argument("--version", action="version", version=f"tracehouse {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the pipelines a config describes")
    run.add_argument("--config", default=None,
                     help=f"YAML config (default: the built-in {DEFAULT_CONFIG_NAME}, its data in "
                          f"{user_data_dir()})")
    run.set_defaults(func=cmd_run)
    sub.add_parser("version", help="print the version").set_defaults(func=cmd_version)
    validate = sub.add_parser("validate-config", help="check a config and exit (0 = valid)")
    validate.add_argument("config", help="YAML config file")
    validate.add_argument("--skip-file-checks", action="store_true",
                          help="do not check the files the config names (TLS certificates and keys): for a config "
                               "checked away from the machine it runs on")
    validate.set_defaults(func=cmd_validate)
    keys = sub.add_parser("keys", help="API keys for the bearertokenauth extension")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="mint a key: the key on stdout, its key file entry on stderr")
    create.add_argument("--tenant", required=True, help="the tenant the key's data belongs to (`default`: no tenant)")
    create.add_argument("--kind", choices=["ingest", "read", "full"], default="ingest",
                        help="ingest: send telemetry; read: the query API and UI; full: both, and delete")
    create.add_argument("--name", help="a name for logs (default: <tenant>-<kind>)")
    create.set_defaults(func=cmd_keys_create)
    inject = sub.add_parser("inject-webhook", help="serve the Kubernetes sidecar injection webhook (HTTPS)")
    inject.add_argument("--template", required=True, help="what to inject (the chart's injector ConfigMap)")
    inject.add_argument("--listen", default="0.0.0.0:8443", help="host:port (default 0.0.0.0:8443)")
    inject.add_argument("--tls-cert", required=True, help="the serving certificate (PEM), reloaded when it changes")
    inject.add_argument("--tls-key", required=True, help="its private key (PEM)")
    inject.set_defaults(func=cmd_inject_webhook)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run" and args.config is not None and not Path(args.config).exists():
        print(f"tracehouse: config file {args.config!r} not found", file=sys.stderr)
        return 1
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
