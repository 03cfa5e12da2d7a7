"""Deleting a trace (DELETE /api/v1/traces/{id}) and a tenant's retention: the spans and
their part of every rollup are gone, recomputed from the raw spans that remain, and other
tenants' data (even under the same trace id) is untouched."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from rollups import assert_rollups_match_spans
from test_query_api import (
    NS,
    T0,
    TRACE_A,
    TRACE_B,
    FakeHost,
    build_batch,
    hand_built_specs,
    make_store,
    seed,
)
from tracehouse.query.app import create_app
from tracehouse.sinks.clickhouse.client import open_client
from tracehouse.sinks.clickhouse.scores import insert_scores

DAY = {"start": "2026-01-10T00:00:00Z", "end": "2026-01-11T00:00:00Z", "limit": 100}


async def seeded_two_tenants(chdb_endpoint: str, database: str) -> None:
    specs = hand_built_specs(time.time_ns())
    default = build_batch(specs)
    shop = build_batch(specs[:4])  # trace A again, with the same ids, as tenant shop's
    shop.tenant = "shop"
    await seed(chdb_endpoint, database, [default, shop])


def usage_tokens(client: Any, database: str, tenant: str) -> int:
    rows = client.query(f"SELECT sum(InputTokens) FROM {database}.otel_traces_genai_usage_1m "
                        "WHERE Tenant = {t:String}", parameters={"t": tenant}).result_rows
    return int(rows[0][0] or 0)


def add_scores(client: Any, database: str) -> None:
    """A score on trace A and one on trace B for the default tenant, one on trace A for shop."""
    at = datetime.fromtimestamp((T0 + NS) / NS, UTC)
    for tenant, trace, sid in (("", TRACE_A, "a"), ("", TRACE_B, "b"), ("shop", TRACE_A, "shop-a")):
        insert_scores(client, f"{database}.otel_traces_scores", tenant, [
            {"ScoreId": sid, "TraceId": trace, "Name": "helpfulness", "DataType": "numeric", "NumericValue": 1.0,
             "StringValue": "", "Timestamp": at}])


def live_scores(client: Any, database: str) -> set[tuple[str, str]]:
    rows = client.query(f"SELECT Tenant, ScoreId FROM {database}.otel_traces_scores FINAL WHERE NOT Deleted").result_rows
    return {(r[0], r[1]) for r in rows}


async def test_deleting_a_trace_removes_its_spans_and_its_part_of_every_rollup(
        chdb_endpoint: str, database: str) -> None:
    await seeded_two_tenants(chdb_endpoint, database)
    client = open_client(chdb_endpoint)
    store = make_store(chdb_endpoint, database)
    add_scores(client, database)
    try:
        assert usage_tokens(client, database, "") == 160 and usage_tokens(client, database, "shop") == 150
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(store, FakeHost())),
                                     base_url="http://q") as api:
            deleted = await api.delete(f"/api/v1/traces/{TRACE_A.upper()}")
            assert deleted.status_code == 200, deleted.text
            assert deleted.json() == {"trace_id": TRACE_A, "deleted_spans": 4}
            assert (await api.get(f"/api/v1/traces/{TRACE_A}")).status_code == 404
            listed = [t["trace_id"] for t in (await api.get("/api/v1/traces", params=DAY)).json()["traces"]]
            assert TRACE_A not in listed and TRACE_B in listed
            sessions = (await api.get("/api/v1/sessions", params={"start": DAY["start"], "end": DAY["end"]})).json()
            assert sessions["sessions"] == []  # trace A was session sess-1's only turn
            prompt = await api.get("/api/v1/prompts/checkout-helper")
            assert prompt.status_code == 200  # the registry keeps the template ...
            assert all(v["usage"]["requests"] == 0 for v in prompt.json()["versions"])  # ... not the use
            again = await api.delete(f"/api/v1/traces/{TRACE_A}")
            assert again.status_code == 404 and again.json()["error"]["message"] == f"trace {TRACE_A} not found"
            assert (await api.delete("/api/v1/traces/not-a-trace")).status_code == 400
        # every rollup equals what the remaining raw spans give; the other tenant's twin is whole
        assert_rollups_match_spans(client, database)
        assert usage_tokens(client, database, "") == 10 and usage_tokens(client, database, "shop") == 150
        shop = await store.trace_spans(TRACE_A, tenant="shop")
        assert len(shop) == 4
        assert live_scores(client, database) == {("", "b"), ("shop", "shop-a")}, "the trace's scores went with it"
    finally:
        await store.close()
        client.close()


async def test_a_tenant_s_retention_deletes_only_its_old_data(chdb_endpoint: str, database: str) -> None:
    await seeded_two_tenants(chdb_endpoint, database)
    client = open_client(chdb_endpoint)
    store = make_store(chdb_endpoint, database)
    try:
        # Keep the default tenant's data from T0 + 5 s on: trace A (T0 .. T0 + 2.5 s) goes,
        # trace B (T0 + 10 s) and the orphan (T0 + 20 s) stay; shop keeps everything.
        add_scores(client, database)  # made at T0 + 1 s
        await store.expire("", datetime.fromtimestamp((T0 + 5 * NS) / NS, UTC))
        assert live_scores(client, database) == {("shop", "shop-a")}, "the tenant's old scores too"
        left = {r[0] for r in client.query(f"SELECT DISTINCT TraceId FROM {database}.otel_traces "
                                           "WHERE Tenant = ''").result_rows}
        assert TRACE_A not in left and TRACE_B in left
        assert len(await store.trace_spans(TRACE_A, tenant="shop")) == 4
        rollup = client.query(f"SELECT Tenant, count() FROM {database}.otel_traces_trace_rollup "
                              f"WHERE TraceId = '{TRACE_A}' GROUP BY Tenant").result_rows
        assert rollup == [("shop", 1)]
    finally:
        await store.close()
        client.close()


@pytest.mark.parametrize("tenants", [{"shop": "0s"}, {"shop": "-1h"}])
def test_a_retention_must_be_positive(tenants: dict[str, str]) -> None:
    from tracehouse.core.config import load_config_dict
    from tracehouse.core.errors import ConfigError

    with pytest.raises(ConfigError, match="retention"):
        load_config_dict({"extensions": {"query_api": {"retention": {"tenants": tenants}}},
                          "service": {"extensions": ["query_api"], "pipelines": {}}})


async def test_the_query_service_applies_each_tenant_s_retention_on_its_own(
        chdb_endpoint: str, database: str) -> None:
    import asyncio

    from tracehouse.core.component import ComponentID, Kind, Settings
    from tracehouse.core.testing import TestHost
    from tracehouse.query.config import QueryApiConfig
    from tracehouse.query.extension import QueryApiExtension

    await seeded_two_tenants(chdb_endpoint, database)
    config = QueryApiConfig.model_validate({
        "endpoint": "127.0.0.1:0", "clickhouse": {"endpoint": chdb_endpoint, "database": database},
        "retention": {"tenants": {"default": "24h"}, "check_interval": "50ms"}})
    extension = QueryApiExtension(Settings(ComponentID("query_api"), Kind.EXTENSION), config)
    client = open_client(chdb_endpoint)
    await extension.start(TestHost())
    try:
        for _ in range(100):  # everything of the default tenant is from 2026-01-10 except one recent trace
            tenants = dict(client.query(f"SELECT Tenant, count() FROM {database}.otel_traces "
                                        "GROUP BY Tenant").result_rows)
            if tenants.get("", 0) == 1:
                break
            await asyncio.sleep(0.1)
        assert tenants == {"": 1, "shop": 4}  # the recent trace (TRACE_RECENT) and all of shop's
    finally:
        await extension.shutdown()
        client.close()
