"""Deterministic generator of realistic GenAI OTLP trace traffic for benchmarks.

Each trace looks like one agent run, following the OTel GenAI semantic conventions
(gen-ai spans.yaml, current attribute names):

    invoke_agent <agent>            SERVER or INTERNAL, root
    ├── chat <model>                CLIENT, ~1 KB of gen_ai.input/output.messages
    ├── execute_tool <tool>         INTERNAL
    │   └── retrieval <source>      CLIENT (OTel) or INTERNAL with openinference.span.kind=RETRIEVER
    ├── execute_tool <tool>
    └── chat <model>

A few spans fail (status ERROR, `error.type`, an `exception` event). Resources carry
`service.name` from a small set, `service.version` and `deployment.environment.name`
(the deprecated `deployment.environment` for one service).
All randomness comes from the caller's `random.Random`, so a seed reproduces the exact
bytes given the same `now_ns`. Timestamps sit in the few minutes before `now_ns`, so a
"last hour" query finds the spans.

`pregenerate()` builds and serializes every request body up front so the load generator
measures the server, not protobuf construction.

One module on purpose (over 400 lines): the bytes a seed yields depend on the tables drawn
from and on the order of every draw from the one `random.Random`, across the trace builder
and the request assembly; kept together, both stay in view.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status
from tracehouse.core.pdata import any_value, key_values

__all__ = [
    "Payload",
    "TraceRef",
    "make_request",
    "pregenerate",
]

AttrValue = str | int | float | bool | Sequence[str]

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000

# (service.name, service.version, environment). Most SDKs now send `deployment.environment.name`;
# older ones still send the deprecated `deployment.environment`, so one service does.
SERVICES: tuple[tuple[str, str, str], ...] = (
    ("support-agent", "1.14.2", "production"),
    ("research-assistant", "0.9.0", "production"),
    ("code-review-bot", "2.3.1", "staging"),
    ("travel-planner", "1.2.0", "production"),
    ("sql-copilot", "0.4.7", "development"),
)
LEGACY_ENV_SERVICES = frozenset({"sql-copilot"})

AGENTS: tuple[str, ...] = ("triage", "researcher", "planner", "reviewer", "booking", "analyst")

# provider -> [(request model, response model)], response models are dated snapshots as providers report them.
MODELS: dict[str, tuple[tuple[str, str], ...]] = {
    "openai": (
        ("gpt-4o", "gpt-4o-2024-08-06"),
        ("gpt-4o-mini", "gpt-4o-mini-2024-07-18"),
        ("o3-mini", "o3-mini-2025-01-31"),
    ),
    "anthropic": (
        ("claude-sonnet-4-5", "claude-sonnet-4-5-20250929"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku-20241022"),
    ),
    "gcp.gemini": (("gemini-2.5-flash", "gemini-2.5-flash"), ("gemini-2.5-pro", "gemini-2.5-pro")),
}
PROVIDERS: tuple[str, ...] = tuple(MODELS)
SERVER_ADDRESS: dict[str, str] = {
    "openai": "api.openai.com",
    "anthropic": "api.anthropic.com",
    "gcp.gemini": "generativelanguage.googleapis.com",
}

TOOLS: tuple[str, ...] = ("search_docs", "get_weather", "lookup_order", "run_sql", "send_email", "calculator")
DATA_SOURCES: tuple[str, ...] = ("kb-articles", "product-catalog", "support-tickets", "wiki")
ERROR_TYPES: tuple[tuple[str, str], ...] = (
    ("openai.RateLimitError", "Error code: 429 - rate limit exceeded for requests"),
    ("anthropic.APIStatusError", "Error code: 529 - overloaded_error"),
    ("TimeoutError", "tool call timed out after 30s"),
    ("httpx.ConnectError", "[Errno 111] Connection refused"),
)
FINISH_REASONS: tuple[str, ...] = ("stop", "stop", "stop", "length", "tool_call")

ERROR_RATE = 0.03  # share of chat/tool spans that fail
SPAN_FLAGS = 0x100  # SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK, as the Python SDK sets it
SCOPE_NAME = "opentelemetry.util.genai.handler"
SCOPE_VERSION = "1.1b0"

_WORDS = (
    "the customer order shipment invoice refund account password weather forecast city flight hotel "
    "booking query table column revenue quarter report summary analysis policy warranty product price "
    "discount delivery address please could you check whether our latest update includes support for "
    "streaming tokens cached context window retrieval documents ranked relevant answer concise detailed "
    "because therefore however meanwhile afterwards yesterday tomorrow today morning evening region"
).split()


def _sentence_pool(seed: int, size: int = 256) -> tuple[str, ...]:
    # A fixed pool keeps generation fast (no per-word RNG calls per span) while still
    # giving varied, not perfectly repetitive, text for compression to chew on.
    rng = random.Random(seed)
    out = []
    for _ in range(size):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 16))]
        out.append(" ".join(words).capitalize() + ".")
    return tuple(out)


_SENTENCES = _sentence_pool(20251122)


@dataclass(frozen=True, slots=True)
class TraceRef:
    """One trace inside a request: its hex id and how many spans it has."""

    trace_id: str
    span_count: int


@dataclass(frozen=True, slots=True)
class Payload:
    """One serialized ExportTraceServiceRequest, ready to send."""

    body: bytes
    span_count: int
    traces: tuple[TraceRef, ...]


_TRACEBACK_HEAD = 'Traceback (most recent call last):\n  File "agent.py", line 88, in run\n'






def _text(rng: random.Random, approx_bytes: int) -> str:
    parts: list[str] = []
    size = 0
    while size < approx_bytes:
        s = rng.choice(_SENTENCES)
        parts.append(s)
        size += len(s) + 1
    return " ".join(parts)


def _messages_json(messages: list[dict[str, object]]) -> str:
    return json.dumps(messages, separators=(",", ":"))


class _TraceBuilder:
    """Builds the spans of one agent-run trace into a ScopeSpans."""

    def __init__(self, rng: random.Random, scope: ScopeSpans, now_ns: int) -> None:
        self.rng = rng
        self.scope = scope
        self.now_ns = now_ns
        self.trace_id = rng.getrandbits(128).to_bytes(16, "big")
        self.conversation_id = f"conv_{rng.getrandbits(48):012x}"
        self.provider = rng.choice(PROVIDERS)
        self.agent = rng.choice(AGENTS)

    def _span_id(self) -> bytes:
        # All-zero ids are invalid in OTLP; 64 random bits make that a non-event, but be exact.
        return (self.rng.getrandbits(64) or 1).to_bytes(8, "big")

    def _span(self, name: str, kind: Span.SpanKind.ValueType, parent: bytes, start: int, end: int) -> Span:
        span: Span = self.scope.spans.add()
        span.trace_id = self.trace_id
        span.span_id = self._span_id()
        span.parent_span_id = parent
        span.name = name
        span.kind = kind
        span.start_time_unix_nano = start
        span.end_time_unix_nano = end
        span.flags = SPAN_FLAGS
        return span

    def _maybe_fail(self, span: Span, end: int) -> bool:
        if self.rng.random() >= ERROR_RATE:
            return False
        etype, emsg = self.rng.choice(ERROR_TYPES)
        span.status.code = Status.STATUS_CODE_ERROR
        span.status.message = emsg
        span.attributes.append(KeyValue(key="error.type", value=any_value(etype)))
        event = span.events.add()
        event.name = "exception"
        event.time_unix_nano = end
        event.attributes.extend(
            key_values(
                {
                    "exception.type": etype,
                    "exception.message": emsg,
                    "exception.stacktrace": f"{_TRACEBACK_HEAD}{etype}: {emsg}",
                    "exception.escaped": True,
                }
            )
        )
        return True

    def _chat(self, parent: bytes, start: int, step: int) -> tuple[int, bool]:
        rng = self.rng
        req_model, resp_model = rng.choice(MODELS[self.provider])
        dur = rng.randint(300, 4_000) * NS_PER_MS
        span = self._span(f"chat {req_model}", Span.SPAN_KIND_CLIENT, parent, start, start + dur)
        # ~1 KB of content per chat span: ~700 B of input history, ~300 B of output.
        system = _text(rng, 140)
        user = _text(rng, 380)
        tool_ctx = _text(rng, 100)
        answer = _text(rng, 260)
        finish = rng.choice(FINISH_REASONS)
        inputs: list[dict[str, object]] = [
            {"role": "system", "parts": [{"type": "text", "content": system}]},
            {"role": "user", "parts": [{"type": "text", "content": user}]},
        ]
        if step > 0:
            inputs.append(
                {
                    "role": "tool",
                    "parts": [{"type": "tool_call_response", "id": f"call_{step}", "response": tool_ctx}],
                }
            )
        out_parts: list[dict[str, object]] = [{"type": "text", "content": answer}]
        if finish == "tool_call":
            out_parts.append(
                {
                    "type": "tool_call",
                    "id": f"call_{step + 1}",
                    "name": rng.choice(TOOLS),
                    "arguments": {"q": "x"},
                }
            )
        outputs: list[dict[str, object]] = [
            {"role": "assistant", "parts": out_parts, "finish_reason": finish}
        ]
        in_chars = len(system) + len(user) + (len(tool_ctx) if step > 0 else 0)
        attrs: dict[str, AttrValue] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": self.provider,
            "gen_ai.request.model": req_model,
            "gen_ai.request.temperature": rng.choice((0.0, 0.2, 0.7, 1.0)),
            "gen_ai.request.max_tokens": rng.choice((256, 1024, 4096)),
            "gen_ai.response.model": resp_model,
            "gen_ai.response.id": f"resp_{rng.getrandbits(64):016x}",
            "gen_ai.response.finish_reasons": [finish],
            "gen_ai.usage.input_tokens": in_chars // 4 + rng.randint(0, 2_000),
            "gen_ai.usage.output_tokens": len(answer) // 4 + rng.randint(0, 200),
            "gen_ai.conversation.id": self.conversation_id,
            "gen_ai.input.messages": _messages_json(inputs),
            "gen_ai.output.messages": _messages_json(outputs),
            "server.address": SERVER_ADDRESS[self.provider],
            "server.port": 443,
        }
        if rng.random() < 0.3:
            attrs["gen_ai.usage.cache_read.input_tokens"] = rng.randint(0, 1024)
        span.attributes.extend(key_values(attrs))
        return start + dur, self._maybe_fail(span, start + dur)

    def _retrieval(self, parent: bytes, start: int) -> int:
        rng = self.rng
        source = rng.choice(DATA_SOURCES)
        dur = rng.randint(20, 300) * NS_PER_MS
        attrs: dict[str, AttrValue]
        if rng.random() < 0.5:  # OTel GenAI flavour
            span = self._span(f"retrieval {source}", Span.SPAN_KIND_CLIENT, parent, start, start + dur)
            attrs = {"gen_ai.operation.name": "retrieval", "gen_ai.data_source.id": source}
        else:  # OpenInference flavour, as LangChain/LlamaIndex instrumentors emit it
            span = self._span("VectorStoreRetriever", Span.SPAN_KIND_INTERNAL, parent, start, start + dur)
            attrs = {"openinference.span.kind": "RETRIEVER", "input.value": _text(rng, 60)}
            for i in range(3):
                attrs[f"retrieval.documents.{i}.document.id"] = f"{source}-{rng.getrandbits(24):06x}"
                attrs[f"retrieval.documents.{i}.document.score"] = round(rng.uniform(0.5, 0.99), 3)
        span.attributes.extend(key_values(attrs))
        return start + dur

    def _tool(self, parent: bytes, start: int, step: int, with_retrieval: bool) -> tuple[int, bool]:
        rng = self.rng
        tool = "search_docs" if with_retrieval else rng.choice(TOOLS)
        span = self._span(f"execute_tool {tool}", Span.SPAN_KIND_INTERNAL, parent, start, start)
        end = start + rng.randint(2, 200) * NS_PER_MS
        if with_retrieval:
            end = self._retrieval(span.span_id, start + NS_PER_MS) + NS_PER_MS
        span.end_time_unix_nano = end
        span.attributes.extend(
            key_values(
                {
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": tool,
                    "gen_ai.tool.call.id": f"call_{step}",
                    "gen_ai.tool.type": "function",
                }
            )
        )
        return end, self._maybe_fail(span, end)

    def build(self, span_count: int) -> None:
        """Emit `span_count` spans (>= 1): the root plus a chat/tool plan under it."""
        rng = self.rng
        root = self._span(
            f"invoke_agent {self.agent}",
            rng.choice((Span.SPAN_KIND_SERVER, Span.SPAN_KIND_INTERNAL)),
            b"",
            0,
            0,
        )
        # Lay children out from t=0, then shift the whole trace to end shortly before now.
        cursor = 5 * NS_PER_MS
        failed = False
        plan = _plan(span_count - 1)
        for step, kind in enumerate(plan):
            if kind == "retrieval":
                continue  # emitted inside the preceding tool span
            nested = step + 1 < len(plan) and plan[step + 1] == "retrieval"
            if kind == "chat":
                cursor, err = self._chat(root.span_id, cursor, step)
            else:
                cursor, err = self._tool(root.span_id, cursor, step, nested)
            failed |= err
            cursor += rng.randint(1, 20) * NS_PER_MS
        total = cursor + 5 * NS_PER_MS
        shift = self.now_ns - total - rng.randint(0, 300) * NS_PER_S
        for span in self.scope.spans[-span_count:]:
            span.start_time_unix_nano += shift
            span.end_time_unix_nano += shift
            for ev in span.events:
                ev.time_unix_nano += shift
        root.end_time_unix_nano = shift + total
        root.attributes.extend(
            key_values(
                {
                    "gen_ai.operation.name": "invoke_agent",
                    "gen_ai.provider.name": self.provider,
                    "gen_ai.agent.name": self.agent,
                    "gen_ai.agent.id": f"asst_{self.agent}",
                    "gen_ai.conversation.id": self.conversation_id,
                }
            )
        )
        if failed and rng.random() < 0.5:  # half the child failures are not handled by the agent
            root.status.code = Status.STATUS_CODE_ERROR
            root.status.message = "agent run failed"


def _plan(children: int) -> list[str]:
    """Child span kinds in order: chat/tool alternating, a retrieval nested in the first tool, chat last."""
    plan = ["chat" if i % 2 == 0 else "tool" for i in range(children)]
    if children >= 3:
        plan[2] = "retrieval"  # child of plan[1], a tool
    if children >= 2 and plan[-1] != "chat":
        plan[-1] = "chat"
    return plan


def _trace_sizes(rng: random.Random, traces: int, spans_per_trace: int) -> list[int]:
    # Symmetric jitter keeps the mean at spans_per_trace while varying the trace shape.
    spread = min(2, spans_per_trace - 1)
    return [max(1, spans_per_trace + rng.randint(-spread, spread)) for _ in range(traces)]


def _build(
    rng: random.Random, traces: int, spans_per_trace: int, now_ns: int | None
) -> tuple[ExportTraceServiceRequest, list[TraceRef]]:
    now = time.time_ns() if now_ns is None else now_ns
    req = ExportTraceServiceRequest()
    scopes: dict[str, ScopeSpans] = {}
    refs: list[TraceRef] = []
    for size in _trace_sizes(rng, traces, spans_per_trace):
        service = rng.choice(SERVICES)
        scope = scopes.get(service[0])
        if scope is None:
            scope = _new_resource(req.resource_spans.add(), service)
            scopes[service[0]] = scope
        builder = _TraceBuilder(rng, scope, now)
        builder.build(size)
        refs.append(TraceRef(builder.trace_id.hex(), size))
    return req, refs


def _new_resource(rs: ResourceSpans, service: tuple[str, str, str]) -> ScopeSpans:
    name, version, env = service
    rs.resource.attributes.extend(
        key_values(
            {
                "service.name": name,
                "service.version": version,
                (
                    "deployment.environment" if name in LEGACY_ENV_SERVICES else "deployment.environment.name"
                ): env,
                "telemetry.sdk.language": "python",
                "telemetry.sdk.name": "opentelemetry",
                "telemetry.sdk.version": "1.45.2",
            }
        )
    )
    scope: ScopeSpans = rs.scope_spans.add()
    scope.scope.name = SCOPE_NAME
    scope.scope.version = SCOPE_VERSION
    return scope


def make_request(
    rng: random.Random, traces: int, spans_per_trace: int = 6, now_ns: int | None = None
) -> tuple[ExportTraceServiceRequest, int]:
    """Build one request of `traces` agent-run traces; returns it and its span count."""
    req, refs = _build(rng, traces, spans_per_trace, now_ns)
    return req, sum(r.span_count for r in refs)


def iter_payloads(
    seed: int,
    total_spans: int,
    spans_per_request: int,
    spans_per_trace: int = 6,
    now_ns: int | None = None,
) -> Iterator[Payload]:
    """Yield serialized requests until at least `total_spans` spans have been produced."""
    rng = random.Random(seed)
    traces_per_request = max(1, round(spans_per_request / spans_per_trace))
    produced = 0
    while produced < total_spans:
        req, refs = _build(rng, traces_per_request, spans_per_trace, now_ns)
        count = sum(r.span_count for r in refs)
        produced += count
        yield Payload(req.SerializeToString(), count, tuple(refs))


def pregenerate(
    seed: int,
    total_spans: int,
    spans_per_request: int,
    spans_per_trace: int = 6,
    now_ns: int | None = None,
) -> list[Payload]:
    """All request bodies for a run, serialized up front (generation cost stays out of timings)."""
    return list(iter_payloads(seed, total_spans, spans_per_request, spans_per_trace, now_ns))
