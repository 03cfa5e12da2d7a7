"""Deleting data: one trace on request, and whole tenants' old data by their retention.

Spans, retry-gate keys, per-trace rollup rows and scores are removed with lightweight deletes
(`DELETE FROM … WHERE`): rows disappear from reads at once and from disk on the next
merge. The per-minute usage rollup cannot subtract (its latency is a t-digest), so the
minutes a deleted trace touched are rebuilt from the spans that remain, with the usage
view's own query, read from the live schema: the rebuilt rows are what the view would have
written had the trace never arrived.

The `_trace_id_ts` lookup keeps its row: it holds only a trace id and time bounds, has no
tenant, and a trace id of another tenant may share it.

Caveat: spans written into the same minutes while a delete runs may be counted twice in
those minutes' usage (once by the view, once by the rebuild). Deleting traces that are
still arriving is the only way to meet it.
"""

from __future__ import annotations

import re
from datetime import datetime

from clickhouse_connect.driver.client import Client

from tracehouse.query.store import StoreError


def delete_trace(client: Client, database: str, table: str, trace_id: str, tenant: str) -> int:
    """Delete one tenant's trace; the number of spans it had (0: nothing to delete)."""
    params = {"trace_id": trace_id, "tenant": tenant}
    rows = client.query(
        f"SELECT count(), groupUniqArray(toStartOfMinute(Timestamp)) FROM {database}.{table} "
        "WHERE TraceId = {trace_id:String} AND Tenant = {tenant:String}", parameters=params).result_rows
    spans, minutes = int(rows[0][0]), list(rows[0][1])
    if not spans:
        return 0
    # The trace's scores go with it: they judge what is no longer there (and may quote it).
    for suffix, column in (("", "TraceId"), ("_span_keys", "TraceId"), ("_trace_rollup", "TraceId"),
                           ("_scores", "TraceId")):
        client.command(f"DELETE FROM {database}.{table}{suffix} "
                       f"WHERE {column} = {{trace_id:String}} AND Tenant = {{tenant:String}}", parameters=params)
    rebuild_usage(client, database, table, tenant, minutes)
    return spans


def expire_tenant(client: Client, database: str, table: str, tenant: str, before: datetime) -> None:
    """Delete everything of `tenant` older than `before` (its retention)."""
    params = {"tenant": tenant, "before": before}
    for suffix, column in (("", "Timestamp"), ("_span_keys", "Timestamp"), ("_trace_rollup", "End"),
                           ("_genai_usage_1m", "Minute"), ("_scores", "Timestamp")):
        client.command(f"DELETE FROM {database}.{table}{suffix} "
                       f"WHERE Tenant = {{tenant:String}} AND {column} < {{before:DateTime64(9)}}", parameters=params)


def rebuild_usage(client: Client, database: str, table: str, tenant: str, minutes: list[datetime]) -> None:
    """Recompute the tenant's usage rows of `minutes` from the spans that remain."""
    view = client.query("SELECT as_select FROM system.tables WHERE database = {db:String} AND name = {name:String}",
                        parameters={"db": database, "name": f"{table}_genai_usage_1m_mv"}).result_rows
    if not view:
        raise StoreError(f"{database}.{table}_genai_usage_1m_mv not found: the exporter's schema is not in place")
    source = re.compile(rf"\bFROM {re.escape(database)}\.{re.escape(table)}\b(?![_\w])")
    select = view[0][0]
    if len(source.findall(select)) != 1:
        raise StoreError("the usage view's query has an unexpected shape; the usage rollup was not rebuilt")
    remaining = (f"FROM (SELECT * FROM {database}.{table} WHERE Tenant = {{tenant:String}} "
                 "AND toStartOfMinute(Timestamp) IN {minutes:Array(DateTime)} LIMIT 1 BY TraceId, SpanId)")
    # By name: the view's columns are not in the table's order (Tenant came later).
    columns = [r[0] for r in client.query(
        "SELECT name FROM system.columns WHERE database = {db:String} AND table = {name:String} ORDER BY position",
        parameters={"db": database, "name": f"{table}_genai_usage_1m_mv"}).result_rows]
    params = {"tenant": tenant, "minutes": minutes}
    client.command(f"DELETE FROM {database}.{table}_genai_usage_1m "
                   "WHERE Tenant = {tenant:String} AND Minute IN {minutes:Array(DateTime)}", parameters=params)
    client.command(f"INSERT INTO {database}.{table}_genai_usage_1m ({', '.join(f'`{c}`' for c in columns)}) "
                   + source.sub(lambda _: remaining, select), parameters=params)
