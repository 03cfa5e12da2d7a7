"""The memory limiter refuses (retryably) instead of letting in-flight data grow."""

from __future__ import annotations

import asyncio

import pytest

from tracehouse.core.component import ComponentID, Kind, Settings
from tracehouse.core.errors import RetryableError
from tracehouse.core.testing import TestHost, TracesSink
from tracehouse.processors.memory_limiter.config import MemoryLimiterConfig
from tracehouse.processors.memory_limiter.processor import MemoryLimiterProcessor

from test_batch import batch_of


async def started(config: MemoryLimiterConfig, sink: TracesSink) -> tuple[MemoryLimiterProcessor, TestHost]:
    proc = MemoryLimiterProcessor(Settings(ComponentID("memory_limiter"), Kind.PROCESSOR, "traces"), config, sink)
    host = TestHost()
    await proc.start(host)
    return proc, host


async def test_requests_over_the_in_flight_span_limit_are_refused_retryably() -> None:
    sink = TracesSink()
    sink.block()
    proc, host = await started(MemoryLimiterConfig(max_in_flight_spans=10, retry_after=2), sink)
    admitted = [asyncio.create_task(proc.consume(batch_of(4))) for _ in range(2)]
    await asyncio.sleep(0.05)
    assert proc.in_flight_spans == 8
    with pytest.raises(RetryableError) as refused:
        await proc.consume(batch_of(4))
    assert refused.value.overload and refused.value.retry_after == 2
    assert "8 spans" in str(refused.value)
    assert proc.in_flight_spans == 8  # the refusal took nothing
    sink.unblock()
    await asyncio.gather(*admitted)
    assert proc.in_flight_spans == 0
    await proc.consume(batch_of(4))  # room again
    assert 'tracehouse_processor_refused_spans_total{pipeline="traces",processor="memory_limiter"} 4.0' in \
        host.telemetry.render().decode()
    await proc.shutdown()


async def test_byte_limit_applies_too() -> None:
    sink = TracesSink()
    sink.block()
    proc, _ = await started(MemoryLimiterConfig(max_in_flight_spans=10**6, max_in_flight_mib=0.0001), sink)
    first = asyncio.create_task(proc.consume(batch_of(3)))
    await asyncio.sleep(0.05)
    with pytest.raises(RetryableError, match="MiB"):
        await proc.consume(batch_of(3))
    sink.unblock()
    await first
    await proc.shutdown()


async def test_a_single_request_larger_than_the_limit_is_admitted_when_nothing_is_in_flight() -> None:
    sink = TracesSink()
    proc, _ = await started(MemoryLimiterConfig(max_in_flight_spans=2), sink)
    await proc.consume(batch_of(5))
    assert sink.span_count == 5
    await proc.shutdown()


async def test_in_flight_is_released_when_downstream_fails() -> None:
    sink = TracesSink(error=RetryableError("down"))
    proc, _ = await started(MemoryLimiterConfig(max_in_flight_spans=10), sink)
    with pytest.raises(RetryableError, match="down"):
        await proc.consume(batch_of(4))
    assert proc.in_flight_spans == 0
    await proc.shutdown()


async def test_rss_safety_net_refuses_above_the_soft_limit() -> None:
    sink = TracesSink()
    # Any Python process is above 1 MiB RSS, so the soft limit is always exceeded.
    proc, _ = await started(MemoryLimiterConfig(limit_mib=2, spike_limit_mib=1, check_interval=0.01), sink)
    await asyncio.sleep(0.1)
    with pytest.raises(RetryableError, match="process memory"):
        await proc.consume(batch_of(1))
    await proc.shutdown()
    await proc.shutdown()


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="spike_limit_mib"):
        MemoryLimiterConfig(limit_mib=100, spike_limit_mib=200)


async def test_a_caller_that_gives_up_keeps_its_reservation_until_downstream_is_done() -> None:
    sink = TracesSink()
    sink.block()
    proc, _ = await started(MemoryLimiterConfig(max_in_flight_spans=5), sink)
    caller = asyncio.create_task(proc.consume(batch_of(4)))
    await asyncio.sleep(0.05)
    caller.cancel()  # e.g. the receiver's deadline passed
    await asyncio.sleep(0.05)
    assert proc.in_flight_spans == 4, "the data is still held downstream"
    with pytest.raises(RetryableError):
        await proc.consume(batch_of(4))
    sink.unblock()
    await asyncio.sleep(0.05)
    assert proc.in_flight_spans == 0
    await proc.shutdown()
