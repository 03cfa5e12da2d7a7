"""Fan one stream out to several consumers, as the Collector's fanoutconsumer does."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from tracehouse.core.component import TracesConsumer
from tracehouse.core.errors import PermanentError, PipelineError, RetryableError
from tracehouse.core.pdata import TraceBatch


class TracesFanout:
    """Sends each batch to every consumer and succeeds only if all of them did.

    Consumers may change the batch they get, so every branch but the last receives its
    own copy. If branches fail, a permanent error wins over a retryable one: retrying
    would redeliver to the branches that succeeded and cannot help the one that refused.
    """

    def __init__(self, consumers: Sequence[TracesConsumer]):
        if not consumers:
            raise ValueError("a fanout needs at least one consumer")
        self._consumers = list(consumers)

    async def consume(self, batch: TraceBatch) -> None:
        copies = [TraceBatch.from_bytes(batch.to_bytes()) for _ in self._consumers[1:]]
        results = await asyncio.gather(
            *(c.consume(b) for c, b in zip(self._consumers, [*copies, batch], strict=True)),
            return_exceptions=True,
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if not errors:
            return
        for err in errors:
            if isinstance(err, PermanentError):
                raise err
        for err in errors:
            if isinstance(err, RetryableError):
                raise err
        first = errors[0]
        if isinstance(first, PipelineError) or not isinstance(first, Exception):
            raise first
        raise RetryableError(f"a pipeline failed: {first}") from first


def fanout(consumers: Sequence[TracesConsumer]) -> TracesConsumer:
    return consumers[0] if len(consumers) == 1 else TracesFanout(consumers)
