"""The `kafka` exporter's sending queue: the write-ahead directory on its own, and the
exporter riding out broker outages and restarts with it (real broker behind a proxy)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kafka_testing import (
    ProxiedBroker,
    exporter_config,
    metric,
    new_topic,
    parse,
    proxied_tansu,
    read_topic,
    running,
    span_ids,
    span_prints,
    traffic,
    wait_for,
)
from tracehouse.core.component import Status
from tracehouse.core.errors import PayloadTooLargeError, PermanentError, RetryableError
from tracehouse.core.pdata import TraceBatch
from tracehouse.core.exporterhelper.queue import CorruptEntryError, DiskQueue, QueueFullError


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[ProxiedBroker]:
    with proxied_tansu(tmp_path) as broker:
        yield broker


def wal_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*.wal"))


def queue(directory: Path, max_spans: int = 1000, max_bytes: int = 2**20, sizes: list[int] | None = None) -> DiskQueue:
    return DiskQueue(directory, max_spans=max_spans, max_bytes=max_bytes,
                     on_change=(sizes.append if sizes is not None else lambda _: None))


# ---------------------------------------------------------------------------- the directory alone


async def test_entries_survive_a_restart_in_order(tmp_path: Path) -> None:
    sizes: list[int] = []
    q = queue(tmp_path, sizes=sizes)
    assert (await q.open()).entries == 0
    for i in range(3):
        await q.put(f"payload-{i}".encode(), span_count=i + 1)
    assert wal_files(tmp_path) == [f"{i:020d}-{i + 1}.wal" for i in range(3)]
    assert not list(tmp_path.glob("*.tmp"))
    assert sizes[-1] == 6 and q.entries == 3
    first = await q.get()
    assert await q.read(first) == b"payload-0"
    await q.remove(first)
    assert sizes[-1] == 5 and await q.close() == 2

    again = queue(tmp_path)
    recovery = await again.open()
    assert (recovery.entries, recovery.spans) == (2, 5)
    assert [await again.read(await again.get()) for _ in range(2)] == [b"payload-1", b"payload-2"]
    await again.put(b"later", 1)
    assert wal_files(tmp_path)[-1] == f"{3:020d}-1.wal", "sequence numbers continue after a restart"
    await again.close()


async def test_a_partial_write_is_ignored_and_corruption_detected(tmp_path: Path) -> None:
    q = queue(tmp_path)
    await q.open()
    for i in range(4):
        await q.put(b"x" * 100 + bytes([i]), 2)
    await q.close()
    names = wal_files(tmp_path)
    (tmp_path / f"{9:020d}-5.wal.tmp").write_bytes(b"crash mid-write")  # never renamed: never acknowledged
    flipped = bytearray((tmp_path / names[0]).read_bytes())
    flipped[-1] ^= 0xFF
    (tmp_path / names[0]).write_bytes(bytes(flipped))
    (tmp_path / names[1]).write_bytes((tmp_path / names[1]).read_bytes()[:-10])
    (tmp_path / names[2]).write_bytes(b"garbage")
    (tmp_path / "notes.txt").write_text("not ours")

    q = queue(tmp_path)
    recovery = await q.open()
    assert (recovery.entries, recovery.spans, recovery.partial_writes_removed) == (4, 8, 1)
    assert recovery.unknown_files == ["notes.txt"]
    assert not list(tmp_path.glob("*.tmp"))
    errors = []
    for _ in range(3):
        with pytest.raises(CorruptEntryError) as err:
            await q.read(await q.get())
        errors.append(str(err.value))
    assert errors == ["payload checksum mismatch", "payload is 91 bytes, header says 101",
                      "7 bytes, shorter than the header"]
    assert await q.read(await q.get()) == b"x" * 100 + bytes([3])
    await q.close()


async def test_capacity_is_enforced_in_spans_and_bytes(tmp_path: Path) -> None:
    q = queue(tmp_path, max_spans=10, max_bytes=1000)
    await q.open()
    await q.put(b"a", 6)
    with pytest.raises(QueueFullError) as full:
        await q.put(b"b", 5)
    assert full.value.overload and full.value.retry_after
    await q.put(b"c" * 800, 1)
    with pytest.raises(QueueFullError, match="MiB"):
        await q.put(b"d" * 200, 1)
    with pytest.raises(PayloadTooLargeError):
        await q.put(b"e", 11)
    assert (q.spans, q.entries) == (7, 2)
    await q.close()


async def test_one_directory_serves_one_queue(tmp_path: Path) -> None:
    first = queue(tmp_path)
    await first.open()
    with pytest.raises(RuntimeError, match="in use by another exporter"):
        await queue(tmp_path).open()
    await first.close()
    second = queue(tmp_path)
    await second.open()  # free again once the first closed
    await second.close()


# ---------------------------------------------------------------------------- with the exporter


@pytest.mark.integration
async def test_acked_while_the_broker_is_down_and_delivered_after_a_restart(proxied: ProxiedBroker,
                                                                            tmp_path: Path) -> None:
    storage = tmp_path / "queue"
    topic = new_topic()
    config = exporter_config(proxied.bootstrap, topic, sending_queue={"storage": str(storage)})
    batches = traffic(requests=3)
    async with running(config) as (exporter, host):
        proxied.cut()
        for batch in batches:
            t0 = time.monotonic()
            await exporter.consume(batch)  # acknowledged: fsynced on disk
            assert time.monotonic() - t0 < 1.0
        assert len(wal_files(storage)) == 3
        assert metric(host, "tracehouse_exporter_queue_size") == sum(b.span_count for b in batches)
        # The replayer is trying meanwhile, and failing (each attempt waits `timeout` for acks).
        await wait_for(lambda: "exporter/kafka" in host.status, 5, "a status report")
        assert host.status["exporter/kafka"][0] is Status.RECOVERABLE_ERROR
    assert len(wal_files(storage)) == 3, "unsent entries stay on disk at shutdown"
    (storage / f"{99:020d}-4.wal.tmp").write_bytes(b"half a batch")  # a crash mid-write

    async with running(config, connect=False) as (restarted, host):  # a new process on the same directory
        assert restarted.queued_items == sum(b.span_count for b in batches)
        proxied.restore()
        await wait_for(lambda: restarted.queued_items == 0, 15, "the queue to drain")
        assert metric(host, "tracehouse_exporter_queue_size") == 0
        assert metric(host, "tracehouse_exporter_sent_spans_total") == sum(b.span_count for b in batches)
    assert wal_files(storage) == [] and not list(storage.glob("*.tmp"))
    records = await read_topic(proxied.bootstrap, topic)
    assert span_prints(parse(r.value) for r in records) == span_prints(b.request for b in batches)


@pytest.mark.integration
async def test_a_corrupt_entry_is_counted_and_skipped(proxied: ProxiedBroker, tmp_path: Path) -> None:
    storage = tmp_path / "queue"
    good, bad, later = traffic(requests=3)
    q = queue(storage, max_spans=100_000, max_bytes=2**30)
    await q.open()
    for batch in (good, bad):
        await q.put(batch.to_bytes(), batch.span_count)
    await q.close()
    bad_file = storage / wal_files(storage)[1]
    content = bytearray(bad_file.read_bytes())
    content[40] ^= 0x55
    bad_file.write_bytes(bytes(content))

    topic = new_topic()
    async with running(exporter_config(proxied.bootstrap, topic, sending_queue={"storage": str(storage)})) as (
            exporter, host):
        await wait_for(lambda: exporter.queued_items == 0, 10, "the queue to drain")
        assert metric(host, "tracehouse_exporter_dropped_spans_total",
                      reason="corrupt_queue_entry") == bad.span_count
        assert (storage / "corrupt" / bad_file.name).exists(), "moved aside for inspection"
        await exporter.consume(later)  # still working
        await wait_for(lambda: exporter.queued_items == 0, 10, "the queue to drain")
    records = await read_topic(proxied.bootstrap, topic)
    assert span_prints(parse(r.value) for r in records) == span_prints([good.request, later.request])


@pytest.mark.integration
async def test_a_batch_kafka_can_never_take_is_dropped_and_counted(proxied: ProxiedBroker, tmp_path: Path) -> None:
    """Queued under a larger max_message_bytes; the restarted exporter's limit is smaller."""
    storage = tmp_path / "queue"
    fits = traffic(traces=2, requests=1)[0]
    huge_span = traffic(traces=1, spans_per_trace=1, requests=1, run=5, attr_bytes=20_000)[0]
    q = queue(storage, max_spans=100_000, max_bytes=2**30)
    await q.open()
    for batch in (huge_span, fits):
        await q.put(batch.to_bytes(), batch.span_count)
    await q.close()
    topic = new_topic()
    config = exporter_config(proxied.bootstrap, topic, sending_queue={"storage": str(storage)},
                             producer={"max_message_bytes": 10_000})
    async with running(config) as (exporter, host):
        await wait_for(lambda: exporter.queued_items == 0, 10, "the queue to drain")
        assert metric(host, "tracehouse_exporter_dropped_spans_total", reason="rejected") == 1
        assert metric(host, "tracehouse_exporter_sent_spans_total") == fits.span_count
        with pytest.raises(PermanentError, match="max_message_bytes"):
            await exporter.consume(huge_span)  # a new one is refused before it is acknowledged
        assert metric(host, "tracehouse_exporter_send_failed_spans_total") == 2  # 1 dropped + 1 refused
    assert wal_files(storage) == []
    records = await read_topic(proxied.bootstrap, topic)
    assert span_prints(parse(r.value) for r in records) == span_prints([fits.request])


@pytest.mark.integration
async def test_a_full_persistent_queue_refuses_with_overload(proxied: ProxiedBroker, tmp_path: Path) -> None:
    storage = tmp_path / "queue"
    config = exporter_config(proxied.bootstrap, new_topic(),
                             sending_queue={"storage": str(storage), "queue_size": 25, "max_storage_mib": 1})
    async with running(config) as (exporter, host):
        proxied.cut()
        batches = traffic(traces=10, spans_per_trace=4, requests=4, run=1)  # 10 spans each
        await exporter.consume(batches[0])
        await exporter.consume(batches[1])
        spans = batches[0].span_count + batches[1].span_count
        assert spans == 20 and batches[2].span_count == 10
        with pytest.raises(RetryableError) as err:
            await exporter.consume(batches[2])
        assert err.value.overload
        assert metric(host, "tracehouse_exporter_enqueue_failed_spans_total") == batches[2].span_count
        assert metric(host, "tracehouse_exporter_queue_size") == spans
        assert metric(host, "tracehouse_exporter_queue_capacity") == 25

        big = traffic(traces=2, spans_per_trace=2, requests=1, run=2, attr_bytes=400_000)[0]  # ~1.6 MB
        with pytest.raises(PayloadTooLargeError, match="max_storage_mib 1"):
            await exporter.consume(big)
        half = traffic(traces=1, spans_per_trace=2, requests=1, run=3, attr_bytes=300_000)[0]  # ~0.6 MB
        await exporter.consume(half)
        with pytest.raises(RetryableError, match="MiB") as err:
            await exporter.consume(half)
        assert err.value.overload
        assert len(wal_files(storage)) == 3


async def _client_through_outage(exporter: object, proxied: ProxiedBroker,
                                 seconds: float) -> tuple[list[TraceBatch], list[TraceBatch], int]:
    """A client sending a new batch as soon as the last was answered, while the broker is
    cut and restored. Returns (acknowledged, attempted, refused count)."""
    acked: list[TraceBatch] = []
    attempted: list[TraceBatch] = []
    refused = 0
    start = time.monotonic()

    async def outage() -> None:
        await asyncio.sleep(seconds * 0.25)
        proxied.cut()
        await asyncio.sleep(seconds * 0.4)
        proxied.restore()

    schedule = asyncio.create_task(outage())
    run = 100
    while time.monotonic() - start < seconds:
        run += 1
        batch = traffic(traces=3, spans_per_trace=2, requests=1, run=run)[0]
        attempted.append(batch)
        batch.deadline = time.monotonic() + 0.8  # the client's, as the receiver stamps it
        try:
            await exporter.consume(batch)  # type: ignore[attr-defined]
        except RetryableError:
            refused += 1
            await asyncio.sleep(0.05)
            continue
        acked.append(batch)
        await asyncio.sleep(0.01)
    await schedule
    return acked, attempted, refused


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["memory", "disk"])
async def test_every_acknowledged_batch_survives_an_outage(proxied: ProxiedBroker, tmp_path: Path,
                                                           mode: str) -> None:
    topic = new_topic()
    storage = str(tmp_path / "queue") if mode == "disk" else ""
    config = exporter_config(proxied.bootstrap, topic, sending_queue={"storage": storage},
                             timeout="500ms")
    async with running(config) as (exporter, host):
        acked, attempted, refused = await _client_through_outage(exporter, proxied, seconds=4.0)
        await wait_for(lambda: exporter.queued_items == 0, 15, "the queue to drain")
        assert host.status["exporter/kafka"][0] is Status.OK
    if mode == "memory":
        assert refused > 0, "the outage was real: consume() refused while Kafka could not ack"
    else:
        assert refused == 0, "the disk queue acknowledges through the outage"
    assert len(acked) > 20
    records = await read_topic(proxied.bootstrap, topic)
    got = span_ids(parse(r.value) for r in records)
    assert span_ids(b.request for b in acked) <= got, "every acknowledged span is in Kafka"
    assert got <= span_ids(b.request for b in attempted)
    if mode == "disk":
        # Exactly what was acknowledged, each span once or (after a lost ack) more often.
        assert got == span_ids(b.request for b in acked)
    assert os.path.isdir(storage) or mode == "memory"
