"""Write (or check) the provisioned dashboards: `python -m tracehouse.grafana [--check] [--out DIR]`.

`make dashboards` writes them; the test suite runs the same comparison as `--check`, so a
change to a dashboard's code lands together with its regenerated JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from grafana_foundation_sdk.builders.dashboard import Dashboard

from tracehouse.grafana import genai_overview, pipeline_health, prompts
from tracehouse.grafana.common import register_clickhouse_query, to_dict

# File name (under deploy/grafana/dashboards/) -> the dashboard's builder.
DASHBOARDS: dict[str, Callable[[], Dashboard]] = {
    "genai-overview.json": genai_overview.build,
    "prompts.json": prompts.build,
    "pipeline-health.json": pipeline_health.build,
}

DEFAULT_OUT = Path("deploy/grafana/dashboards")


def render(build: Callable[[], Dashboard]) -> str:
    """The dashboard as it is committed: Grafana's JSON model, stable key order, final newline."""
    return json.dumps(to_dict(build()), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def rendered() -> dict[str, str]:
    register_clickhouse_query()
    return {name: render(build) for name, build in DASHBOARDS.items()}


def stale(out: Path) -> list[str]:
    """Names of committed dashboards that differ from what the code builds (or are missing)."""
    return [name for name, text in rendered().items()
            if not (out / name).is_file() or (out / name).read_text() != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tracehouse.grafana", description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="dashboards folder (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="only report dashboards that need regenerating")
    args = parser.parse_args(argv)
    if args.check:
        names = stale(args.out)
        for name in names:
            print(f"{args.out / name} is out of date: run `make dashboards`", file=sys.stderr)
        return 1 if names else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in rendered().items():
        (args.out / name).write_text(text)
        print(f"wrote {args.out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
