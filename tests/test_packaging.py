"""The top-level folders import as one `tracehouse` namespace, for Python and for mypy."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOTS = {"core", "net", "extensions", "ingest", "processors", "sinks", "query", "bench", "deploy/grafana"}


def test_every_package_folder_is_listed_in_pyproject() -> None:
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = setuptools["package-dir"]
    assert {v for v in mapping.values()} == ROOTS
    folders = {
        ".".join((package, *init.parent.relative_to(REPO / root).parts))
        for package, root in mapping.items() for init in (REPO / root).rglob("__init__.py")
    }
    data_folders = {"tracehouse.sinks.clickhouse.migrations", "tracehouse.query.sql", "tracehouse.query.ui"}
    listed = {p for p in setuptools["packages"]} - data_folders
    assert folders == listed, f"missing from pyproject: {folders - listed}; stale: {listed - folders}"


def test_mypy_resolves_the_namespace(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from tracehouse.core.pdata import TraceBatch\n"
        "from tracehouse.ingest.otlp.receiver import OtlpReceiver\n"
        "from tracehouse.sinks.clickhouse.columns import SPAN_KIND\n"
        "count: str = TraceBatch.from_bytes(b'').span_count\n"  # a deliberate type error
    )
    result = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", str(probe)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert "Cannot find implementation" not in result.stdout, result.stdout
    assert 'Incompatible types in assignment (expression has type "int", variable has type "str")' in result.stdout


def test_sql_files_ship_with_the_package() -> None:
    from importlib import resources

    migrations = resources.files("tracehouse.sinks.clickhouse").joinpath("migrations")
    assert any(f.name.endswith(".sql") for f in migrations.iterdir())
    assert resources.files("tracehouse.query").joinpath("sql", "trace_search.sql").is_file()
