"""The Kafka shape as real processes: app (OTel SDK) -> sidecar -> Kafka -> writer -> ClickHouse -> query.

Every process is `tracehouse run --config deploy/config/<mode>.yaml`; the broker is a real
Kafka-protocol broker (tansu; Apache Kafka where Docker runs), ClickHouse the real engine
(chDB) in the writer's process.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from allinone import CONFIGS
from generated_traffic import span_ids_of, traffic_bodies
from genai_app import TEMPLATE_V1, TEMPLATE_V2, chat, chat_span, gpt4o_cost, send, wait_for_traces
from kafka_testing import proxied_tansu, read_topic
from kafka_stack import (derived_config, kafka_env, sidecar, stored_rollup_mismatches, stored_span_rows, with_query_api,
                         writer)
from ports import free_port

pytestmark = pytest.mark.integration


def test_sdk_spans_flow_sidecar_kafka_writer_and_the_query_service_alone_reads_them(
        tmp_path: Path, kafka_bootstrap: str) -> None:
    topic = f"spans-{uuid.uuid4().hex[:8]}"
    env = kafka_env(kafka_bootstrap, topic, group=f"writers-{topic}")
    writer_config = derived_config(tmp_path, "writer", with_query_api)
    store = writer(tmp_path / "writer", env, writer_config, probe="query").start()
    edge = sidecar(tmp_path / "sidecar", env).start()
    try:
        ids = send(edge.otlp_http, [
            {"name": "first", "session": "s-1", "chat": chat(TEMPLATE_V1, (120, 100, 30))},
            {"name": "reworded", "session": "s-1", "chat": chat(TEMPLATE_V2, (80, 0, 20))},
            {"name": "no-usage", "session": "s-2", "chat": chat(None)},
            {"name": "failed", "session": "s-3", "chat": chat(TEMPLATE_V2), "error": True},
        ])
        traces = wait_for_traces(store.query, ids, timeout=60)
        first = chat_span(traces["first"])["genai"]
        assert first["provider"] == "openai" and first["request_model"] == "gpt-4o"
        assert (first["input_tokens"], first["cached_input_tokens"], first["output_tokens"]) == (120, 100, 30)
        assert Decimal(str(first["total_cost_usd"])) == gpt4o_cost(120, 100, 30)
        # Traces go to partitions by trace id and partitions are written independently, so
        # which template is registered first (version 1) is not the send order here.
        reworded = chat_span(traces["reworded"])["genai"]
        assert first["prompt_name"] == reworded["prompt_name"] == "wardrobe"
        versions = {TEMPLATE_V1: first["prompt_version"], TEMPLATE_V2: reworded["prompt_version"]}
        assert sorted(versions.values()) == ["1", "2"]
        estimated = chat_span(traces["no-usage"])["genai"]
        assert estimated["tokens_estimated"] is True and estimated["input_tokens"] > 0
        assert edge.metric("tracehouse_exporter_sent_spans_total") == 2 * len(ids)
    finally:
        edge.stop()
        assert store.stop() == 0, store.log_tail()

    rows = stored_span_rows(store.data_dir)
    assert len(rows) == 2 * len(ids) and len(set(rows)) == len(rows), "every span exactly once"
    assert {t for t, _ in rows} == set(ids.values())

    # The query service alone, over the data the writer left (query.yaml: no pipeline at all).
    query = writer(tmp_path / "writer", {"TRACEHOUSE_CLICKHOUSE_DSN": f"chdb://{store.data_dir}"},
                   config=CONFIGS / "query.yaml", probe="query").start()
    try:
        detail = httpx.get(f"{query.query}/api/v1/traces/{ids['first']}", timeout=10)
        assert detail.status_code == 200 and len(detail.json()["spans"]) == 2
        prompts = httpx.get(f"{query.query}/api/v1/prompts/wardrobe", timeout=10).json()
        assert {v["template"]: v["version"] for v in prompts["versions"]} == versions
    finally:
        assert query.stop() == 0, query.log_tail()


async def _produce(bootstrap: str, topic: str, bodies: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False,
                                max_request_size=8 * 1024 * 1024)
    await producer.start()
    try:
        await asyncio.gather(*[await producer.send(topic, body) for body in bodies])
    finally:
        await producer.stop()


def test_writer_killed_mid_stream_and_restarted_stores_every_span_exactly_once(
        tmp_path: Path, kafka_bootstrap: str) -> None:
    _kill_writer_mid_stream_then_restart(tmp_path, kafka_bootstrap, spans=12_000)


def test_writer_killed_after_inserts_whose_commits_were_lost_replays_them_into_no_rollup_twice(
        tmp_path: Path) -> None:
    """The same crash, but certain to land between inserts and their commits: Kafka is cut
    off (a proxy in front of the broker) while the writer is inserting, so the batches in
    flight reach ClickHouse and never get their commit; the restart replays them. It cuts
    them differently (other batch limits; tansu keeps no batch plan either), so neither the
    insert deduplication token nor ClickHouse's block checksum can recognise the replay:
    only the exporter's retry gate keeps those spans out of the rollups."""
    with proxied_tansu(tmp_path) as kafka:
        skipped = _kill_writer_mid_stream_then_restart(tmp_path, kafka.bootstrap, before_kill=kafka.cut,
                                                       after_kill=kafka.restore, restart_max_spans=1500)
    assert skipped > 0, "the restart replayed batches the first writer had stored (the gate skipped them)"


def _kill_writer_mid_stream_then_restart(tmp_path: Path, bootstrap: str, before_kill: Any = None,
                                         after_kill: Any = None, restart_max_spans: int = 1000,
                                         spans: int = 30_000) -> float:
    """Kill a writer mid-stream, restart it, check every span is stored once and every rollup
    counts it once. Returns how many replayed spans the restart's retry gate skipped."""
    topic = f"crash-{uuid.uuid4().hex[:8]}"
    # The kill comes once 3,000 are stored; with Kafka cut off first, the writer may still
    # hold fetched messages, so that variant needs the whole 30,000 to stay mid-stream.
    bodies = traffic_bodies(spans=spans, spans_per_request=250, seed=7)
    expected = span_ids_of(bodies)
    asyncio.run(_produce(bootstrap, topic, bodies))

    def small_batches(max_spans: int) -> Any:
        def edit(data: dict[str, Any]) -> None:
            # Many small batches, so the kill lands between an insert and its commit sooner or later.
            data["receivers"]["kafka"]["batch"] = {"max_spans": max_spans, "timeout": "200ms"}
        return edit

    config = derived_config(tmp_path, "writer", small_batches(1000))
    env = {**kafka_env(bootstrap, topic, group=f"crash-{topic}"),
           "TRACEHOUSE_CLICKHOUSE_DSN": f"chdb://{tmp_path / 'writer' / 'data'}"}
    first = writer(tmp_path / "writer", env, config).start()
    deadline = time.monotonic() + 90
    sent = 0.0
    while time.monotonic() < deadline:
        sent = first.metric("tracehouse_exporter_sent_spans_total")
        if sent >= 3_000:
            break
        time.sleep(0.05)
    if before_kill is not None:
        before_kill()
        time.sleep(2)  # the inserts in flight finish; their commits cannot
        sent = first.metric("tracehouse_exporter_sent_spans_total")
    first.kill()
    assert 0 < sent < len(expected), f"the kill must land mid-stream (sent {sent} of {len(expected)})"
    if after_kill is not None:
        after_kill()

    second = writer(tmp_path / "writer", env, derived_config(tmp_path, "writer", small_batches(restart_max_spans))).start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        consumed = second.metric('tracehouse_kafka_receiver_messages_total')
        lag = second.metric("tracehouse_kafka_receiver_offset_lag")
        if consumed > 0 and lag == 0:
            break
        time.sleep(0.2)
    skipped = second.metric("tracehouse_exporter_duplicate_spans_total")
    assert second.stop() == 0, second.log_tail()

    rows = stored_span_rows(second.data_dir)
    duplicates = [key for key, n in Counter(rows).items() if n > 1]
    assert not duplicates, f"{len(duplicates)} spans stored twice, e.g. {duplicates[:3]}"
    assert set(rows) == expected, f"missing {len(expected - set(rows))} spans"
    # A span inserted twice vanishes from the raw rows once a background merge collapses it
    # (ReplacingMergeTree), but the materialized views summed it twice: every rollup must
    # equal what the distinct stored spans give.
    problems = stored_rollup_mismatches(second.data_dir)
    assert not problems, (f"rollups count some spans twice (or miss some); the restart's gate skipped {skipped:.0f} "
                          "spans as already stored:\n" + "\n".join(problems))
    return skipped


def test_sidecar_memory_stays_bounded_and_clients_get_retryable_errors_while_kafka_is_unreachable(
        tmp_path: Path) -> None:
    # Nothing listens on this port: Kafka is down for the whole test.
    env = kafka_env(f"127.0.0.1:{free_port()}", "unreachable")
    edge = sidecar(tmp_path / "sidecar", env).start()
    try:
        maps = edge.mapped_files()
        assert "chdb" not in maps and "bpe_openai" not in maps, "the sidecar must not load ClickHouse or the tokenizer"
        idle = edge.rss_bytes()
        bodies = traffic_bodies(spans=20_000, spans_per_request=500, seed=3)
        statuses: Counter[int] = Counter()
        retry_after: list[str] = []
        stop = time.monotonic() + 8
        lock = threading.Lock()

        def client(k: int) -> None:
            with httpx.Client(timeout=30) as http:
                i = k
                while time.monotonic() < stop:
                    r = http.post(f"{edge.otlp_http}/v1/traces", content=bodies[i % len(bodies)],
                                  headers={"Content-Type": "application/x-protobuf"})
                    with lock:
                        statuses[r.status_code] += 1
                        if "retry-after" in r.headers:
                            retry_after.append(r.headers["retry-after"])
                    i += 8

        peak = idle
        threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            peak = max(peak, edge.rss_bytes())
            time.sleep(0.1)
        for t in threads:
            t.join()
    finally:
        edge.stop()

    assert statuses and set(statuses) <= {429, 503}, f"only retryable refusals while Kafka is down: {statuses}"
    assert len(retry_after) == sum(statuses.values()), "every refusal tells the client when to come back"
    growth = peak - idle
    assert growth < 150 * 2**20, f"RSS grew {growth / 2**20:.0f} MiB under load with Kafka down (idle {idle / 2**20:.0f} MiB)"


def test_sidecar_with_disk_queue_killed_during_a_kafka_outage_delivers_every_acknowledged_span(
        tmp_path: Path) -> None:
    bodies = traffic_bodies(spans=12_000, spans_per_request=200, seed=5)
    topic = f"outage-{uuid.uuid4().hex[:8]}"
    acked: set[tuple[str, str]] = set()

    def post_all(edge: Any, batch: list[bytes]) -> Counter[int]:
        statuses: Counter[int] = Counter()
        with httpx.Client(timeout=30) as http:
            for body in batch:
                r = http.post(f"{edge.otlp_http}/v1/traces", content=body,
                              headers={"Content-Type": "application/x-protobuf"})
                statuses[r.status_code] += 1
                if r.status_code == 200:
                    acked.update(span_ids_of([body]))
        return statuses

    with proxied_tansu(tmp_path) as kafka:
        env = {**kafka_env(kafka.bootstrap, topic), "TRACEHOUSE_QUEUE_DIR": str(tmp_path / "queue")}
        edge = sidecar(tmp_path / "sidecar", env).start()
        try:
            assert post_all(edge, bodies[:10]) == {200: 10}  # Kafka up
            kafka.cut()
            during = post_all(edge, bodies[10:40])  # Kafka down: acknowledged once on local disk
            assert during == {200: 30}, during
            edge.kill()  # the pod dies during the outage, its queue on the volume
        finally:
            edge.kill()
        queued = list((tmp_path / "queue").glob("*.wal"))
        assert queued, "the acknowledged requests must be on disk when the sidecar dies"

        restarted = sidecar(tmp_path / "sidecar", env).start()
        try:
            time.sleep(1)
            kafka.restore()
            assert post_all(restarted, bodies[40:]) == {200: len(bodies) - 40}
            deadline = time.monotonic() + 60
            delivered: set[tuple[str, str]] = set()
            while time.monotonic() < deadline and not acked <= delivered:
                records = asyncio.run(read_topic(kafka.bootstrap, topic))
                delivered = span_ids_of([r.value for r in records if r.value is not None])
                time.sleep(0.5)
        finally:
            assert restarted.stop() == 0, restarted.log_tail()
    assert acked == span_ids_of(bodies)
    missing = acked - delivered
    assert not missing, f"{len(missing)} acknowledged spans never reached Kafka"
    assert not list((tmp_path / "queue").glob("*.wal")), "delivered entries are deleted from the queue"
