"""The dead-letter producer: messages the pipeline can never take, kept for inspection.

A dead letter is the original record (same key, value and headers) plus headers saying
why and where it came from. Sending is retried until the broker acknowledges it: the
source offset is committed only after that, so nothing is skipped silently. The producer
starts on the first dead letter, so a writer that never meets one never connects it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiokafka import AIOKafkaProducer

from tracehouse.net.kafka import client_kwargs
from tracehouse.core.logs import RateLimited
from tracehouse.ingest.kafka.config import KafkaReceiverConfig
from tracehouse.ingest.kafka.partition import ConsumedRecord

REASON = "tracehouse.error.reason"
ERROR = "tracehouse.error.message"
SOURCE_TOPIC = "tracehouse.source.topic"
SOURCE_PARTITION = "tracehouse.source.partition"
SOURCE_OFFSET = "tracehouse.source.offset"

_MAX_ERROR_CHARS = 1000


def dead_letter_headers(msg: ConsumedRecord, topic: str, partition: int, reason: str,
                        error: str) -> list[tuple[str, bytes]]:
    return [
        *msg.headers,
        (REASON, reason.encode()),
        (ERROR, error[:_MAX_ERROR_CHARS].encode("utf-8", "replace")),
        (SOURCE_TOPIC, topic.encode()),
        (SOURCE_PARTITION, str(partition).encode()),
        (SOURCE_OFFSET, str(msg.offset).encode()),
    ]


class DeadLetterQueue:
    def __init__(self, config: KafkaReceiverConfig, logger: Any):
        self.topic = config.dead_letter_topic
        self._config = config
        self._log = logger
        self._producer: AIOKafkaProducer | None = None
        self._sent_log = RateLimited()
        self._skipped_log = RateLimited()
        self._failed_log = RateLimited(10.0)

    async def send(self, msg: ConsumedRecord, topic: str, partition: int, reason: str, error: str,
                   delays: Iterator[float], sleep: Callable[[float], Awaitable[None]]) -> bool:
        """Dead-letter one message; True once the broker has it, False when no topic is set.

        `sleep` waits between attempts; it raises to abandon (revoke or shutdown)."""
        where = f"{topic}/{partition}@{msg.offset}"
        if not self.topic:
            self._skipped_log(self._log.warning, "undecodable or refused message skipped (no dead_letter_topic)",
                              reason=reason, source=where, error=error[:200])
            return False
        headers = dead_letter_headers(msg, topic, partition, reason, error)
        while True:
            try:
                producer = await self._ensure_producer()
                await producer.send_and_wait(self.topic, msg.value, key=msg.key, headers=headers)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = next(delays)
                self._failed_log(self._log.error, "dead-letter send failed; the partition waits and retries",
                                 dead_letter_topic=self.topic, source=where, error=str(exc) or type(exc).__name__,
                                 retry_in_s=round(delay, 2))
                await sleep(delay)
                continue
            self._sent_log(self._log.warning, "message sent to the dead-letter topic", reason=reason,
                           dead_letter_topic=self.topic, source=where, error=error[:200])
            return True

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer_cfg = self._config.producer
            producer = AIOKafkaProducer(
                **client_kwargs(self._config), acks="all", enable_idempotence=producer_cfg.enable_idempotence,
                compression_type=None if producer_cfg.compression == "none" else producer_cfg.compression)
            try:
                await producer.start()
            except BaseException:
                await stop_quietly(producer)
                raise
            self._producer = producer
        return self._producer

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await stop_quietly(producer)


async def stop_quietly(client: Any) -> None:
    try:
        await client.stop()
    except Exception:  # a client that never connected may fail to stop; nothing is left to release
        pass
