"""The `genai_tokens` processor: estimates token counts that LLM spans did not report.

Reported usage always wins. When an LLM call span has no input (or output) count but
carries the messages, they are counted with an offline BPE (see tokenizer.py) and the
span's `tokens_estimated` flag is set. Only LLM call spans are estimated: agent, tool,
chain and workflow spans repeat their children's messages, and counting them would
count the same tokens twice in every rollup. Nor are calls whose usage an ancestor
reports (`usage_scope` "in_aggregate", e.g. DSPy's LM calls under MLflow): an estimate
would add to usage already counted.

The work is CPU-only and synchronous, bounded per span by `max_chars_per_span`. A batch
with more than `_INLINE_CHARS` characters of messages to count is processed on a worker
thread, so the event loop keeps serving every endpoint (probes included) meanwhile; the
tokenizer counts long texts in pieces, so the thread lets the loop have the GIL between
them (tokenizer.py).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

from opentelemetry.proto.trace.v1.trace_pb2 import Status

from tracehouse.core.component import Host, Settings, TracesConsumer
from tracehouse.core.genai import GenAIColumns
from tracehouse.core.pdata import TraceBatch
from tracehouse.processors.genai_tokens import tokenizer
from tracehouse.processors.genai_tokens.config import GenAITokensConfig

# GenAI span kinds (OpenInference `LLM`, Langfuse `generation`, normalized names) and
# operations (OTel `gen_ai.operation.name`, OpenLLMetry `llm.request.type`) of a model call.
LLM_SPAN_KINDS = frozenset({"llm", "chat", "completion", "generation"})
LLM_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "response", "completion"})


# `usage_scope` of a call whose usage an ancestor span reports (see genai_normalize).
IN_AGGREGATE = "in_aggregate"

# Messages of at most this many characters per batch are counted on the event loop (well
# under a millisecond); more go to a worker thread.
_INLINE_CHARS = 16_384


@dataclass(slots=True)
class _Stats:
    input_spans: int = 0
    output_spans: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    scaled_spans: int = 0


def message_chars(cols: GenAIColumns) -> int:
    """Characters of message content a batch carries (what counting them costs)."""
    total = 0
    for column in (cols.input_messages, cols.output_messages):
        for messages in column:
            if messages:
                total += sum(len(m.content) for m in messages)
    return total


def is_llm_call(span_kind: str, operation: str) -> bool:
    """A span kind, when set, decides; with none, the operation does."""
    kind = span_kind.strip().lower()
    if kind:
        return kind in LLM_SPAN_KINDS
    return operation.strip().lower() in LLM_OPERATIONS


class TokensProcessor:
    mutates_data = True  # fills token counts in the GenAI columns

    def __init__(self, settings: Settings, config: GenAITokensConfig, next_consumer: TracesConsumer):
        self._settings = settings
        self._config = config
        self._next = next_consumer
        self._host: Host | None = None
        # Also exported as tracehouse_genai_estimated_{spans,tokens}_total{direction}.
        self.estimated_spans = 0  # spans with at least one estimated count
        self.estimated_input_spans = 0
        self.estimated_output_spans = 0
        self.estimated_input_tokens = 0
        self.estimated_output_tokens = 0
        self.scaled_spans = 0  # spans whose content exceeded max_chars_per_span (extrapolated)
        self.offloaded_batches = 0  # batches counted on a worker thread
        self._lock = threading.Lock()  # batches may be processed on several threads at once

    async def start(self, host: Host) -> None:
        # The tokenizer is not loaded here: ~125 MB that a pipeline whose clients report
        # their usage never needs. It loads with the first span to estimate (below).
        self._host = host

    async def shutdown(self) -> None:
        return None

    async def consume(self, batch: TraceBatch) -> None:
        # Large batches are counted off the event loop; so is every batch until the tokenizer
        # is loaded, since the first span to estimate loads it (~0.5-0.9 s).
        if batch.genai is not None and (message_chars(batch.genai) > _INLINE_CHARS or not tokenizer.loaded()):
            with self._lock:
                self.offloaded_batches += 1
            await asyncio.to_thread(self.process, batch)
        else:
            self.process(batch)
        await self._next.consume(batch)

    def process(self, batch: TraceBatch) -> int:
        """Fill missing token counts of `batch` in place; returns the spans estimated."""
        cols = batch.genai
        if cols is None:
            return 0
        cfg = self._config
        encodings: dict[tuple[str, str], str] = {}
        failed: list[bool] | None = None
        estimated = 0
        stats = _Stats()
        scopes = cols.usage_scope
        for i in range(cols.size):
            if not is_llm_call(cols.span_kind[i], cols.operation[i]) or scopes[i] == IN_AGGREGATE:
                continue  # a call whose usage an ancestor reports (genai_normalize) is not estimated
            want_in = cfg.estimate_input and cols.input_tokens[i] is None
            want_out = cfg.estimate_output and cols.output_tokens[i] is None
            if want_in or want_out:
                if failed is None:  # read from the protobuf only when a span needs it
                    failed = [span.status.code == Status.STATUS_CODE_ERROR for _, _, span in batch.iter_spans()]
                if i < len(failed) and failed[i]:
                    # Most failed calls (refused, rate-limited, unknown model) are not
                    # billed: an estimate would invent usage and cost.
                    continue
                key = (cols.provider[i], cols.response_model[i] or cols.request_model[i])
                encoding = encodings.get(key)
                if encoding is None:
                    encoding = encodings[key] = tokenizer.encoding_for(*key, default=cfg.default_encoding)
                if self._estimate(cols, i, encoding, want_in, want_out, stats):
                    estimated += 1
            if cols.total_tokens[i] is None:
                inp, out = cols.input_tokens[i], cols.output_tokens[i]
                if inp is not None and out is not None:
                    cols.total_tokens[i] = inp + out
        if estimated:
            with self._lock:
                self.estimated_spans += estimated
                self.estimated_input_spans += stats.input_spans
                self.estimated_output_spans += stats.output_spans
                self.estimated_input_tokens += stats.input_tokens
                self.estimated_output_tokens += stats.output_tokens
                self.scaled_spans += stats.scaled_spans
            if self._host is not None:
                self._publish(stats)
        return estimated

    def _publish(self, stats: _Stats) -> None:
        """Once per batch: labelled Prometheus children cost a lookup per call."""
        assert self._host is not None
        telemetry = self._host.telemetry
        telemetry.genai_estimated_spans.labels("input").inc(stats.input_spans)
        telemetry.genai_estimated_spans.labels("output").inc(stats.output_spans)
        telemetry.genai_estimated_tokens.labels("input").inc(stats.input_tokens)
        telemetry.genai_estimated_tokens.labels("output").inc(stats.output_tokens)

    def _estimate(self, cols: GenAIColumns, i: int, encoding: str, want_in: bool, want_out: bool,
                  stats: _Stats) -> bool:
        max_chars = self._config.max_chars_per_span
        scaled = done = False
        directions = (("input", want_in, cols.input_messages, cols.input_tokens),
                      ("output", want_out, cols.output_messages, cols.output_tokens))
        for direction, wanted, messages_column, tokens_column in directions:
            messages = messages_column[i]
            if not wanted or messages is None or not tokenizer.has_content(messages):
                continue
            est = tokenizer.estimate_messages(messages, encoding, prompt=direction == "input", max_chars=max_chars)
            tokens_column[i] = est.tokens
            if direction == "input":
                stats.input_spans += 1
                stats.input_tokens += est.tokens
            else:
                stats.output_spans += 1
                stats.output_tokens += est.tokens
            scaled |= est.scaled
            done = True
        if done:
            cols.tokens_estimated[i] = True
            stats.scaled_spans += scaled
        return done
