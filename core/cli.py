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
