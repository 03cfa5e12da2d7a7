"""Reads have a CPU budget of their own beside ingestion's (issue 17, item 6): the API's
queries run at `read_nice`, in the engine and on the API's query threads, while the
exporter's inserts keep the process's priority."""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest

from tracehouse.query.config import QueryApiConfig, QueryClickHouseConfig
from tracehouse.query.store import TraceStore
from tracehouse.sinks.clickhouse.client import open_client

NICE_SQL = "SELECT getSetting('os_thread_priority') AS nice"


def _thread_nice(_client: Any) -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


async def test_api_queries_run_at_the_read_nice_and_inserts_at_the_process_priority(chdb_endpoint: str) -> None:
    nice = QueryApiConfig().read_nice
    assert nice > 0  # reads yield to ingestion by default
    store = TraceStore(QueryClickHouseConfig(endpoint=chdb_endpoint), max_workers=1, read_nice=nice)
    try:
        # The engine runs the API's query with the setting (its threads' nice value)...
        assert await store._query("nice", {}, NICE_SQL) == [{"nice": nice}]
        # ...and the query thread, which decodes the result, is at that nice value too, also
        # after a query (the engine puts a thread it reniced back to 0 when the query ends).
        assert await store._call("thread nice", _thread_nice) == nice
    finally:
        await store.close()
    # A client as the exporter opens one, in the same engine: inserts keep their priority.
    writer = open_client(chdb_endpoint)
    try:
        assert writer.query(NICE_SQL).result_rows == [(0,)]
    finally:
        writer.close()


async def test_read_nice_0_leaves_reads_at_the_process_priority(chdb_endpoint: str) -> None:
    store = TraceStore(QueryClickHouseConfig(endpoint=chdb_endpoint), max_workers=1, read_nice=0)
    try:
        assert await store._query("nice", {}, NICE_SQL) == [{"nice": 0}]
        assert await store._call("thread nice", _thread_nice) == os.getpriority(os.PRIO_PROCESS, 0)
    finally:
        await store.close()


@pytest.mark.parametrize("value", [-1, 20])
def test_read_nice_is_a_nice_value_that_never_puts_reads_first(value: int) -> None:
    with pytest.raises(ValueError, match="between 0 and 19"):
        QueryApiConfig.model_validate({"read_nice": value})
