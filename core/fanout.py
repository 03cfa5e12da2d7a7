"""Fan one stream out to several consumers, as the Collector's fanoutconsumer does."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from typing import Any

from tracehouse.core.component import mutates_data
from tracehouse.core.errors import PermanentError, PipelineError, RetryableError
from tracehouse.core.pdata import OtlpBatch


class Fanout:
    """Sends each batch to every consumer and succeeds only if all of them did.

    Every consumer gets the same items and the same enrichment (GenAI columns, origin,
    deadline). As in the Collector, consumers that only read share the batch, and each
    consumer that declares it mutates data gets its own clone, except that when nobody
    only reads, the last mutating consumer gets the original. If branches fail, a
    permanent error wins over a retryable one: retrying would redeliver to the branches
    that succeeded and cannot help the one that refused.
    """

    mutates_data = False  # it clones for the consumers that do

    def __init__(self, consumers: Sequence[Any]):
        if not consumers:
            raise ValueError("a fanout needs at least one consumer")
        self._consumers = list(consumers)
        self._mutating = [mutates_data(c) for c in self._consumers]
        # Who may take the original: the readers, or (with no readers) the last mutator.
        self._original_to_last_mutator = all(self._mutating)

    async def consume(self, batch: OtlpBatch[Any]) -> None:
        last = len(self._consumers) - 1
        batches = [
            batch.clone() if mutating and not (self._original_to_last_mutator and i == last) else batch
            for i, mutating in enumerate(self._mutating)
        ]
        results = await asyncio.gather(
            *(c.consume(b) for c, b in zip(self._consumers, batches, strict=True)),
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


TracesFanout = Fanout  # the name from before logs and metrics


def fanout(consumers: Sequence[Any]) -> Any:
    """One consumer for several (of one signal): the consumer itself when it is alone."""
    return consumers[0] if len(consumers) == 1 else Fanout(consumers)
