"""The Kafka exporter's producer: connects in the background with backoff, and replaces a
producer that died (fenced, closed). A broker that is not up yet never fails start-up."""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka import errors as kafka_errors

from tracehouse.core.errors import RetryableError
from tracehouse.core.logs import LogThrottle
from tracehouse.core.native import otlpwire
from tracehouse.net.kafka import client_kwargs
from tracehouse.net.tls import TlsFileError
from tracehouse.core.retry import backoff_delays
from tracehouse.sinks.kafka.config import KafkaExporterConfig

_MAX_RETRY_AFTER_S = 30.0
_LOG_EVERY_S = 30.0  # a repeated connection error is logged at most this often


def key_partition(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """aiokafka's DefaultPartitioner (the Java client's: murmur2 of the key, or a random
    available partition without one) with the hash in C: aiokafka's pure-Python murmur2
    cost ~15 µs a record, and the sidecar sends a record per trace."""
    if key is None:
        return random.choice(available or all_partitions)  # noqa: S311 -- spreading load, not secrecy
    assert otlpwire is not None
    return all_partitions[(otlpwire.murmur2(key) & 0x7FFFFFFF) % len(all_partitions)]


def producer_kwargs(config: KafkaExporterConfig) -> dict[str, Any]:
    p = config.producer
    return {
        **client_kwargs(config),
        **({"partitioner": key_partition} if otlpwire is not None else {}),
        "acks": "all" if p.required_acks == "all" else 1,
        "enable_idempotence": p.enable_idempotence,
        "compression_type": None if p.compression == "none" else p.compression,
        "max_request_size": p.max_message_bytes,
        # A partition's records share one record batch up to the message limit (franz-go's
        # default, which the Collector's kafka exporter uses), not aiokafka's 16 KB: at ~2 KB
        # a span, 16 KB batches filled with every few traces and each send then waited for
        # the sender to drain the partition.
        "max_batch_size": p.max_message_bytes,
        "linger_ms": round(p.linger * 1000),
        # Also how long aiokafka keeps retrying a batch before failing its future.
        "request_timeout_ms": max(1, round(config.timeout * 1000)),
    }


def describe(exc: BaseException) -> str:
    text = str(exc)
    name = type(exc).__name__
    return f"{name}: {text}" if text and name not in text else (text or name)


class _TLSFilesError(Exception):
    pass


class ProducerLink:
    """Owns the AIOKafkaProducer: connects in the background with backoff, and replaces a
    producer that died (fenced, closed)."""

    def __init__(self, config: KafkaExporterConfig, log: Any, on_failing: Callable[[str], None],
                 on_ok: Callable[[], None]):
        self._config = config
        self._log = log
        self._on_failing = on_failing
        self._on_ok = on_ok
        self.producer: AIOKafkaProducer | None = None
        self.error = "not connected yet"
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping: set[asyncio.Task[None]] = set()
        self._next_attempt = 0.0
        self._closed = False
        self._throttle = LogThrottle(_LOG_EVERY_S)

    def start(self) -> None:
        self._task = asyncio.create_task(self._connect(), name="kafka-exporter-connect")

    def require(self) -> AIOKafkaProducer:
        if self.producer is None:
            raise RetryableError(f"not connected to Kafka ({self.error}); reconnecting in the background")
        return self.producer

    def retry_after(self) -> float:
        return min(_MAX_RETRY_AFTER_S, max(1.0, self._next_attempt - time.monotonic()))

    async def _connect(self) -> None:
        cfg = self._config
        delays = backoff_delays(cfg.retry_on_failure, forever=True)
        while not self._closed:
            producer: AIOKafkaProducer | None = None
            try:
                # Built here too: a TLS file that is not mounted yet is retried like a broker that is down.
                producer = AIOKafkaProducer(**self._kwargs())
                # Bounded: an idempotent producer waits for its id as long as no broker answers.
                async with asyncio.timeout(max(cfg.timeout, 1.0)):
                    await producer.start()
            except asyncio.CancelledError:
                if producer is not None:
                    await _stop_quietly(producer)  # shut down while connecting
                raise
            except Exception as exc:
                bootstrapped = producer is not None and bool(producer.client.cluster.brokers())
                if producer is not None:
                    await _stop_quietly(producer)
                self.error = self._connect_error(exc, bootstrapped)
                delay = next(delays)
                self._next_attempt = time.monotonic() + delay
                self._on_failing(self.error)
                held = self._throttle.allow("connect")
                if held is not None:
                    self._log.warning("cannot connect to Kafka; retrying in the background", error=self.error,
                                      brokers=list(cfg.brokers), retry_in_s=round(delay, 2), suppressed=held)
                await asyncio.sleep(delay)
                continue
            self.producer = producer
            self.error = ""
            self.connected.set()
            self._on_ok()
            self._log.info("connected to Kafka", brokers=list(cfg.brokers))
            return

    def _kwargs(self) -> dict[str, Any]:
        try:
            return producer_kwargs(self._config)
        except TlsFileError as exc:  # names the key and the file
            raise _TLSFilesError(f"cannot load the TLS files: {exc}") from exc
        except (OSError, ssl.SSLError) as exc:
            tls = self._config.tls
            files = [f for f in (tls.ca_file, tls.cert_file, tls.key_file) if f] if tls else []
            raise _TLSFilesError(f"cannot load the TLS files {files}: {describe(exc)}") from exc

    def _connect_error(self, exc: BaseException, bootstrapped: bool) -> str:
        if isinstance(exc, _TLSFilesError):
            return str(exc)
        cfg = self._config
        if cfg.producer.enable_idempotence and bootstrapped and isinstance(exc, kafka_errors.BrokerResponseError):
            # The metadata request worked; InitProducerId is what failed.
            return (f"the broker refused an idempotent producer (InitProducerId answered {type(exc).__name__}); "
                    "set producer.enable_idempotence: false for brokers without idempotence support (e.g. tansu), "
                    "or grant this client the IdempotentWrite permission")
        if isinstance(exc, TimeoutError):
            return f"no answer from {', '.join(cfg.brokers)} within {max(cfg.timeout, 1.0)}s"
        return f"cannot connect to {', '.join(cfg.brokers)}: {describe(exc)}"

    def reset(self, producer: AIOKafkaProducer, reason: str) -> None:
        """Replace a producer that can no longer send."""
        if self._closed or self.producer is not producer:
            return
        self._log.warning("Kafka producer failed; reconnecting", error=reason)
        self.producer = None
        self.error = reason
        self.connected.clear()
        task = asyncio.create_task(_stop_bounded(producer, self._config.timeout))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)
        self._task = asyncio.create_task(self._connect(), name="kafka-exporter-connect")

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        producer, self.producer = self.producer, None
        if producer is not None:
            await _stop_bounded(producer, self._config.timeout)
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)


async def _stop_quietly(producer: AIOKafkaProducer) -> None:
    try:
        await producer.stop()
    except Exception:
        pass  # it never started; only its connections are closed here


async def _stop_bounded(producer: AIOKafkaProducer, timeout: float) -> None:
    """Flush and close. An idempotent producer retries unacknowledged batches forever, so
    after `timeout` they are failed (they are still in the caller's queue or were already
    answered as failed) and the producer closes."""
    stop = asyncio.ensure_future(producer.stop())
    done, _ = await asyncio.wait({stop}, timeout=timeout)
    if not done:
        producer._message_accumulator.fail_all(kafka_errors.KafkaError("exporter shut down before Kafka acknowledged"))
        await asyncio.wait({stop}, timeout=timeout)
    if stop.done() and not stop.cancelled():
        stop.exception()  # retrieved: a failed close has nothing left to clean up
