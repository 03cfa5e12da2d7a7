"""The batch processor merges requests and still acknowledges each one truthfully."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from tracehouse.core.component import ComponentID, Kind, Settings
from tracehouse.core.errors import PermanentError, RetryableError
from tracehouse.core.pdata import TraceBatch
from tracehouse.core.testing import TestHost, TracesSink
from tracehouse.processors.batch.config import BatchConfig
from tracehouse.processors.batch.processor import BatchProcessor


def batch_of(n: int, name: str = "s") -> TraceBatch:
    spans = [Span(trace_id=b"\x01" * 16, span_id=(i + 1).to_bytes(8, "big"), name=name) for i in range(n)]
    req = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])])
    return TraceBatch.from_bytes(req.SerializeToString())


class PoisonAware(TracesSink):
    """Refuses permanently any batch that contains a span named 'poison'."""

    async def consume(self, batch: TraceBatch) -> None:
        if any(s.name == "poison" for _, _, s in batch.iter_spans()):
            raise PermanentError("poison span")
        await super().consume(batch)


async def started(config: BatchConfig, sink: TracesSink) -> tuple[BatchProcessor, TestHost]:
    proc = BatchProcessor(Settings(ComponentID("batch"), Kind.PROCESSOR, "traces"), config, sink)
    host = TestHost()
    await proc.start(host)
    return proc, host


async def test_requests_are_merged_until_the_size_is_reached() -> None:
    sink = TracesSink()
    proc, host = await started(BatchConfig(send_batch_size=10, group_commit=False, timeout=60), sink)
    results = await asyncio.gather(*(proc.consume(batch_of(4)) for _ in range(3)))
    assert results == [None, None, None]
    assert [b.span_count for b in sink.batches] == [12]
    assert 'trigger="size"' in host.telemetry.render().decode()
    await proc.shutdown()


async def test_a_partial_batch_is_sent_after_the_timeout() -> None:
    sink = TracesSink()
    proc, host = await started(BatchConfig(send_batch_size=1000, group_commit=False, timeout=0.05), sink)
    await asyncio.wait_for(proc.consume(batch_of(3)), 2)
    assert sink.span_count == 3
    assert 'trigger="timeout"' in host.telemetry.render().decode()
    await proc.shutdown()


async def test_callers_wait_for_the_export_of_their_batch() -> None:
    sink = TracesSink()
    sink.block()
    proc, _ = await started(BatchConfig(send_batch_size=2, group_commit=False, timeout=60), sink)
    call = asyncio.create_task(proc.consume(batch_of(2)))
    await asyncio.sleep(0.1)
    assert not call.done(), "acknowledged before the export finished"
    sink.unblock()
    await asyncio.wait_for(call, 2)
    await proc.shutdown()


async def test_an_export_failure_reaches_every_request_in_the_batch() -> None:
    sink = TracesSink(error=RetryableError("down"))
    proc, _ = await started(BatchConfig(send_batch_size=6, group_commit=False, timeout=60), sink)
    results = await asyncio.gather(*(proc.consume(batch_of(3)) for _ in range(2)), return_exceptions=True)
    assert all(isinstance(r, RetryableError) for r in results)
    await proc.shutdown()


async def test_a_poisoned_request_does_not_fail_the_requests_merged_with_it() -> None:
    sink = PoisonAware()
    proc, _ = await started(BatchConfig(send_batch_size=3, group_commit=False, timeout=60), sink)
    results = await asyncio.gather(proc.consume(batch_of(1, "a")), proc.consume(batch_of(1, "poison")),
                                   proc.consume(batch_of(1, "b")), return_exceptions=True)
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], PermanentError)
    assert sorted(s.name for b in sink.batches for _, _, s in b.iter_spans()) == ["a", "b"]
    await proc.shutdown()


async def test_max_size_splits_between_requests() -> None:
    sink = TracesSink()
    proc, _ = await started(BatchConfig(send_batch_size=5, send_batch_max_size=6, group_commit=False, timeout=0.05), sink)
    await asyncio.gather(*(proc.consume(batch_of(4)) for _ in range(3)))
    assert all(b.span_count <= 6 for b in sink.batches)
    assert sink.span_count == 12
    await proc.shutdown()


async def test_shutdown_flushes_what_is_waiting() -> None:
    sink = TracesSink()
    proc, _ = await started(BatchConfig(send_batch_size=1000, group_commit=False, timeout=60), sink)
    call = asyncio.create_task(proc.consume(batch_of(7)))
    await asyncio.sleep(0.05)
    await proc.shutdown()
    await asyncio.wait_for(call, 2)
    assert sink.span_count == 7
    with pytest.raises(RetryableError):
        await proc.consume(batch_of(1))


async def test_a_caller_that_goes_away_does_not_cancel_the_export_for_others() -> None:
    sink = TracesSink()
    sink.block()
    proc, _ = await started(BatchConfig(send_batch_size=4, group_commit=False, timeout=60), sink)
    impatient = asyncio.create_task(proc.consume(batch_of(2)))
    patient = asyncio.create_task(proc.consume(batch_of(2)))
    await asyncio.sleep(0.05)
    impatient.cancel()
    sink.unblock()
    await asyncio.wait_for(patient, 2)
    assert sink.span_count == 4
    await proc.shutdown()


def test_config_rejects_inconsistent_sizes() -> None:
    with pytest.raises(ValueError, match="send_batch_max_size"):
        BatchConfig(send_batch_size=100, send_batch_max_size=10)


async def test_a_merged_batch_carries_the_earliest_deadline_of_its_requests() -> None:
    """Exporters stop retrying before the batch's deadline: the most impatient client waiting
    on the merge must still hear back in time, whichever request happened to flush it."""
    import time

    sink = TracesSink()
    proc, _ = await started(BatchConfig(send_batch_size=9, group_commit=False, timeout=60), sink)
    now = time.monotonic()
    patient, impatient, flusher = batch_of(3, "a"), batch_of(3, "b"), batch_of(3, "c")
    patient.deadline, impatient.deadline, flusher.deadline = now + 30, now + 2, now + 20
    await asyncio.gather(proc.consume(patient), proc.consume(impatient), proc.consume(flusher))
    assert [b.deadline for b in sink.batches] == [now + 2]
    await proc.shutdown()


async def test_tenants_are_batched_apart_and_each_batch_is_one_tenant_s() -> None:
    sink = TracesSink()
    proc, _ = await started(BatchConfig(send_batch_size=6, group_commit=False, timeout=0.05), sink)
    requests = []
    for tenant, n in (("shop", 4), ("lab", 3), ("shop", 2), ("", 1)):
        batch = batch_of(n)
        batch.tenant = tenant
        requests.append(proc.consume(batch))
    await asyncio.gather(*requests)
    await proc.shutdown()
    assert sorted((b.tenant, b.span_count) for b in sink.batches) == [("", 1), ("lab", 3), ("shop", 6)]


def test_batches_of_different_tenants_cannot_be_merged() -> None:
    shop, lab = batch_of(1), batch_of(1)
    shop.tenant, lab.tenant = "shop", "lab"
    with pytest.raises(ValueError, match="different tenants"):
        TraceBatch.merge([shop, lab])
    assert TraceBatch.merge([shop, shop.clone()]).tenant == "shop"


# ------------------------------------------------------------------------------ group commit


class GatedSink(TracesSink):
    """Holds each export until the test opens the gate, so requests arrive while it is in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.started = asyncio.Event()

    async def consume(self, batch: TraceBatch) -> None:
        self.started.set()
        await self.gate.wait()
        await super().consume(batch)


async def test_with_group_commit_a_request_to_an_idle_exporter_is_sent_at_once() -> None:
    sink = TracesSink()
    # A timer of a minute and a size never reached: only group commit can send it.
    proc, host = await started(BatchConfig(send_batch_size=1000, timeout=60), sink)
    await asyncio.wait_for(proc.consume(batch_of(3)), 2)
    assert [b.span_count for b in sink.batches] == [3]
    assert 'trigger="idle"' in host.telemetry.render().decode()
    await proc.shutdown()


async def test_with_group_commit_requests_that_arrive_during_an_export_go_together_when_it_ends() -> None:
    sink = GatedSink()
    proc, _ = await started(BatchConfig(send_batch_size=1000, timeout=60), sink)
    first = asyncio.create_task(proc.consume(batch_of(2)))
    await asyncio.wait_for(sink.started.wait(), 2)
    waiting = [asyncio.create_task(proc.consume(batch_of(n))) for n in (3, 4, 5)]
    await asyncio.sleep(0.05)
    assert sink.batches == [] and not any(t.done() for t in waiting)  # nothing sent beside the one in flight
    sink.gate.set()
    await asyncio.wait_for(asyncio.gather(first, *waiting), 2)
    assert [b.span_count for b in sink.batches] == [2, 12]
    await proc.shutdown()


async def test_with_group_commit_what_waits_is_bounded_by_the_max_size() -> None:
    sink = GatedSink()
    proc, _ = await started(BatchConfig(send_batch_size=7, send_batch_max_size=7, timeout=60), sink)
    first = asyncio.create_task(proc.consume(batch_of(1)))
    await asyncio.wait_for(sink.started.wait(), 2)
    waiting = [asyncio.create_task(proc.consume(batch_of(n))) for n in (4, 4, 2)]
    await asyncio.sleep(0.05)
    sink.gate.set()
    await asyncio.wait_for(asyncio.gather(first, *waiting), 2)
    assert sorted(b.span_count for b in sink.batches) == [1, 4, 6]
    await proc.shutdown()


async def test_with_group_commit_a_full_batch_goes_without_waiting_for_the_export_in_flight() -> None:
    sink = GatedSink()
    proc, host = await started(BatchConfig(send_batch_size=5, timeout=60), sink)
    first = asyncio.create_task(proc.consume(batch_of(1)))
    await asyncio.wait_for(sink.started.wait(), 2)
    full = asyncio.create_task(proc.consume(batch_of(5)))
    await asyncio.sleep(0.05)
    assert 'trigger="size"' in host.telemetry.render().decode()
    sink.gate.set()
    await asyncio.wait_for(asyncio.gather(first, full), 2)
    assert sorted(b.span_count for b in sink.batches) == [1, 5]
    await proc.shutdown()
