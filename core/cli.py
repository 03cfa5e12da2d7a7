"""`tracehouse run --config FILE` and `tracehouse validate-config FILE`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from tracehouse.core.config import Config, load_config
from tracehouse.core.errors import ConfigError

DEFAULT_CONFIG = "deploy/config/all-in-one.yaml"


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


def cmd_run(args: argparse.Namespace) -> int:
    from tracehouse.core.logs import configure_logging

    config = _load_or_report(args.config)
    if config is None:
        return 1
    logs = config.service.telemetry.logs
    configure_logging(logs.level, logs.encoding)

    from tracehouse.core.service import Service

    async def main() -> None:
        await Service(config).run()

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tracehouse", description="OpenTelemetry-native GenAI trace pipeline")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the pipelines a config describes")
    run.add_argument("--config", default=DEFAULT_CONFIG, help=f"YAML config (default: {DEFAULT_CONFIG})")
    run.set_defaults(func=cmd_run)
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
    if args.command == "run" and not Path(args.config).exists():
        print(f"tracehouse: config file {args.config!r} not found", file=sys.stderr)
        return 1
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
