"""The floor: ClickHouse alone storing the all-in-one bench's spans (issue 17, item 1).

The same traffic as `run_all_in_one` (seeded GenAI agent traces), made into exactly the rows
the ClickHouse exporter inserts: decoded, through genai_normalize → genai_tokens →
redaction → genai_cost, and turned into columns by the exporter's own `batch_to_columns`.
Each batch of `--batch-spans` spans (the batch processor's `send_batch_size`) is then
serialized once into a Native block, before any timing. What is timed is chDB inserting
those blocks, one after another, into a fresh database made by the real migrations (the
spans table, its span keys, trace rollup, usage rollup and trace-id lookup views): no
Python per span, the limit the pipeline is measured against. Afterwards, the CPU spent
while background merges settle is the merge cost.

The process pins itself to one core (`--core`), as `run_all_in_one` pins the server.

`--without views|indexes|projections` (repeatable) measures the same inserts with the spans
table's materialized views, its data-skipping indexes or the trace rollup's projections
dropped: where the floor's CPU goes, not a configuration tracehouse runs.

    python -m tracehouse.bench.run_clickhouse_floor --spans 100000
    python -m tracehouse.bench.run_clickhouse_floor --spans 100000 --without views --without indexes
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import psutil

from tracehouse.bench.genai_processors import Processors, decode_protobuf
from tracehouse.bench.traffic import pregenerate
from tracehouse.core.pdata import TraceBatch
from tracehouse.sinks.clickhouse.client import open_client
from tracehouse.sinks.clickhouse.columns import batch_to_columns
from tracehouse.sinks.clickhouse.schema import migrate, schema_params

DATABASE = "floor"
TABLE = "otel_traces"


def insert_rows(spans: int, spans_per_request: int, batch_spans: int, seed: int) -> tuple[list[str], list[list[list[Any]]], int]:
    """The exporter's column lists for the traffic, one per batch of about `batch_spans` spans."""
    procs = Processors()
    procs.start()
    requests: list[TraceBatch] = []
    for payload in pregenerate(seed, spans, spans_per_request):
        batch = decode_protobuf(payload.body)
        procs.chain(batch)
        procs.redaction.process(batch)
        requests.append(batch)
    names: list[str] = []
    blocks: list[list[list[Any]]] = []
    pending: list[TraceBatch] = []
    total = pending_spans = 0

    def flush() -> None:
        nonlocal names, pending_spans
        merged = TraceBatch.merge(pending)
        names, data = batch_to_columns(merged, {}, [])
        blocks.append(data)
        pending.clear()
        pending_spans = 0

    for batch in requests:
        pending.append(batch)
        total += batch.span_count
        pending_spans += batch.span_count
        if pending_spans >= batch_spans:
            flush()
    if pending:
        flush()
    return names, blocks, total


def native_blocks(client: Any, names: list[str], blocks: list[list[list[Any]]]) -> list[bytes]:
    """Each column list serialized once into ClickHouse's Native format."""
    out = []
    for data in blocks:
        context = client.create_insert_context(table=TABLE, database=DATABASE, column_names=names,
                                               column_oriented=True, data=data)
        context.compression = None
        body = b"".join(client._transform.build_insert(context))  # what client.insert would send
        # ... after the statement it puts in front of the first chunk for an HTTP body.
        statement_end = body.index(b"FORMAT Native\n") + len(b"FORMAT Native\n")
        out.append(body[statement_end:])
    return out


def _cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def settle(client: Any, proc: psutil.Process, quiet_s: float = 2.0, limit_s: float = 300.0) -> tuple[float, float]:
    """Wait until no merge has run for `quiet_s`; returns (seconds, CPU seconds) it took."""
    t0, c0 = time.perf_counter(), _cpu(proc)
    quiet_since = time.perf_counter()
    while time.perf_counter() - t0 < limit_s:
        running = client.query(f"SELECT count() FROM system.merges WHERE database = '{DATABASE}'").result_rows[0][0]
        if running:
            quiet_since = time.perf_counter()
        elif time.perf_counter() - quiet_since >= quiet_s:
            break
        time.sleep(0.1)
    return time.perf_counter() - t0 - quiet_s, _cpu(proc) - c0


STRIPPABLE = ("views", "indexes", "projections")


def schema_parts(client: Any) -> dict[str, list[tuple[str, str]]]:
    """What the spans' inserts feed, as (table, name): the spans table's views and indexes,
    and the projections of every table."""
    params = {"d": DATABASE, "t": TABLE}
    [(views,)] = client.query("SELECT dependencies_table FROM system.tables WHERE database = {d:String} "
                              "AND name = {t:String}", parameters=params).result_rows
    indexes = client.query("SELECT table, name FROM system.data_skipping_indices WHERE database = {d:String} "
                           "AND table = {t:String}", parameters=params).result_rows
    projections = client.query("SELECT table, name FROM system.projections WHERE database = {d:String}",
                               parameters=params).result_rows
    return {"views": [(TABLE, view) for view in views], "indexes": [tuple(r) for r in indexes],
            "projections": [tuple(r) for r in projections]}


def strip(client: Any, parts: Sequence[str]) -> None:
    """Drop the named parts of the schema the spans' inserts feed (see the module doc)."""
    drop = {"views": "DROP VIEW {db}.{name}", "indexes": "ALTER TABLE {db}.{table} DROP INDEX {name}",
            "projections": "ALTER TABLE {db}.{table} DROP PROJECTION {name}"}
    for part, found in schema_parts(client).items():
        if part in parts:
            for table, name in found:
                client.command(drop[part].format(db=DATABASE, table=table, name=name))


def measure(spans: int, spans_per_request: int, batch_spans: int, seed: int, core: int | None,
            without: Sequence[str] = ()) -> dict[str, Any]:
    if core is not None:
        os.sched_setaffinity(0, {core})
    proc = psutil.Process()
    names, blocks, total = insert_rows(spans, spans_per_request, batch_spans, seed)
    with tempfile.TemporaryDirectory(prefix="tracehouse-floor-") as data_dir:
        client = open_client(f"chdb://{data_dir}")
        try:
            migrate(client, schema_params(DATABASE, TABLE, 0, 1000))
            strip(client, without)
            schema = {part: len(found) for part, found in schema_parts(client).items()}
            payloads = native_blocks(client, names, blocks)
            # What is left of the Python work is one call per block; the spans go as bytes.
            t0, c0 = time.perf_counter(), _cpu(proc)
            for body in payloads:
                client.raw_insert(f"{DATABASE}.{TABLE}", column_names=names, insert_block=body, fmt="Native")
            insert_s, insert_cpu = time.perf_counter() - t0, _cpu(proc) - c0
            settle_s, merge_cpu = settle(client, proc)
            stored = client.query(f"SELECT count() FROM {DATABASE}.{TABLE}").result_rows[0][0]
            rolled = client.query(f"SELECT sum(Spans) FROM {DATABASE}.{TABLE}_trace_rollup").result_rows[0][0]
        finally:
            client.close()
    if stored != total or (rolled != total and "views" not in without):
        raise SystemExit(f"stored {stored} spans and rolled up {rolled}, expected {total}")
    return {
        "spans": total,
        "blocks": len(payloads),
        "block_mb": round(sum(map(len, payloads)) / len(payloads) / 1e6, 2),
        "insert_s": round(insert_s, 3),
        "spans_per_s": round(total / insert_s),
        "insert_cpu_us_per_span": round(insert_cpu / total * 1e6, 1),
        "merge_s": round(settle_s, 2),
        "merge_cpu_us_per_span": round(merge_cpu / total * 1e6, 1),
        "core": core,
        "without": list(without),
        **schema,
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--spans", type=int, default=100_000)
    p.add_argument("--spans-per-request", type=int, default=500)
    p.add_argument("--batch-spans", type=int, default=8192, help="spans per insert (the batch processor's size)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--core", type=int, default=1, help="CPU to pin to (-1: no pinning)")
    p.add_argument("--without", action="append", choices=STRIPPABLE, default=[],
                   help="drop this part of the schema first, to see its share of the cost (repeatable)")
    p.add_argument("--json-out", default=None)
    args = p.parse_args(argv)
    core = None if args.core < 0 else args.core
    result = measure(args.spans, args.spans_per_request, args.batch_spans, args.seed, core, args.without)
    print("| spans | inserts | MB per block | spans/s (1 core) | insert CPU µs/span | merges settle s | merge CPU µs/span |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {result['spans']:,} | {result['blocks']} | {result['block_mb']} | {result['spans_per_s']:,} | "
          f"{result['insert_cpu_us_per_span']} | {result['merge_s']} | {result['merge_cpu_us_per_span']} |")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
