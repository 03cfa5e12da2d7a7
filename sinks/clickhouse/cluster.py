"""The cluster schema: the single-node migrations rewritten for a ClickHouse cluster.

With `cluster: <name>` in the exporter's config, every table of the migrations becomes

- a `<table>_local` table on every node (`ON CLUSTER`), with the Replicated variant of its
  engine (`ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}',
  '{replica}')`, so the servers need the `shard` and `replica` macros), and
- a `Distributed` table under the original name, over those local tables: what the exporter
  inserts into and the query service reads, so neither changes.

Materialized views run on each shard, from the local spans table into the local rollups:
a trace's spans all land on one shard (the spans and span-key tables are sharded by
`cityHash64(TraceId)`), so the per-trace rollup and the retry gate stay exact, and the usage
rollup's partial rows from several shards are summed by every read, as they already are
across parts. The prompt registry is sharded by prompt name, so a name's version claims
(insert deduplication tokens) meet on one shard. Logs and metrics tables are sharded by
their content (a log by trace id and time, a metric point by its series), so a replayed
block splits into the same per-shard blocks and each shard drops its part by the token. Deduplication windows become the
replicated ones (`replicated_deduplication_window`), kept in Keeper.

The rewrite works on the statements of our own migrations (their shapes are known and
tested), not on arbitrary SQL. The migration ledger is one replicated table for the whole
cluster (one Keeper path, a replica per node), so a migration applied `ON CLUSTER` by one
writer is skipped by all others.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Where each table's replicas meet in Keeper; `{table}` is the local table's name.
REPLICA_PATH = "/clickhouse/tables/{shard}/{database}/{table}"
LEDGER_REPLICA_PATH = "/clickhouse/tables/tracehouse/{database}/{table}"
LOCAL = "_local"

_CREATE_TABLE = re.compile(r"^CREATE TABLE IF NOT EXISTS (\w+)\.(\w+)\s*(\(.*)$", re.S)
_CREATE_VIEW = re.compile(r"^CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+)\.(\w+)\s+TO (\w+)\.(\w+)\s+(AS\s.*)$", re.S)
_ALTER = re.compile(r"^ALTER TABLE (\w+)\.(\w+)\s+(.*)$", re.S)
_CREATE_DATABASE = re.compile(r"^CREATE DATABASE IF NOT EXISTS (\w+)$")
# A bare engine or one with a version column (`ReplacingMergeTree(UpdatedAt)`).
_ENGINE = re.compile(r"ENGINE = (Replacing|Aggregating|)MergeTree\b(?:\((\w+)\))?(?!\()")


@dataclass(frozen=True, slots=True)
class ClusterSchema:
    """Rewrites migration statements for `cluster`; `tables` are the storage tables the
    migrations create (their names, without the database)."""

    cluster: str
    tables: frozenset[str]
    # Shard keys of tables whose names come from config (logs, metrics), by table name.
    shard_keys: tuple[tuple[str, str], ...] = ()

    @property
    def on_cluster(self) -> str:
        return f"ON CLUSTER `{self.cluster}`"

    def rewrite(self, statement: str) -> list[str]:
        text = statement.strip()
        if m := _CREATE_DATABASE.match(text):
            return [f"CREATE DATABASE IF NOT EXISTS {m[1]} {self.on_cluster}"]
        if m := _CREATE_TABLE.match(text):
            return self._table(m[1], m[2], m[3])
        if m := _CREATE_VIEW.match(text):
            return [f"CREATE MATERIALIZED VIEW IF NOT EXISTS {m[1]}.{m[2]} {self.on_cluster} "
                    f"TO {m[3]}.{self._local(m[4])} {self._sources(m[1], m[5])}"]
        if m := _ALTER.match(text):
            return self._alter(m[1], m[2], m[3])
        raise ValueError(f"no cluster form for this statement: {text[:80]!r}")

    def _local(self, table: str) -> str:
        return table + LOCAL if table in self.tables else table

    def _sources(self, db: str, select: str) -> str:
        """A view's SELECT reads the local tables of this shard."""
        return re.sub(rf"\b{re.escape(db)}\.(\w+)\b", lambda m: f"{db}.{self._local(m[1])}", select)

    def _table(self, db: str, table: str, body: str) -> list[str]:
        replicated = _ENGINE.sub(
            lambda m: f"ENGINE = Replicated{m[1]}MergeTree('{REPLICA_PATH}', '{{replica}}'{', ' + m[2] if m[2] else ''})",
            body, count=1)
        if replicated == body:
            raise ValueError(f"{table}: no MergeTree engine to replicate")
        replicated = replicated.replace("non_replicated_deduplication_window", "replicated_deduplication_window")
        local = f"CREATE TABLE IF NOT EXISTS {db}.{table}{LOCAL} {self.on_cluster} {replicated}"
        distributed = (f"CREATE TABLE IF NOT EXISTS {db}.{table} {self.on_cluster} AS {db}.{table}{LOCAL} "
                       f"ENGINE = Distributed(`{self.cluster}`, {db}, {table}{LOCAL}, "
                       f"{dict(self.shard_keys).get(table) or shard_key(table)})")
        return [local, distributed]

    def _alter(self, db: str, table: str, action: str) -> list[str]:
        action = action.replace("non_replicated_deduplication_window", "replicated_deduplication_window")
        verb = action.lstrip().upper()
        if verb.startswith("MODIFY QUERY"):
            # A view's new query reads this shard's local tables, as its first one did.
            action = self._sources(db, action)
        statements = [f"ALTER TABLE {db}.{self._local(table)} {self.on_cluster} {action}"]
        if table in self.tables and verb.startswith(("ADD COLUMN", "MODIFY COLUMN")):
            # The Distributed table carries the columns too (it has no sorting key).
            columns_only = re.split(r",\s*MODIFY ORDER BY\b", action, maxsplit=1)[0]
            statements.append(f"ALTER TABLE {db}.{table} {self.on_cluster} {columns_only}")
        return statements


def shard_key(table: str) -> str:
    """Which shard a row goes to: by trace for trace-keyed tables (a trace stays whole on one
    shard), by name for the registry; rollups are only written by their views, shard-locally."""
    if table.endswith("_prompts"):
        return "cityHash64(Name)"
    if table.endswith("_genai_usage_1m"):
        return "rand()"
    # MLflow entities (008): every version of a row on one shard, so FINAL collapses them.
    for suffix, key in _ENTITY_SHARD_KEYS.items():
        if table.endswith(suffix):
            return key
    return "cityHash64(TraceId)"


_ENTITY_SHARD_KEYS = {
    "_experiments": "cityHash64(ExperimentId)",
    "_runs": "cityHash64(RunId)", "_run_params": "cityHash64(RunId)", "_run_tags": "cityHash64(RunId)",
    "_run_metrics": "cityHash64(RunId)",
    "_registered_models": "cityHash64(Name)", "_model_versions": "cityHash64(Name)",
    "_logged_models": "cityHash64(ModelId)", "_artifacts": "cityHash64(Path)",
}


LOGS_SHARD_KEY = "cityHash64(TraceId, Timestamp)"
METRICS_SHARD_KEY = "cityHash64(ServiceName, MetricName, Attributes)"


def storage_tables(statements: list[str]) -> frozenset[str]:
    return frozenset(m[2] for s in statements if (m := _CREATE_TABLE.match(s.strip())))


def ledger_ddl(database: str, ledger: str, cluster: str) -> str:
    """The migration ledger: one replicated table across the cluster (a replica per node)."""
    return (f"CREATE TABLE IF NOT EXISTS {database}.{ledger} ON CLUSTER `{cluster}` "
            "(version UInt32, name String, applied_at DateTime64(3) DEFAULT now64(3)) "
            f"ENGINE = ReplicatedReplacingMergeTree('{LEDGER_REPLICA_PATH}', '{{shard}}-{{replica}}') "
            "ORDER BY version")
