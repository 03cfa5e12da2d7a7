"""The exporter helper: queue -> retry -> timeout -> send, and the persistent queue's codec.

The destination here is a neighbour double (`ScriptedSender`): the helper is the unit
under test. The real exporters on the real engines are tested in tests/sinks and
tests/integration (ClickHouse down with a disk queue: test_clickhouse_disk_queue.py).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from genai_helpers import enrich
from otlp_fixtures import load_batch
from tracehouse.core.component import ComponentID, Host, Kind, Settings, Status
from tracehouse.core.errors import BadRequestError, PermanentError, RetryableError
from tracehouse.core.exporterhelper import ExporterHelperConfig, ExportRequest, Health, TracesExporter
from tracehouse.core.exporterhelper.codec import decode_batch, encode_batch
from tracehouse.core.pdata import RecordRange, TraceBatch
from tracehouse.core.testing import TestHost

GENAI_FIXTURE = "otel-genai-openai-v2/http-protobuf.pb"
FAST_RETRY = {"initial_interval": "20ms", "max_interval": "50ms", "max_elapsed_time": "10s",
              "randomization_factor": 0}


@dataclass
class ScriptedSender:
    """Answers each attempt from a script (an exception, or None for success), then succeeds."""

    script: list[Exception | None] = field(default_factory=list)
    delivered: list[TraceBatch] = field(default_factory=list)
    attempts: int = 0
    name: str = "scripted"
    mutates_data: bool = False

    async def start(self, host: Host, health: Health) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    def request(self, batch: TraceBatch) -> ExportRequest:
        sender = self

        class Attempt(ExportRequest):
            span_count = batch.span_count

            async def send(self) -> None:
                sender.attempts += 1
                outcome = sender.script.pop(0) if sender.script else None
                if outcome is not None:
                    raise outcome
                sender.delivered.append(batch)

        return Attempt()

    def check(self, batch: TraceBatch) -> None:
        return None

    async def ready(self) -> None:
        return None

    def retry_after(self) -> float | None:
        return None


def exporter(sender: ScriptedSender, **config: object) -> TracesExporter:
    cfg = ExporterHelperConfig.model_validate({"retry_on_failure": FAST_RETRY, **config})
    return TracesExporter(Settings(ComponentID("scripted"), Kind.EXPORTER), cfg, sender)


def metric(host: TestHost, name: str, **labels: str) -> float:
    return host.telemetry.registry.get_sample_value(name, {"exporter": "scripted", **labels}) or 0.0


async def enriched() -> TraceBatch:
    batch = await enrich(load_batch(GENAI_FIXTURE))
    batch.origin = RecordRange("otlp_spans", 3, 10, 19)
    return batch


# -- codec ---------------------------------------------------------------------------------

def test_a_batch_without_enrichment_is_stored_as_its_otlp_bytes() -> None:
    """So entries a sidecar queued before the codec existed still read."""
    batch = load_batch(GENAI_FIXTURE)
    assert encode_batch(batch) == batch.to_bytes()
    assert decode_batch(batch.to_bytes()).to_bytes() == batch.to_bytes()


async def test_genai_columns_and_origin_round_trip_through_the_codec() -> None:
    batch = await enriched()
    back = decode_batch(encode_batch(batch))
    assert back.to_bytes() == batch.to_bytes() and back.origin == batch.origin
    assert back.genai is not None and batch.genai is not None
    assert back.genai.to_json() == batch.genai.to_json()
    assert back.genai.total_cost_usd == batch.genai.total_cost_usd  # Decimals, exactly


async def test_a_damaged_envelope_is_refused_with_a_reason() -> None:
    data = encode_batch(await enriched())
    with pytest.raises(BadRequestError, match="truncated"):
        decode_batch(data[:20])
    with pytest.raises(BadRequestError, match="unreadable batch envelope"):
        decode_batch(data[:-5])


# -- memory queue: acknowledged means delivered ----------------------------------------------

async def test_retryable_failures_are_retried_until_the_destination_takes_the_batch() -> None:
    sender = ScriptedSender([RetryableError("down"), RetryableError("still down")])
    host, exp = TestHost(), exporter(sender)
    await exp.start(host)
    batch = load_batch(GENAI_FIXTURE)
    await exp.consume(batch)
    assert sender.attempts == 3 and sender.delivered == [batch]
    assert metric(host, "tracehouse_exporter_send_retries_total") == 2
    assert metric(host, "tracehouse_exporter_sent_spans_total") == batch.span_count
    assert host.status["exporter/scripted"][0] is Status.OK, "recovered"
    assert exp.queued_items == 0
    await exp.shutdown()


async def test_retries_stop_before_the_batch_deadline_and_the_client_is_told_to_retry() -> None:
    sender = ScriptedSender([RetryableError("down")] * 1000)
    host, exp = TestHost(), exporter(sender)
    await exp.start(host)
    batch = load_batch(GENAI_FIXTURE)
    batch.deadline = time.monotonic() + 0.5
    t0 = time.monotonic()
    with pytest.raises(RetryableError) as refused:
        await exp.consume(batch)
    assert time.monotonic() - t0 < 0.6, "answered before the client's deadline"
    assert refused.value.retry_after, "with a retry delay for the client"
    assert metric(host, "tracehouse_exporter_send_failed_spans_total") == batch.span_count
    assert host.status["exporter/scripted"][0] is Status.RECOVERABLE_ERROR
    await exp.shutdown()


async def test_a_permanent_refusal_is_not_retried() -> None:
    sender = ScriptedSender([PermanentError("never")])
    host, exp = TestHost(), exporter(sender)
    await exp.start(host)
    with pytest.raises(PermanentError):
        await exp.consume(load_batch(GENAI_FIXTURE))
    assert sender.attempts == 1 and metric(host, "tracehouse_exporter_send_retries_total") == 0
    await exp.shutdown()


async def test_an_attempt_over_the_timeout_is_cut_and_retried() -> None:
    class Slow(ScriptedSender):
        def request(self, batch: TraceBatch) -> ExportRequest:
            inner = super().request(batch)
            sender = self

            class SlowFirst(ExportRequest):
                span_count = batch.span_count

                async def send(self) -> None:
                    if sender.attempts == 0:
                        sender.attempts += 1
                        await asyncio.sleep(10)
                    await inner.send()

            return SlowFirst()

    sender = Slow()
    host, exp = TestHost(), exporter(sender, timeout="100ms")
    await exp.start(host)
    t0 = time.monotonic()
    await exp.consume(load_batch(GENAI_FIXTURE))
    assert time.monotonic() - t0 < 2 and len(sender.delivered) == 1
    await exp.shutdown()


async def test_a_full_memory_queue_refuses_as_overload() -> None:
    gate = asyncio.Event()

    class Stalled(ScriptedSender):
        def request(self, batch: TraceBatch) -> ExportRequest:
            class Wait(ExportRequest):
                span_count = batch.span_count

                async def send(self) -> None:
                    await gate.wait()

            return Wait()

    batch = load_batch(GENAI_FIXTURE)
    host, exp = TestHost(), exporter(Stalled(), sending_queue={"queue_size": batch.span_count})
    await exp.start(host)
    first = asyncio.create_task(exp.consume(load_batch(GENAI_FIXTURE)))
    await asyncio.sleep(0.05)
    with pytest.raises(RetryableError) as refused:
        await exp.consume(load_batch(GENAI_FIXTURE))
    assert refused.value.overload
    assert metric(host, "tracehouse_exporter_enqueue_failed_spans_total") == batch.span_count
    gate.set()
    await first
    await exp.shutdown()


# -- persistent queue: acknowledged means on disk, then delivered ------------------------------

async def test_the_disk_queue_acknowledges_while_the_destination_is_down_and_delivers_everything_after(
        tmp_path: Path) -> None:
    sender = ScriptedSender([RetryableError("down")] * 5)
    host, exp = TestHost(), exporter(sender, sending_queue={"storage": str(tmp_path)})
    await exp.start(host)
    sent = [await enriched() for _ in range(3)]
    for batch in sent:
        await exp.consume(batch)  # acknowledged: on disk
    deadline = time.monotonic() + 10
    while exp.queued_items and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await exp.shutdown()

    assert exp.queued_items == 0 and not list(tmp_path.glob("*.wal"))
    assert len(sender.delivered) == 3
    for got in sender.delivered:  # what the exporter's destination got is what the pipeline had
        assert got.origin == sent[0].origin and got.genai is not None
        assert got.genai.to_json() == sent[0].genai.to_json()  # type: ignore[union-attr]
    assert metric(host, "tracehouse_exporter_send_retries_total") >= 5
    assert metric(host, "tracehouse_exporter_sent_spans_total") == sum(b.span_count for b in sent)


async def test_a_queued_batch_the_destination_rejects_is_dropped_and_counted(tmp_path: Path) -> None:
    # Refused whole, then each half, down to every single span: all of them are dropped.
    sender = ScriptedSender([PermanentError("schema mismatch")] * 1000)
    host, exp = TestHost(), exporter(sender, sending_queue={"storage": str(tmp_path)})
    await exp.start(host)
    batch = await enriched()
    await exp.consume(batch)
    deadline = time.monotonic() + 5
    while exp.queued_items and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await exp.shutdown()
    assert metric(host, "tracehouse_exporter_dropped_spans_total", reason="rejected") == batch.span_count
    assert not list(tmp_path.glob("*.wal"))


class PoisonSender(ScriptedSender):
    """Refuses, permanently, any batch holding a span named "poison" (as ClickHouse refuses
    a block with one value out of its column's range)."""

    def request(self, batch: TraceBatch) -> ExportRequest:
        sender = self

        class Attempt(ExportRequest):
            span_count = batch.span_count

            async def send(self) -> None:
                sender.attempts += 1
                if any(s.name == "poison" for _, _, s in batch.iter_spans()):
                    raise PermanentError("a value cannot be stored")
                sender.delivered.append(batch)

        return Attempt()


async def test_a_queued_batch_with_one_refused_span_loses_only_that_span(tmp_path: Path) -> None:
    """A disk-queue entry is a merged batch of many requests, all acknowledged: a permanent
    refusal is bisected down to the refused span; every other span is delivered."""
    sender = PoisonSender()
    host, exp = TestHost(), exporter(sender, sending_queue={"storage": str(tmp_path)})
    await exp.start(host)
    batch = await enriched()
    spans = [s for _, _, s in batch.iter_spans()]
    assert len(spans) >= 3
    spans[len(spans) // 2].name = "poison"
    batch.mark_mutated()
    await exp.consume(batch)
    deadline = time.monotonic() + 5
    while exp.queued_items and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await exp.shutdown()
    delivered = [s.span_id for b in sender.delivered for _, _, s in b.iter_spans()]
    assert sorted(delivered) == sorted(s.span_id for s in spans if s.name != "poison")
    assert batch.genai is not None
    by_span = {s.span_id: (batch.genai.input_tokens[i], batch.genai.span_kind[i]) for i, s in enumerate(spans)}
    for part in sender.delivered:  # GenAI columns stay aligned with their spans
        assert part.genai is not None and part.genai.size == part.span_count
        for i, (_, _, s) in enumerate(part.iter_spans()):
            assert (part.genai.input_tokens[i], part.genai.span_kind[i]) == by_span[s.span_id]
    assert metric(host, "tracehouse_exporter_dropped_spans_total", reason="rejected") == 1
    assert metric(host, "tracehouse_exporter_sent_spans_total") == len(spans) - 1
    assert not list(tmp_path.glob("*.wal"))


def test_a_tenant_s_batch_keeps_its_tenant_through_the_disk_queue_codec() -> None:
    batch = load_batch(GENAI_FIXTURE)
    batch.tenant = "shop"
    back = decode_batch(encode_batch(batch))
    assert back.tenant == "shop" and back.to_bytes() == batch.to_bytes()
    batch.tenant = ""
    assert decode_batch(encode_batch(batch)).tenant == ""
