"""An example GenAI app for the compose stack: a fake support bot that "calls" an LLM.

Every few seconds it handles one request and emits one trace through the OpenTelemetry SDK
and the OTLP/HTTP exporter: a root server span (`POST /v1/answer`) and a child client span
(`chat gpt-4o-mini`) with the OpenTelemetry GenAI attributes (operation, provider, models,
token usage, messages) and a Traceloop-style prompt link (`traceloop.prompt.key`,
`.version`, `.template`). No LLM is called: the answer, the usage and the latency are made up
(deterministically, from a seed), so the stack shows tokens, cost and prompt versions
without any API key or network access beyond the collector.

Configuration (environment):
  OTEL_EXPORTER_OTLP_ENDPOINT  where to send spans, read by the SDK (default http://localhost:4318);
                               in the compose stack, the tracehouse sidecar: http://sidecar:4318
  OTEL_SERVICE_NAME            the service.name resource attribute (default example-support-bot)
  EXAMPLE_TRACES               stop after this many traces; 0 (default) runs until SIGTERM
  EXAMPLE_INTERVAL_SECONDS     pause between requests (default 5)
  EXAMPLE_SEED                 seed of the made-up usage (default 42)
  EXAMPLE_HEARTBEAT_FILE       touched after every export the collector accepted; the
                               container's healthcheck reads its age (default /tmp/example-app.heartbeat)

Prints one JSON line per trace (trace id, prompt, tokens) on stdout. Exits 0 when every export
was accepted, 1 otherwise.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode

SERVICE_NAME = "example-support-bot"
PROVIDER = "openai"
MODEL = "gpt-4o-mini"
RESPONSE_MODEL = "gpt-4o-mini-2024-07-18"
PROMPT_KEY = "support-answer"
# Two versions of one managed prompt: requests alternate between them, so the Prompts
# dashboard has a version comparison to show.
PROMPT_TEMPLATES = {
    "1": "Answer the customer's question: {question}",
    "2": "You are a friendly support agent. Answer in two sentences at most: {question}",
}
QUESTIONS = (
    "How do I reset my password?",
    "Can I change the delivery address of an order?",
    "Why was my card declined?",
    "Do you ship to Canada?",
    "How do I export my data?",
)
ANSWER = "Thanks for asking! Here is what to do next."


class AcceptedExports(SpanExporter):
    """The OTLP exporter, counting what the collector accepted or refused. An accepted export
    touches the heartbeat file, so a healthcheck can tell a working pipeline from a stuck one."""

    def __init__(self, inner: SpanExporter, heartbeat: Path) -> None:
        self.inner = inner
        self.heartbeat = heartbeat
        self.accepted = 0
        self.failed = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.inner.export(spans)
        if result is SpanExportResult.SUCCESS:
            self.accepted += len(spans)
            self.heartbeat.touch()
        else:
            self.failed += len(spans)
            print(f"example-app: the collector did not accept {len(spans)} spans", file=sys.stderr, flush=True)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


def chat_attributes(i: int, rng: random.Random, session: str) -> dict[str, Any]:
    version = "1" if i % 2 == 0 else "2"
    question = QUESTIONS[i % len(QUESTIONS)]
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": PROVIDER,
        "gen_ai.request.model": MODEL,
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 512,
        "gen_ai.response.model": RESPONSE_MODEL,
        "gen_ai.response.id": f"chatcmpl-example-{i:06d}",
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": rng.randint(120, 1500),
        "gen_ai.usage.output_tokens": rng.randint(20, 400),
        "gen_ai.conversation.id": session,
        "gen_ai.input.messages": json.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": question}]}]),
        "gen_ai.output.messages": json.dumps(
            [{"role": "assistant", "parts": [{"type": "text", "content": ANSWER}], "finish_reason": "stop"}]),
        "traceloop.prompt.managed": True,
        "traceloop.prompt.key": PROMPT_KEY,
        "traceloop.prompt.version": version,
        "traceloop.prompt.template": PROMPT_TEMPLATES[version],
    }


def main() -> int:
    limit = int(os.environ.get("EXAMPLE_TRACES", "0"))
    interval = float(os.environ.get("EXAMPLE_INTERVAL_SECONDS", "5"))
    rng = random.Random(int(os.environ.get("EXAMPLE_SEED", "42")))
    heartbeat = Path(os.environ.get("EXAMPLE_HEARTBEAT_FILE", "/tmp/example-app.heartbeat"))

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    # OTEL_SERVICE_NAME, when set, overrides this default (Resource.create reads it).
    provider = TracerProvider(resource=Resource.create({"service.name": os.environ.get(
        "OTEL_SERVICE_NAME", SERVICE_NAME), "service.version": "0.1.0"}))
    # The exporter reads OTEL_EXPORTER_OTLP_ENDPOINT (and appends /v1/traces) itself.
    exporter = AcceptedExports(OTLPSpanExporter(), heartbeat)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1000))
    tracer = provider.get_tracer("tracehouse.example-app", "0.1.0")

    i = 0
    while not stop.is_set() and (limit == 0 or i < limit):
        session = f"session-{i // 3:04d}"  # three requests per conversation
        with tracer.start_as_current_span("POST /v1/answer", kind=SpanKind.SERVER, attributes={
            "http.request.method": "POST", "http.route": "/v1/answer", "user.id": f"user-{i % 4}",
        }) as root:
            attributes = chat_attributes(i, rng, session)
            with tracer.start_as_current_span(f"chat {MODEL}", kind=SpanKind.CLIENT, attributes=attributes) as chat:
                time.sleep(rng.uniform(0.02, 0.25))  # the "model call"
                if i % 10 == 9:  # every tenth call fails, so error rates are not all zero
                    chat.set_status(Status(StatusCode.ERROR, "rate limited (simulated)"))
                    root.set_status(Status(StatusCode.ERROR))
        print(json.dumps({
            "trace_id": format(root.get_span_context().trace_id, "032x"),
            "service": provider.resource.attributes["service.name"],
            "session": session, "model": MODEL, "prompt": PROMPT_KEY, "version": attributes["traceloop.prompt.version"],
            "template": attributes["traceloop.prompt.template"],
            "input_tokens": attributes["gen_ai.usage.input_tokens"],
            "output_tokens": attributes["gen_ai.usage.output_tokens"],
            "error": i % 10 == 9,
        }), flush=True)
        i += 1
        if limit == 0 or i < limit:
            stop.wait(interval)

    provider.shutdown()  # flushes the batch processor: every span is exported (or failed) here
    print(f"example-app: {i} traces, {exporter.accepted} spans accepted, {exporter.failed} failed",
          file=sys.stderr, flush=True)
    return 0 if exporter.failed == 0 and (i == 0 or exporter.accepted > 0) else 1


if __name__ == "__main__":
    sys.exit(main())
