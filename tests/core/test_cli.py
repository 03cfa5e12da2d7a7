"""The `tracehouse` command: its version, the built-in config and data directory `run` uses
without --config, and what `run` prints once it serves."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tracehouse.core.cli import client_environment, default_config_path, ready_message, user_data_dir
from tracehouse.core.component import Listener, ListenerRole

REPO = Path(__file__).resolve().parents[2]
PYPROJECT_VERSION = next(line.split('"')[1] for line in (REPO / "pyproject.toml").read_text().splitlines()
                         if line.startswith("version = "))


@pytest.mark.parametrize("argv", [["--version"], ["version"]])
def test_version_prints_the_installed_package_version(argv: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "tracehouse.core.cli", *argv],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"tracehouse {PYPROJECT_VERSION}"


def test_the_built_in_config_is_the_checkouts_all_in_one_file() -> None:
    # package-dir maps deploy/config into the package: one file, nothing to keep in step.
    assert default_config_path().read_bytes() == (REPO / "deploy" / "config" / "all-in-one.yaml").read_bytes()


def test_user_data_dir_per_platform() -> None:
    home = {"HOME": "/home/ada"}
    assert user_data_dir(home, "linux") == Path("/home/ada/.local/share/tracehouse")
    assert user_data_dir({**home, "XDG_DATA_HOME": "/xdg"}, "linux") == Path("/xdg/tracehouse")
    # The XDG spec: a relative XDG_DATA_HOME is invalid and ignored.
    assert user_data_dir({**home, "XDG_DATA_HOME": "rel"}, "linux") == Path("/home/ada/.local/share/tracehouse")
    assert user_data_dir(home, "darwin") == Path("/home/ada/Library/Application Support/tracehouse")
    assert user_data_dir({**home, "LOCALAPPDATA": "C:/Users/ada/AppData/Local"}, "win32") == \
        Path("C:/Users/ada/AppData/Local/tracehouse")


def _listener(role: ListenerRole, port: int) -> Listener:
    return Listener(role, f"http://localhost:{port}", (f"127.0.0.1:{port}", f"[::1]:{port}"), "receiver/x")


def test_the_ready_message_lists_every_listener_and_the_lines_to_paste() -> None:
    listeners = [_listener(ListenerRole.QUERY, 8080), _listener(ListenerRole.OTLP_HTTP, 4318),
                 _listener(ListenerRole.OTLP_GRPC, 4317), _listener(ListenerRole.MLFLOW, 5000)]
    lines = ready_message(listeners, "my.yaml").splitlines()
    assert lines[0] == f"tracehouse {PYPROJECT_VERSION} is ready (my.yaml)"
    assert [line.split("(")[0].split()[-1] for line in lines[1:5]] == [  # OTLP first, then MLflow, then the UI
        "http://localhost:4317", "http://localhost:4318", "http://localhost:5000", "http://localhost:8080"]
    assert "(listening on 127.0.0.1:4317, [::1]:4317)" in lines[1]
    assert lines[5:] == ["Point an app at it:", "  export OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318",
                         "  export OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
                         "  export MLFLOW_TRACKING_URI=http://localhost:5000"]


def test_grpc_alone_is_pasted_as_grpc() -> None:
    assert client_environment([_listener(ListenerRole.OTLP_GRPC, 4317)]) == {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    assert client_environment([_listener(ListenerRole.QUERY, 8080)]) == {}


def test_the_server_loads_no_pydantic_plugins_other_tools_installed() -> None:
    # logfire (a test dependency here, in many users' environments too) registers a pydantic
    # plugin that would instrument every config model and import an OpenTelemetry SDK.
    probe = ("import importlib.metadata as m, sys; "
             "assert any(e.name == 'logfire-plugin' for e in m.entry_points(group='pydantic')); "
             "import tracehouse.core.cli, tracehouse.core.config; "
             "print(sorted({n.split('.')[0] for n in sys.modules} & {'logfire', 'opentelemetry'}))")
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
