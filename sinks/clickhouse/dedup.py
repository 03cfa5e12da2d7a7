"""Spans already stored are not inserted again, so rollups never count a span twice.

A client that retries after a lost acknowledgement sends the same (TraceId, SpanId)
again in a new request, hence a new insert block. ClickHouse's insert deduplication only
drops identical block replays, and materialized views sum whatever block reaches them.
So before each insert the exporter asks the `_span_keys` table (sorted by TraceId, fed by
a materialized view of the spans table) which keys of the batch exist, and leaves those
rows out; keys repeated inside one batch are kept once. The lookup is by key only, never
bounded by the batch's timestamps: a client may resend a span with another start time
(clock fixed, span re-exported by another SDK), and it is still the same span. The first
copy stored wins. Each of `_span_keys`' daily partitions answers from its primary key
(TraceId, SpanId), so the lookup stays a few index reads per partition.

What remains open: two writers inserting the same span at the same moment both pass the
check. Within one exporter inserts are sequential; through Kafka a trace's spans go to
one partition, hence one writer, and a batch replayed from Kafka carries an insert
deduplication token (`token_settings`) that makes ClickHouse itself drop the second
copy. Reads still collapse duplicates (`LIMIT 1 BY`).

Log records and metric points have no ids: `RowGate` (below) does the same for them by
content.
"""

from __future__ import annotations

import hashlib
from typing import Any

from clickhouse_connect.driver.client import Client

TS, TRACE_ID, SPAN_ID = 0, 1, 2  # positions of these columns in batch_to_columns' output


def stored_keys_query(database: str, traces_table: str) -> str:
    return (
        f"SELECT concat(TraceId, SpanId) FROM {database}.{traces_table}_span_keys "
        "WHERE TraceId IN {trace_ids:Array(String)} AND Tenant = {tenant:String}"
    )


def new_rows(client: Client, query: str, data: list[list[Any]], tenant: str) -> list[int] | None:
    """Indices of the rows to insert, or None when every row is new (the common case).
    Only the tenant's own spans count: another tenant's ids never hide these."""
    trace_ids, span_ids = data[TRACE_ID], data[SPAN_ID]
    keys = [t + s for t, s in zip(trace_ids, span_ids, strict=True)]
    rows = client.query(query, parameters={"trace_ids": list(set(trace_ids)), "tenant": tenant})
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


# ------------------------------------------------------------------------------ logs and metrics
#
# Log records and metric points carry no id. A client that retries after a lost
# acknowledgement sends the same items again, so a row is a duplicate when a row with the same
# content, every column, is stored for the same tenant: for a log record its time, ids, body,
# attributes, resource and scope; for a metric point its series (resource, scope, name,
# attributes), its times and its values. Two records identical in every column, down to the
# nanosecond, are indistinguishable and kept once.
#
# The gate reads back the stored rows of the batch's services at the batch's exact times
# (the time columns lead the tables' sorting keys after Tenant and ServiceName, so this is an
# index range per service), and compares whole rows only when some came back or the batch
# itself repeats a (service, time[, metric, attributes]) key. The common case, new data,
# costs one query that returns nothing. As for spans, a batch replayed from Kafka also
# carries an insert deduplication token.

# DateTime64 columns come back as datetimes (microseconds in Python): read them as nanoseconds.
_TIME_COLUMNS = frozenset({"Timestamp", "StartTimeUnix", "TimeUnix"})
_TIME_ARRAYS = frozenset({"Exemplars.TimeUnix"})


def _select(column: str) -> str:
    quoted = f"`{column}`"
    if column in _TIME_COLUMNS:
        return f"toUnixTimestamp64Nano({quoted})"
    if column in _TIME_ARRAYS:
        return f"arrayMap(t -> toUnixTimestamp64Nano(t), {quoted})"
    return quoted


def _canon(value: Any) -> Any:
    """A hashable form equal for equal column values: maps as sorted pairs, arrays as tuples,
    NaN equal to itself."""
    if isinstance(value, dict):
        return tuple(sorted(value.items()))
    if isinstance(value, list | tuple):
        return tuple(_canon(v) for v in value)
    if isinstance(value, float) and value != value:
        return "NaN"
    return value


class RowGate:
    """Which rows of a logs or metrics insert are not stored yet (see above).

    `key_columns`: what the stored candidates are read by, beside the tenant and the exact
    time: the services (and metric names), with the in-batch repeat check also on them."""

    def __init__(self, database: str, table: str, time_column: str, key_columns: tuple[str, ...]):
        self.table = table
        self._database = database
        self._time = time_column
        self._keys = key_columns
        self._queries: dict[tuple[tuple[str, ...], bool], str] = {}

    def _query(self, names: tuple[str, ...], by_second: bool) -> str:
        query = self._queries.get((names, by_second))
        if query is None:
            where = ["Tenant = {tenant:String}",
                     f"{self._time} BETWEEN fromUnixTimestamp64Nano({{lo:Int64}}) AND fromUnixTimestamp64Nano({{hi:Int64}})",
                     f"toUnixTimestamp64Nano({self._time}) IN {{times:Array(Int64)}}"]
            where += [f"{key} IN {{{key}:Array(String)}}" for key in self._keys if key != "Attributes"]
            if by_second:  # logs: the primary key and partitions are by TimestampTime
                where.append("TimestampTime BETWEEN toDateTime(intDiv({lo:Int64}, 1000000000)) "
                             "AND toDateTime(intDiv({hi:Int64}, 1000000000))")
            query = self._queries[(names, by_second)] = (
                f"SELECT {', '.join(_select(n) for n in names)} FROM {self._database}.{self.table} "
                f"WHERE {' AND '.join(where)}")
        return query

    def new_rows(self, client: Client, names: list[str], data: list[list[Any]], tenant: str) -> list[int] | None:
        """Indices of the rows to insert, or None when every row is new (the common case)."""
        content = [(n, col) for n, col in zip(names, data, strict=True) if n != "Tenant"]
        position = {n: i for i, (n, _) in enumerate(content)}
        times = content[position[self._time]][1]
        keyed = [content[position[k]][1] for k in self._keys]
        cheap = [(t, *(_canon(col[i]) for col in keyed)) for i, t in enumerate(times)]
        params: dict[str, Any] = {"tenant": tenant, "times": sorted(set(times)), "lo": min(times), "hi": max(times)}
        for key, col in zip(self._keys, keyed, strict=True):
            if key != "Attributes":
                params[key] = sorted(set(col))
        # A time past 2106 has no DateTime (UInt32) second: the TimestampTime bound would wrap.
        by_second = self._time == "Timestamp" and max(times) < 2**32 * 10**9
        query = self._query(tuple(n for n, _ in content), by_second)
        stored = client.query(query, parameters=params).result_rows
        if not stored and len(set(cheap)) == len(cheap):
            return None
        seen = {_canon(row) for row in stored}
        columns = [col for _, col in content]
        keep = []
        for i in range(len(times)):
            row = _canon([col[i] for col in columns])
            if row not in seen:
                seen.add(row)  # a later copy in this batch is a duplicate too
                keep.append(i)
        return None if len(keep) == len(times) else keep
