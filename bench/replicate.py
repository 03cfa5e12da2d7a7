"""Grow a stored day of spans into many: copies of every span already in an embedded store,
each copy shifted back in time and given trace ids (and session ids) of its own.

Loading 10M spans over OTLP takes the pipeline ~25 minutes on the bench VM; copying 1M
loaded spans nine times inside ClickHouse takes a few. The copies go through the same
INSERT path (the materialized views write every rollup), so the per-trace rollup, the
usage rollup and the trace-id lookup hold exactly what ingestion would have written for
that traffic; the spans keep their names, attributes, messages and models.

Run it while no server holds the store (chDB opens a data path in one process):

    python -m tracehouse.bench.replicate --store /tmp/day/chdb --copies 9 --shift-hours 2
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from tracehouse.sinks.clickhouse.client import open_client

DATABASE = "tracehouse"
TABLE = "otel_traces"
# Copied as they are, but for the ones `_copy_sql` rewrites.
REWRITTEN = {"TraceId": "lower(hex(MD5(concat(TraceId, {tag}))))",
             "Timestamp": "Timestamp - toIntervalSecond({shift})",
             "Events.Timestamp": "arrayMap(t -> t - toIntervalSecond({shift}), `Events.Timestamp`)",
             "GenAISessionId": "if(GenAISessionId = '', '', concat(GenAISessionId, '-', {tag}))"}


def _copy_sql(columns: Sequence[str], copy: int, shift_s: int, first_ns: int) -> str:
    tag = f"'c{copy}'"
    exprs = [REWRITTEN[c].format(tag=tag, shift=shift_s) if c in REWRITTEN else f"`{c}`" for c in columns]
    names = ", ".join(f"`{c}`" for c in columns)
    # Only the original spans: every copy starts before the original's first span.
    return (f"INSERT INTO {DATABASE}.{TABLE} ({names}) SELECT {', '.join(exprs)} FROM {DATABASE}.{TABLE} "
            f"WHERE Timestamp >= fromUnixTimestamp64Nano({first_ns})")


def replicate(store: str, copies: int, shift_s: int) -> int:
    """Add `copies` shifted copies of the store's spans; returns the spans stored after."""
    client = open_client(f"chdb://{store}")
    try:
        columns = [row[0] for row in client.query(
            f"SELECT name FROM system.columns WHERE database = '{DATABASE}' AND table = '{TABLE}' "
            "AND default_kind NOT IN ('MATERIALIZED', 'ALIAS') ORDER BY position").result_rows]
        first_ns, last_ns, spans = client.query(
            f"SELECT toUnixTimestamp64Nano(min(Timestamp)), toUnixTimestamp64Nano(max(Timestamp)), count() "
            f"FROM {DATABASE}.{TABLE}").result_rows[0]
        if spans == 0:
            raise SystemExit(f"{store}: no spans to copy")
        if (last_ns - first_ns) / 1e9 >= shift_s:
            raise SystemExit(f"the stored spans cover {(last_ns - first_ns) / 1e9:.0f} s, more than the shift "
                             f"({shift_s} s): copies would overlap the original")
        for copy in range(1, copies + 1):
            t0 = time.monotonic()
            client.command(_copy_sql(columns, copy, copy * shift_s, first_ns))
            print(f"copy {copy}/{copies}: {spans:,} spans in {time.monotonic() - t0:.1f} s", file=sys.stderr)
        return int(client.query(f"SELECT count() FROM {DATABASE}.{TABLE}").result_rows[0][0])
    finally:
        client.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", required=True, help="the chDB data path (what follows chdb:// in the DSN)")
    parser.add_argument("--copies", type=int, default=9)
    parser.add_argument("--shift-hours", type=float, default=2.0)
    args = parser.parse_args(argv)
    total = replicate(args.store, args.copies, int(args.shift_hours * 3600))
    print(f"{total:,} spans stored")
    return 0


if __name__ == "__main__":
    sys.exit(main())
