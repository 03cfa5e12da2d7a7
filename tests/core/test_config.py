"""Config loading: the Collector's vocabulary, env substitution, errors that name the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tracehouse.core.component import ComponentID, Kind
from tracehouse.core.config import load_config, load_config_dict, parse_duration
from tracehouse.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
GOOD = {
    "receivers": {"otlp": {"protocols": {"http": {"endpoint": "localhost:4318"}}}},
    "processors": {"batch": {"timeout": "50ms"}},
    "exporters": {"debug": None},
    "service": {"pipelines": {"traces": {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["debug"]}}},
}


def with_changes(**sections: object) -> dict:
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    data.update(sections)
    return data


def error_for(data: dict) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        load_config_dict(data)
    return err.value


def test_a_good_config_loads_typed_component_configs() -> None:
    config = load_config_dict(GOOD)
    batch = config.entry(Kind.PROCESSOR, ComponentID("batch")).config
    assert batch.timeout == pytest.approx(0.05)  # type: ignore[attr-defined]
    otlp = config.entry(Kind.RECEIVER, ComponentID("otlp")).config
    assert otlp.protocols.grpc is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(("change", "path", "words"), [
    ({"exporters": {"debug": {"verbosty": "basic"}}}, "exporters::debug::verbosty", "unknown key"),
    ({"processors": {"batch": {"send_batch_size": "lots"}}}, "processors::batch::send_batch_size", "integer"),
    ({"processors": {"batch": {"timeout": "5 parsecs"}}}, "processors::batch::timeout", "invalid duration"),
    ({"receivers": {"otlp": {"protocols": {"http": {"endpoint": "localhost"}}}}},
     "receivers::otlp::protocols::http::endpoint", "host:port"),
    ({"receivers": {"otlp": {"protocols": {}}}}, "receivers::otlp", "at least one protocol"),
    ({"exporters": {"kafkaa": {}}}, "exporters::kafkaa", "unknown exporter type 'kafkaa'"),
    ({"exporters": {"clickhouse": {"endpoint": "tcp://x"}}}, "exporters::clickhouse::endpoint", "chdb://"),
    ({"exporters": {"clickhouse": {"database": "bad-name"}}}, "exporters::clickhouse::database", "identifier"),
    ({"service": {"pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["clickhouse"]}}}},
     "service::pipelines::traces::exporters", 'references exporter "clickhouse" which is not configured'),
    ({"service": {"pipelines": {"profiles": {"receivers": ["otlp"], "exporters": ["debug"]}}}},
     "service::pipelines::profiles", "unknown signal 'profiles'"),
    ({"processors": {"genai_cost": {}}, "service": {"pipelines": {"logs": {
        "receivers": ["otlp"], "processors": ["genai_cost"], "exporters": ["debug"]}}}},
     "service::pipelines::logs::processors", 'processor "genai_cost" does not support logs: it takes traces only'),
    ({"service": {"pipelines": {"traces": {"receivers": [], "exporters": ["debug"]}}}},
     "service::pipelines::traces::receivers", "at least one receiver"),
    ({"service": {"pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["debug"], "procesors": []}}}},
     "service::pipelines::traces::procesors", "unknown key"),
    ({"service": {"extensions": ["query_api"], "pipelines": GOOD["service"]["pipelines"]}},
     "service::extensions", 'extension "query_api" which is not configured'),
    ({"recievers": {}}, "recievers", "unknown top-level key"),
])
def test_errors_name_the_offending_key(change: dict, path: str, words: str) -> None:
    err = error_for(with_changes(**change))
    assert err.path == path
    assert words in err.reason
    assert str(err).startswith(path)


def test_env_vars_are_substituted_with_types_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TH_TEST_SIZE", "123")
    monkeypatch.setenv("TH_TEST_HOST", "0.0.0.0")
    data = with_changes(
        receivers={"otlp": {"protocols": {"http": {"endpoint": "${env:TH_TEST_HOST}:${env:TH_TEST_PORT:-4318}"}}}},
        processors={"batch": {"send_batch_size": "${env:TH_TEST_SIZE}", "timeout": "${TH_TEST_TIMEOUT:-1s}"}},
    )
    config = load_config_dict(data)
    batch = config.entry(Kind.PROCESSOR, ComponentID("batch")).config
    assert batch.send_batch_size == 123 and batch.timeout == 1.0  # type: ignore[attr-defined]
    otlp = config.entry(Kind.RECEIVER, ComponentID("otlp")).config
    assert otlp.protocols.http.endpoint == "0.0.0.0:4318"  # type: ignore[attr-defined]


@pytest.mark.parametrize("secret", ["12345678", "007", "true", "1e3", "null"])
def test_an_env_var_reaches_a_string_field_as_written(secret: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A password that looks like a number, a boolean or null is still that password."""
    monkeypatch.setenv("TH_TEST_PASSWORD", secret)
    monkeypatch.setenv("TH_TEST_BOOL", "false")
    data = with_changes(exporters={"clickhouse": {"password": "${env:TH_TEST_PASSWORD}",
                                                  "create_schema": "${env:TH_TEST_BOOL}"}},
                        service={"pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["clickhouse"]}}})
    config = load_config_dict(data)
    clickhouse = config.entry(Kind.EXPORTER, ComponentID("clickhouse")).config
    assert clickhouse.password == secret and clickhouse.create_schema is False  # type: ignore[attr-defined]


def test_a_missing_env_var_without_default_is_an_error_naming_the_key() -> None:
    err = error_for(with_changes(exporters={"debug": {"verbosity": "${env:TH_SURELY_UNSET}"}}))
    assert err.path == "exporters::debug::verbosity"
    assert "TH_SURELY_UNSET" in err.reason


def test_named_components_and_shared_receivers() -> None:
    data = with_changes(
        exporters={"debug/a": None, "debug/b": {"verbosity": "detailed"}},
        service={"pipelines": {
            "traces/a": {"receivers": ["otlp"], "exporters": ["debug/a"]},
            "traces/b": {"receivers": ["otlp"], "exporters": ["debug/b"]},
        }},
    )
    config = load_config_dict(data)
    assert set(config.pipelines) == {"traces/a", "traces/b"}


def test_durations() -> None:
    assert parse_duration("200ms") == pytest.approx(0.2)
    assert parse_duration("1m") == 60
    assert parse_duration(2) == 2
    with pytest.raises(ValueError):
        parse_duration("-1s")


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("receivers:\n  otlp: {\n")
    with pytest.raises(ConfigError, match="line"):
        load_config(bad)


@pytest.mark.parametrize("path", sorted((REPO / "deploy" / "config").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path: Path) -> None:
    load_config(path)


def test_cli_validate_config_accepts_and_rejects(tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "tracehouse.core.cli", "validate-config"]
    ok = subprocess.run([*cli, str(REPO / "deploy/config/all-in-one.yaml")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "config OK" in ok.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(with_changes(processors={"batch": {"send_batch_sise": 10}})))
    bad = subprocess.run([*cli, str(broken)], capture_output=True, text=True)
    assert bad.returncode == 1
    assert "processors::batch::send_batch_sise: unknown key" in bad.stderr


def test_a_service_needs_a_pipeline_unless_it_only_serves_extensions() -> None:
    err = error_for({"exporters": {"debug": None}, "service": {"pipelines": {}}})
    assert err.path == "service::pipelines" and "at least one pipeline" in err.reason
    query_only = load_config_dict({"extensions": {"health_check": None},
                                   "service": {"extensions": ["health_check"]}})
    assert query_only.pipelines == {} and query_only.service.extensions == ["health_check"]
