"""The top-level folders import as one `tracehouse` namespace, for Python and for mypy; the sdist
and the wheel carry what the package needs, and the wheel installed alone runs the all-in-one."""

from __future__ import annotations

import os
import shutil
import signal
import site
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import clickhouse_connect
import httpx
import pytest

from otlp_fixtures import FIXTURES
from ports import free_port
from tracehouse.bench.processes import http_ok, wait_ready
from tracehouse.core.pdata import TraceBatch

REPO = Path(__file__).resolve().parents[1]
ROOTS = {"core", "net", "extensions", "ingest", "processors", "sinks", "query", "bench", "deploy/grafana"}
# Folders of data only (no __init__.py): SQL files, the trace explorer's files, the default config.
DATA_FOLDERS = {"tracehouse.sinks.clickhouse.migrations", "tracehouse.query.sql", "tracehouse.query.ui",
                "tracehouse.configs"}


def test_every_package_folder_is_listed_in_pyproject() -> None:
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = setuptools["package-dir"]
    assert {v for v in mapping.values()} == ROOTS | {"deploy/config"}
    folders = {
        ".".join((package, *init.parent.relative_to(REPO / root).parts))
        for package, root in mapping.items() if root in ROOTS for init in (REPO / root).rglob("__init__.py")
    }
    listed = {p for p in setuptools["packages"]} - DATA_FOLDERS
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


# -- the built distributions -------------------------------------------------------------------
# The sdist is built from a copy of what the package is made of, and the wheel from the sdist
# (what `python -m build` does): a file the sdist forgets is missing from the wheel too. Then the
# wheel is installed into a fresh venv and run from a directory outside the checkout.


SOURCE_FILES = ["pyproject.toml", "setup.py", "README.md"]


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(sdist, wheel), built offline with this venv's setuptools (--no-isolation)."""
    root = tmp_path_factory.mktemp("dist")
    src = root / "src"
    src.mkdir()
    for name in SOURCE_FILES:
        shutil.copy(REPO / name, src / name)
    for folder in ROOTS | {"deploy/config"}:
        shutil.copytree(REPO / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = root / "out"
    result = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(src)],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (sdist,), (wheel,) = list(out.glob("*.tar.gz")), list(out.glob("*.whl"))
    return sdist, wheel


def _checkout_files(folder: str, pattern: str) -> set[str]:
    return {p.name for p in (REPO / folder).glob(pattern)}


def test_the_wheel_ships_the_config_ui_sql_and_migrations_and_no_tests(dists: tuple[Path, Path]) -> None:
    _, wheel = dists
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        config = zf.read("tracehouse/configs/all-in-one.yaml")
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        metadata_text = zf.read(f"{dist_info}/METADATA").decode()
        entry_points = zf.read(f"{dist_info}/entry_points.txt").decode()

    def shipped(folder: str, suffix: str) -> set[str]:
        return {n.rsplit("/", 1)[1] for n in names if n.startswith(folder + "/") and n.endswith(suffix)}

    assert config == (REPO / "deploy" / "config" / "all-in-one.yaml").read_bytes()
    assert [n for n in names if n.startswith("tracehouse/configs/")] == ["tracehouse/configs/all-in-one.yaml"]
    assert shipped("tracehouse/query/ui", "") == _checkout_files("query/ui", "*.*") - {"README.md"}
    assert shipped("tracehouse/query/sql", ".sql") == _checkout_files("query/sql", "*.sql")
    assert shipped("tracehouse/sinks/clickhouse/migrations", ".sql") == \
        _checkout_files("sinks/clickhouse/migrations", "*.sql")
    assert "tracehouse/core/py.typed" in names
    # The C module the exporter reads span columns with is compiled into the wheel.
    assert [n for n in names if n.startswith("tracehouse/core/_otlpwire.") and n.endswith(".so")]
    # Prices come from the genai-prices dependency's own wheel; the BPE data from bpe-openai's.
    assert "Requires-Dist: genai-prices" in metadata_text and "Requires-Dist: bpe-openai" in metadata_text
    assert "tracehouse = tracehouse.core.cli:main" in entry_points
    assert not [n for n in names if "tests/" in n or n.rsplit("/", 1)[-1].startswith(("test_", "conftest"))]
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_the_sdist_carries_the_same_data(dists: tuple[Path, Path]) -> None:
    sdist, _ = dists
    with tarfile.open(sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    assert {"pyproject.toml", "README.md", "deploy/config/all-in-one.yaml", "query/ui/index.html",
            "query/sql/trace_search.sql", "setup.py", "core/_otlpwire.c"} <= names
    assert not [n for n in names if n.startswith("tests/")]


@pytest.fixture(scope="module")
def installed(dists: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (no system site-packages) with the wheel installed by pip, its entry point
    included. Its dependencies are not downloaded again: a .pth line puts this test venv's
    site-packages after the new venv's own (a plain path line, so this venv's editable
    tracehouse, itself a .pth there, is not picked up)."""
    venv = tmp_path_factory.mktemp("wheel-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    own_site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                              capture_output=True, text=True, check=True).stdout.strip()
    (Path(own_site) / "test-venv-deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    result = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                             "--no-index", "--disable-pip-version-check", str(dists[1])],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return venv


def _outside_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRACEHOUSE_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / "xdg"))
    return env


def test_the_installed_package_comes_from_the_wheel(installed: Path, tmp_path: Path) -> None:
    probe = ("import tracehouse, tracehouse.core.cli as c; print(list(tracehouse.__path__)); print(c.__file__); "
             "print(c.default_config_path())")
    result = subprocess.run([str(installed / "bin" / "python"), "-c", probe], capture_output=True, text=True,
                            cwd=tmp_path, env=_outside_env(tmp_path), timeout=60)
    assert result.returncode == 0, result.stderr
    for line in result.stdout.splitlines():
        assert str(installed) in line and str(REPO) not in line, line


def test_the_installed_command_prints_its_version(installed: Path, tmp_path: Path) -> None:
    result = subprocess.run([str(installed / "bin" / "tracehouse"), "--version"], capture_output=True, text=True,
                            cwd=tmp_path, env=_outside_env(tmp_path), timeout=60)
    assert result.returncode == 0, result.stderr
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert result.stdout.strip() == f"tracehouse {version}"


@pytest.fixture
def running(installed: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, int], Path]]:
    """`tracehouse run` with no --config, from an empty directory outside the checkout."""
    ports = {name: free_port() for name in ("OTLP_GRPC", "OTLP_HTTP", "MLFLOW", "QUERY", "CLICKHOUSE_HTTP")}
    env = _outside_env(tmp_path) | {f"TRACEHOUSE_{name}_PORT": str(port) for name, port in ports.items()}
    env["TRACEHOUSE_LOG_FORMAT"] = "console"  # what a person at a terminal sees
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(installed / "bin" / "tracehouse"), "run"], cwd=cwd, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_ready(proc, lambda: http_ok(f"http://127.0.0.1:{ports['QUERY']}/readyz"), timeout=60,
                   what="tracehouse run", log_tail=lambda: log.read_text()[-3000:], poll_s=0.2)
        yield proc, ports, log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def test_the_installed_command_runs_the_all_in_one_from_any_directory(
        running: tuple[subprocess.Popen[bytes], dict[str, int], Path], tmp_path: Path) -> None:
    proc, ports, log = running
    body = (FIXTURES / "otel-genai-openai-v2" / "http-protobuf.pb").read_bytes()
    sent = httpx.post(f"http://localhost:{ports['OTLP_HTTP']}/v1/traces", content=body,
                      headers={"content-type": "application/x-protobuf"}, timeout=30)
    assert sent.status_code == 200, sent.text
    page = httpx.get(f"http://localhost:{ports['QUERY']}/api/v1/traces", timeout=30,
                     params={"start": "2020-01-01T00:00:00Z", "service": "otel-openai-v2-app"})
    assert page.status_code == 200, page.text
    assert len(page.json()["traces"]) == 4

    # The UI, the MLflow tracking API and the ClickHouse-compatible endpoint are served too.
    ui = httpx.get(f"http://localhost:{ports['QUERY']}/", timeout=30)
    assert ui.status_code == 200 and "<html" in ui.text.lower()
    experiments = httpx.post(f"http://localhost:{ports['MLFLOW']}/api/2.0/mlflow/experiments/search",
                             json={"max_results": 10}, timeout=30)
    assert experiments.status_code == 200, experiments.text
    clickhouse = clickhouse_connect.get_client(host="localhost", port=ports["CLICKHOUSE_HTTP"], interface="http")
    try:
        stored = clickhouse.query("SELECT count() FROM tracehouse.otel_traces "
                                  "WHERE ServiceName = 'otel-openai-v2-app'").result_rows[0][0]
    finally:
        clickhouse.close()
    assert stored == TraceBatch.from_bytes(body).span_count

    printed = log.read_text()
    for role, port in (("OTLP/gRPC", ports["OTLP_GRPC"]), ("OTLP/HTTP", ports["OTLP_HTTP"]),
                       ("MLflow tracking", ports["MLFLOW"]), ("query API and UI", ports["QUERY"]),
                       ("ClickHouse HTTP", ports["CLICKHOUSE_HTTP"])):
        assert any(line.split()[:len(role.split())] == role.split() and f"http://localhost:{port}" in line
                   for line in printed.splitlines()), (role, printed[-2000:])
    assert f"export OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:{ports['OTLP_HTTP']}" in printed
    assert f"export MLFLOW_TRACKING_URI=http://localhost:{ports['MLFLOW']}" in printed
    # The data went to the user's data directory, nothing into the working directory.
    assert (tmp_path / "xdg" / "tracehouse" / "clickhouse").is_dir()
    assert not list((tmp_path / "elsewhere").iterdir())

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
