"""The broker fixture is a real Kafka-protocol broker: what the Kafka pipeline builds on.

OTLP request bytes produced with acks=all and compression come back intact, keyed
messages stay on one partition, and a consumer group's committed offsets are kept.
"""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from otlp_fixtures import FIXTURES
from tracehouse.core.pdata import TraceBatch

pytestmark = pytest.mark.integration


async def consume(bootstrap: str, topics: list[str], group: str,
                  count: int) -> tuple[list[ConsumerRecord[bytes, bytes]], dict[str, int]]:
    """Read `count` records as one group member, commit, and return the group's committed offsets per topic."""
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()  # joining a group takes the broker's initial rebalance delay (~5 s on tansu)
    got: list[ConsumerRecord[bytes, bytes]] = []
    committed: dict[str, int] = {}
    try:
        while len(got) < count:
            batch = await consumer.getmany(timeout_ms=5000)
            if not batch:
                break
            for records in batch.values():
                got.extend(records)
        await consumer.commit()
        for tp in consumer.assignment():
            committed[tp.topic] = committed.get(tp.topic, 0) + (await consumer.committed(tp) or 0)
    finally:
        await consumer.stop()
    return got, committed


async def test_otlp_requests_round_trip_through_the_broker(kafka_bootstrap: str) -> None:
    run = uuid.uuid4().hex[:8]
    body = (FIXTURES / "openinference" / "http-protobuf.pb").read_bytes()
    topics = {}
    for compression in (None, "gzip", "zstd", "lz4"):
        topic = topics[compression] = f"otlp_spans_{run}_{compression or 'none'}"
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", compression_type=compression)
        await producer.start()
        try:
            for i in range(20):
                await producer.send_and_wait(topic, body, key=f"trace-{i % 3}".encode())
        finally:
            await producer.stop()

    got, committed = await consume(kafka_bootstrap, list(topics.values()), f"g-{run}", 80)
    assert sorted(r.topic for r in got) == sorted(t for t in topics.values() for _ in range(20))
    spans = TraceBatch.from_bytes(body).span_count
    assert all(TraceBatch.from_bytes(r.value).span_count == spans for r in got)
    partitions: dict[tuple[str, bytes], set[int]] = {}
    for record in got:
        partitions.setdefault((record.topic, record.key), set()).add(record.partition)
    assert all(len(p) == 1 for p in partitions.values()), "one key, one partition"

    # The group committed what it read: a restarted member would resume after it.
    assert committed == {topic: 20 for topic in topics.values()}
