"""Versioned schema migrations, applied at start.

Migrations are `migrations/NNN_name.sql` files; `${db}`, the table names (`${traces}`,
`${logs}`, `${metrics_gauge}`...) and the TTL placeholders are filled from config. Every statement is idempotent (IF NOT EXISTS), so
writers that start at the same time may both apply a migration safely; the ledger table
records what ran and is consulted to skip work on later starts.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from importlib import resources
from string import Template

import structlog
from clickhouse_connect.driver.client import Client

from tracehouse.sinks.clickhouse.cluster import (
    LOGS_SHARD_KEY,
    METRICS_SHARD_KEY,
    ClusterSchema,
    ledger_ddl,
    storage_tables,
)

log = structlog.get_logger("tracehouse.sinks.clickhouse.schema")

LEDGER = "tracehouse_schema_migrations"
_NAME_RE = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self, params: dict[str, str]) -> list[str]:
        text = Template(self.sql).substitute(params)
        text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
        return [s.strip() for s in re.split(r";\s*(?:\n|$)", text) if s.strip()]


def load_migrations() -> list[Migration]:
    folder = resources.files("tracehouse.sinks.clickhouse").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        m = _NAME_RE.match(entry.name)
        if m:
            found.append(Migration(int(m[1]), m[2], entry.read_text()))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions: {versions}")
    return found


def ttl_clause(ttl_seconds: float, column_expr: str) -> str:
    """The Collector's TTL rule: the largest whole unit that divides the duration."""
    if ttl_seconds <= 0:
        return ""
    seconds = int(ttl_seconds)
    for unit, size in (("Day", 86400), ("Hour", 3600), ("Minute", 60)):
        if seconds % size == 0:
            return f"TTL {column_expr} + toInterval{unit}({seconds // size})"
    return f"TTL {column_expr} + toIntervalSecond({seconds})"


# The metric tables' placeholders, by the `data` kind of the OTLP Metric they hold.
METRIC_TABLE_PARAMS = {
    "gauge": "metrics_gauge", "sum": "metrics_sum", "histogram": "metrics_histogram",
    "exponential_histogram": "metrics_exp_histogram", "summary": "metrics_summary",
}
DEFAULT_LOGS_TABLE = "otel_logs"
DEFAULT_METRIC_TABLES = {kind: f"otel_metrics_{kind}" for kind in METRIC_TABLE_PARAMS}


def schema_params(database: str, traces_table: str, ttl_seconds: float, dedup_window: int, *,
                  logs_table: str = DEFAULT_LOGS_TABLE,
                  metric_tables: dict[str, str] | None = None) -> dict[str, str]:
    metric_tables = {**DEFAULT_METRIC_TABLES, **(metric_tables or {})}
    return {
        "db": database,
        "traces": traces_table,
        "logs": logs_table,
        **{param: metric_tables[kind] for kind, param in METRIC_TABLE_PARAMS.items()},
        "ttl_timestamp": ttl_clause(ttl_seconds, "toDateTime(Timestamp)"),
        "ttl_start": ttl_clause(ttl_seconds, "toDateTime(Start)"),
        "ttl_minute": ttl_clause(ttl_seconds, "Minute"),
        # The Collector's: logs by their second, metrics by their time.
        "ttl_logs": ttl_clause(ttl_seconds, "TimestampTime"),
        "ttl_metrics": ttl_clause(ttl_seconds, "toDateTime(TimeUnix)"),
        "dedup_window": str(int(dedup_window)),
    }


def applied_versions(client: Client, database: str) -> set[int]:
    rows = client.query(f"SELECT DISTINCT version FROM {database}.{LEDGER}").result_rows
    return {int(r[0]) for r in rows}


def planned(params: dict[str, str], cluster: str = "") -> list[tuple[Migration, list[str]]]:
    """Every migration with the statements it runs: as written for one server, or rewritten
    for `cluster` (sinks/clickhouse/cluster.py)."""
    migrations = [(mig, mig.statements(params)) for mig in load_migrations()]
    if not cluster:
        return migrations
    shard_keys = ((params["logs"], LOGS_SHARD_KEY),
                  *((params[param], METRICS_SHARD_KEY) for param in METRIC_TABLE_PARAMS.values()))
    schema = ClusterSchema(cluster, storage_tables([s for _, stmts in migrations for s in stmts]), shard_keys)
    return [(mig, [out for s in stmts for out in schema.rewrite(s)]) for mig, stmts in migrations]


def ledger_statements(database: str, cluster: str = "") -> list[str]:
    if cluster:
        return [f"CREATE DATABASE IF NOT EXISTS {database} ON CLUSTER `{cluster}`",
                ledger_ddl(database, LEDGER, cluster)]
    return [f"CREATE DATABASE IF NOT EXISTS {database}",
            f"CREATE TABLE IF NOT EXISTS {database}.{LEDGER} "
            "(version UInt32, name String, applied_at DateTime64(3) DEFAULT now64(3)) "
            "ENGINE = ReplacingMergeTree ORDER BY version"]


def migrate(client: Client, params: dict[str, str], cluster: str = "") -> list[int]:
    """Apply pending migrations; returns the versions applied now."""
    database = params["db"]
    for statement in ledger_statements(database, cluster):
        client.command(statement)
    done = applied_versions(client, database)
    applied = []
    for mig, statements in planned(params, cluster):
        if mig.version in done:
            continue
        t0 = time.perf_counter()
        for statement in statements:
            client.command(statement)
        client.insert(f"{database}.{LEDGER}", [[mig.version, mig.name]], column_names=["version", "name"])
        applied.append(mig.version)
        log.info("schema migration applied", version=mig.version, name=mig.name, database=database,
                 cluster=cluster or None, seconds=round(time.perf_counter() - t0, 3))
    return applied
