"""Spans already stored are not inserted again, so rollups never count a span twice.

A client that retries after a lost acknowledgement sends the same (TraceId, SpanId)
again in a new request, hence a new insert block. ClickHouse's insert deduplication only
drops identical block replays, and materialized views sum whatever block reaches them.
So before each insert the exporter asks the `_span_keys` table (sorted by TraceId, fed by
a materialized view of the spans table) which keys of the batch exist, and leaves those
rows out; keys repeated inside one batch are kept once.

What remains open: two writers inserting the same span at the same moment both pass the
check. Within one exporter inserts are sequential; through Kafka a trace's spans go to
one partition, hence one writer, and a batch replayed from Kafka carries an insert
deduplication token (`token_settings`) that makes ClickHouse itself drop the second
copy. Reads still collapse duplicates (`LIMIT 1 BY`).
"""

from __future__ import annotations

import hashlib
from typing import Any

from clickhouse_connect.driver.client import Client

TS, TRACE_ID, SPAN_ID = 0, 1, 2  # positions of these columns in batch_to_columns' output


def stored_keys_query(database: str, traces_table: str) -> str:
    return (
        f"SELECT concat(TraceId, SpanId) FROM {database}.{traces_table}_span_keys "
        "WHERE TraceId IN {trace_ids:Array(String)} AND Tenant = {tenant:String} "
        "AND Timestamp BETWEEN fromUnixTimestamp64Nano({start:Int64}) AND fromUnixTimestamp64Nano({end:Int64})"
    )


def new_rows(client: Client, query: str, data: list[list[Any]], tenant: str) -> list[int] | None:
    """Indices of the rows to insert, or None when every row is new (the common case).
    Only the tenant's own spans count: another tenant's ids never hide these."""
    trace_ids, span_ids, ts = data[TRACE_ID], data[SPAN_ID], data[TS]
    keys = [t + s for t, s in zip(trace_ids, span_ids, strict=True)]
    rows = client.query(query, parameters={"trace_ids": list(set(trace_ids)), "start": min(ts), "end": max(ts),
                                           "tenant": tenant})
    stored = {row[0] for row in rows.result_rows}
    if not stored and len(set(keys)) == len(keys):
        return None
    keep = []
    for i, key in enumerate(keys):
        if key not in stored:
            stored.add(key)  # a later copy in this batch is a duplicate too
            keep.append(i)
    return keep


def take_rows(data: list[list[Any]], keep: list[int]) -> list[list[Any]]:
    return [[column[i] for i in keep] for column in data]


def token_settings(token: str | None, keep: list[int] | None) -> dict[str, Any]:
    """ClickHouse settings that make an insert idempotent under `token`.

    ClickHouse drops a block whose token it has seen, whatever rows it holds. So when the
    gate left rows out (`keep`), the block is no longer the batch the token names, and the
    token gets a digest of the kept rows: a later retry of a partly stored batch must not
    be dropped as a replay of its first attempt. Materialized views dedupe with the source
    block (their target tables carry a deduplication window too, migration 004), so a
    dropped replay reaches no rollup.
    """
    if not token:
        return {}
    if keep is not None:
        token = f"{token}#{hashlib.sha256(','.join(map(str, keep)).encode()).hexdigest()[:16]}"
    return {"insert_deduplicate": 1, "insert_deduplication_token": token,
            "deduplicate_blocks_in_dependent_materialized_views": 1}
