"""The Kafka deployment shape as real processes: sidecar, writer and query service.

Each runs `tracehouse run --config deploy/config/<mode>.yaml` as a child process, with
environment overrides only where a test needs one (a broker address, a unique topic) and
small, visible config edits where a test needs a knob the shipped file fixes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from allinone import CONFIGS, AllInOne

TESTS = Path(__file__).resolve().parents[1]


def derived_config(workdir: Path, name: str, edit: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of deploy/config/<name>.yaml with `edit` applied (env references kept)."""
    data = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    edit(data)
    path = workdir / f"{name}-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def with_query_api(data: dict[str, Any]) -> None:
    """The writer plus the query API in the same process: chDB allows one process per data dir."""
    data.setdefault("extensions", {})["query_api"] = {
        "endpoint": "${env:TRACEHOUSE_BIND:-localhost}:${env:TRACEHOUSE_QUERY_PORT:-8080}",
        "clickhouse": {"endpoint": "${env:TRACEHOUSE_CLICKHOUSE_DSN}", "database": "tracehouse"},
    }
    data["service"]["extensions"] = [*data["service"].get("extensions", []), "query_api"]


def kafka_env(bootstrap: str, topic: str, group: str = "") -> dict[str, str]:
    env = {"TRACEHOUSE_KAFKA_BROKERS": bootstrap, "TRACEHOUSE_KAFKA_TOPIC": topic,
           "TRACEHOUSE_KAFKA_DLQ_TOPIC": f"{topic}_dlq",
           # tansu refuses InitProducerId (tests/kafka_broker.py); Apache Kafka accepts it.
           "TRACEHOUSE_KAFKA_IDEMPOTENCE": "false"}
    if group:
        env["TRACEHOUSE_KAFKA_GROUP"] = group
    return env


def sidecar(workdir: Path, env: dict[str, str], config: Path | None = None) -> AllInOne:
    workdir.mkdir(parents=True, exist_ok=True)
    return AllInOne(workdir, config=config or CONFIGS / "sidecar.yaml", env=env, probe="health")


def writer(workdir: Path, env: dict[str, str], config: Path | None = None, probe: str = "health") -> AllInOne:
    workdir.mkdir(parents=True, exist_ok=True)
    return AllInOne(workdir, config=config or CONFIGS / "writer.yaml", env=env, probe=probe)


def stored_span_rows(data_dir: Path) -> list[tuple[str, str]]:
    """Every (TraceId, SpanId) row in a chDB data dir, duplicates included (no FINAL, no LIMIT BY).

    Read in a child process: chDB opens one data directory per process, and this test
    process may already hold another."""
    code = (
        "import json, sys\n"
        "from tracehouse.sinks.clickhouse.client import open_client\n"
        f"c = open_client('chdb://{data_dir}', username='default', password='', timeout_s=60)\n"
        "rows = c.query('SELECT TraceId, SpanId FROM tracehouse.otel_traces').result_rows\n"
        "print(json.dumps(rows))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return [(t, s) for t, s in json.loads(out.stdout.strip().splitlines()[-1])]


def stored_rollup_mismatches(data_dir: Path, database: str = "tracehouse") -> list[str]:
    """tests/rollups.py's comparison of every rollup with the distinct raw spans, over a chDB
    data dir, in a child process (as stored_span_rows). Empty when every rollup agrees."""
    code = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(TESTS)!r})\n"
        "from rollups import rollup_mismatches\n"
        "from tracehouse.sinks.clickhouse.client import open_client\n"
        f"c = open_client('chdb://{data_dir}', username='default', password='', timeout_s=60)\n"
        f"print(json.dumps(rollup_mismatches(c, {database!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    problems: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return problems
