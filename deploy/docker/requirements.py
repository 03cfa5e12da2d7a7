"""Print tracehouse's runtime requirements from pyproject.toml, one per line (the image build's input).

    python requirements.py pyproject.toml                                   # every dependency
    python requirements.py pyproject.toml --without chdb-core --without bpe-openai --without pyarrow

`--without NAME` leaves one distribution out. The image's `sidecar` target uses it: the
sidecar's components (OTLP receivers, memory_limiter, redaction, Kafka exporter, health_check) never
import the embedded ClickHouse engine (chdb-core, which brings pandas, pyarrow and numpy)
nor the tokenizer data (bpe-openai), so that image leaves them out. A name that is no
longer a dependency fails the build instead of being ignored. Standard library only.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from collections.abc import Iterable
from pathlib import Path


def canonical(name: str) -> str:
    """PEP 503 normalised name: `Foo_Bar.baz` and `foo-bar-baz` are one distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return canonical(match[1])


def requirements(pyproject: Path, without: Iterable[str] = ()) -> list[str]:
    dependencies: list[str] = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    left_out = {canonical(name) for name in without}
    unknown = left_out - {requirement_name(d) for d in dependencies}
    if unknown:
        raise SystemExit(f"--without {', '.join(sorted(unknown))}: not a dependency in {pyproject}")
    return [d for d in dependencies if requirement_name(d) not in left_out]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pyproject", type=Path)
    parser.add_argument("--without", action="append", default=[], metavar="NAME",
                        help="leave this distribution out (repeatable)")
    args = parser.parse_args(argv)
    sys.stdout.write("".join(f"{r}\n" for r in requirements(args.pyproject, args.without)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
