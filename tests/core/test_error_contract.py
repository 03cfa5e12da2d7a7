"""Every registered processor and the OTLP receiver pass downstream errors on, and
acknowledge nothing early (the Collector's receiver contract checker, for this pipeline).

The downstream consumer fails at random, seeded: each call is accepted, refused with a
RetryableError (plain or overload) or refused with a PermanentError. The outcome of a call
is a hash of the seed, the exact span set it carries and how often that set has been
sent, so it does not depend on task scheduling. Spans are tracked by (trace id, span id):

* a consume() that returns must have every one of its spans already accepted downstream
  (checked the moment it returns, so an early acknowledgement fails too);
* a consume() that raises must raise the verdict of its spans' own last downstream call:
  retryable as RetryableError, permanent as PermanentError. The batch processor retries
  a merged batch's requests one by one after a permanent error, so for a merged request
  the last call carrying all its spans is its own retry.

The receiver half sends real OTLP (the captured fixtures, re-keyed per request) over
HTTP (protobuf and JSON) and gRPC and checks the status each request gets against the
outcome of its downstream call, as ingest/otlp/http.py and grpc.py map it.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans

from otlp_fixtures import FIXTURES, fixture_payloads, load_batch
from tracehouse.core.component import ComponentID, Component, Kind, Settings, TracesConsumer
from tracehouse.core.errors import PermanentError, RetryableError
from tracehouse.core.pdata import TraceBatch
from tracehouse.core.registry import get_factory, known_types
from tracehouse.core.testing import TestHost
from tracehouse.ingest.otlp.encoding import encode_json
from tracehouse.ingest.otlp.receiver import OtlpReceiver

Key = tuple[bytes, bytes]  # (trace id, span id)

ACCEPT, RETRY, OVERLOAD, PERMANENT = "accept", "retryable", "overload", "permanent"
OUTCOMES = (ACCEPT, RETRY, OVERLOAD, PERMANENT)
SEED = 20240612


def keys_of(batch: TraceBatch) -> frozenset[Key]:
    return frozenset((s.trace_id, s.span_id) for _, _, s in batch.iter_spans())


@dataclass
class Call:
    keys: frozenset[Key]
    outcome: str


@dataclass
class FlakyConsumer:
    """A downstream neighbour that accepts or refuses each call at random (seeded)."""

    seed: int
    weights: tuple[float, ...] = (0.4, 0.2, 0.1, 0.3)  # ACCEPT, RETRY, OVERLOAD, PERMANENT
    accepted: set[Key] = field(default_factory=set)
    calls: list[Call] = field(default_factory=list)
    _seen: Counter[frozenset[Key]] = field(default_factory=Counter)

    def outcome_for(self, keys: frozenset[Key]) -> str:
        attempt = self._seen[keys]
        self._seen[keys] += 1
        digest = hashlib.sha256(repr((self.seed, sorted(keys), attempt)).encode()).digest()
        return random.Random(digest).choices(OUTCOMES, self.weights)[0]

    async def consume(self, batch: TraceBatch) -> None:
        keys = keys_of(batch)
        outcome = self.outcome_for(keys)
        # Give other requests a chance to run while this one is "in flight".
        await asyncio.sleep(0.001 * (len(self.calls) % 3))
        self.calls.append(Call(keys, outcome))
        if outcome == RETRY:
            raise RetryableError(f"downstream unavailable (call {len(self.calls)})", retry_after=2.0)
        if outcome == OVERLOAD:
            raise RetryableError(f"downstream full (call {len(self.calls)})", retry_after=3.0, overload=True)
        if outcome == PERMANENT:
            raise PermanentError(f"downstream rejects these spans (call {len(self.calls)})")
        self.accepted |= keys

    def verdict(self, keys: frozenset[Key]) -> str | None:
        """The outcome of the last downstream call that carried all of `keys` (None: never sent)."""
        for call in reversed(self.calls):
            if keys <= call.keys:
                return call.outcome
        return None


# ---------------------------------------------------------------------------- traffic


def rekeyed(batch: TraceBatch, tag: str) -> TraceBatch:
    """A copy of `batch` whose trace ids are unique to `tag` (span ids stay, parents still link)."""
    request = ExportTraceServiceRequest()
    request.CopyFrom(batch.request)
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            for sp in ss.spans:
                sp.trace_id = hashlib.sha256(tag.encode() + sp.trace_id).digest()[:16]
    return TraceBatch.from_request(request)


def split(batch: TraceBatch, parts: int) -> list[TraceBatch]:
    """The spans of `batch` as up to `parts` requests of consecutive spans."""
    spans = list(batch.iter_spans())
    size = max(1, -(-len(spans) // parts))
    out = []
    for i in range(0, len(spans), size):
        request = ExportTraceServiceRequest()
        for rs, ss, sp in spans[i:i + size]:
            request.resource_spans.append(
                ResourceSpans(resource=rs.resource, scope_spans=[ScopeSpans(scope=ss.scope, spans=[sp])]))
        out.append(TraceBatch.from_request(request))
    return out


FIXTURE_NAMES = [str(p.relative_to(FIXTURES)) for p in fixture_payloads()]


def requests(rounds: int, seed: int) -> list[TraceBatch]:
    """Every captured payload `rounds` times, re-keyed, whole or split into 2-5 requests."""
    rng = random.Random(seed)
    out: list[TraceBatch] = []
    for r in range(rounds):
        for name in FIXTURE_NAMES:
            batch = rekeyed(load_batch(name), f"{seed}/{r}/{name}")
            out += split(batch, rng.choice([1, 1, 2, 3, 5]))
    all_keys = [k for b in out for k in keys_of(b)]
    assert len(all_keys) == len(set(all_keys)), "every span of the traffic is unique"
    return out


# ---------------------------------------------------------------------------- processors

PROCESSOR_CONFIGS: dict[str, dict[str, Any]] = {
    # Small batches and a short timeout, so requests get merged, split and flushed by both triggers.
    "batch": {"send_batch_size": 12, "send_batch_max_size": 24, "timeout": "5ms", "max_concurrent_exports": 2},
}


def processor(type_name: str, downstream: TracesConsumer) -> Component:
    factory = get_factory(Kind.PROCESSOR, type_name)
    assert factory is not None
    config = factory.config_type.model_validate(PROCESSOR_CONFIGS.get(type_name, {}))
    return factory.create(Settings(ComponentID(type_name), Kind.PROCESSOR, "traces"), config, downstream)


@dataclass
class Verdicts:
    returned: int = 0
    raised: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)


async def send_checked(consumer: TracesConsumer, batch: TraceBatch, sink: FlakyConsumer, out: Verdicts) -> None:
    keys = keys_of(batch)
    try:
        await consumer.consume(batch)
    except (RetryableError, PermanentError) as exc:
        verdict = sink.verdict(keys)
        expected: type[Exception] = PermanentError if verdict == PERMANENT else RetryableError
        if verdict == ACCEPT:
            out.violations.append(f"{len(keys)} spans refused with {exc!r} although the downstream accepted them")
        elif not isinstance(exc, expected):
            out.violations.append(f"downstream said {verdict}, the caller got {exc!r}")
        elif verdict in (RETRY, OVERLOAD) and getattr(exc, "overload", None) != (verdict == OVERLOAD):
            out.violations.append(f"downstream said {verdict}, the caller got {exc!r} with overload={getattr(exc, 'overload', None)}")
        out.raised[type(exc).__name__] += 1
    else:
        # Checked the moment consume() returns: an early acknowledgement fails here.
        missing = keys - sink.accepted
        if missing:
            out.violations.append(f"consume() returned but {len(missing)} of its {len(keys)} spans were not "
                                  f"accepted downstream (last verdict: {sink.verdict(keys)})")
        out.returned += 1


async def drive(consumer: TracesConsumer, sink: FlakyConsumer, traffic: list[TraceBatch], wave: int) -> Verdicts:
    """Send `traffic` in concurrent waves of `wave` requests; collect every caller's verdict."""
    out = Verdicts()
    for i in range(0, len(traffic), wave):
        await asyncio.gather(*(send_checked(consumer, b, sink, out) for b in traffic[i:i + wave]))
    return out


def chain(types: list[str], sink: FlakyConsumer) -> tuple[TracesConsumer, list[Component]]:
    """types[0] -> types[1] -> ... -> sink; returns the head and the components, head first."""
    components: list[Component] = []
    downstream: TracesConsumer = sink
    for type_name in reversed(types):
        component = processor(type_name, downstream)
        components.insert(0, component)
        assert isinstance(component, TracesConsumer)
        downstream = component
    return downstream, components


PIPELINE = ["memory_limiter", "batch", "genai_normalize", "genai_tokens", "genai_cost"]


@pytest.mark.parametrize("types", [[t] for t in known_types(Kind.PROCESSOR)] + [PIPELINE],
                         ids=lambda types: "->".join(types))
async def test_processor_passes_downstream_errors_on_and_acknowledges_nothing_early(types: list[str]) -> None:
    sink = FlakyConsumer(SEED)
    head, components = chain(types, sink)
    host = TestHost()
    for component in reversed(components):
        await component.start(host)
    try:
        traffic = requests(rounds=6, seed=SEED)
        verdicts = await drive(head, sink, traffic, wave=8)
    finally:
        for component in components:
            await component.shutdown()

    assert not verdicts.violations, "\n".join(verdicts.violations[:10])
    assert verdicts.returned + sum(verdicts.raised.values()) == len(traffic)
    # The draw must have exercised every path, or the test proves nothing.
    assert Counter(c.outcome for c in sink.calls).keys() == set(OUTCOMES), Counter(c.outcome for c in sink.calls)
    assert verdicts.returned and verdicts.raised["RetryableError"] and verdicts.raised["PermanentError"], verdicts
    # Nothing reaches the downstream except what callers sent.
    sent = {k for b in traffic for k in keys_of(b)}
    assert sink.accepted <= sent


async def test_batch_processor_gives_each_merged_request_its_own_verdict_after_a_permanent_error() -> None:
    """The one-by-one retry really happens: a merged batch refused permanently is split, and
    requests of the same merged batch then get different verdicts."""
    sink = FlakyConsumer(SEED)
    head, components = chain(["batch"], sink)
    await components[0].start(TestHost())
    try:
        traffic = requests(rounds=6, seed=SEED)
        verdicts = await drive(head, sink, traffic, wave=8)
    finally:
        await components[0].shutdown()
    assert not verdicts.violations, "\n".join(verdicts.violations[:10])
    merged_permanent = [c for c in sink.calls if c.outcome == PERMANENT and
                        sum(1 for b in traffic if keys_of(b) <= c.keys) > 1]
    assert merged_permanent, "some merged batch was refused permanently"
    split_outcomes = {
        frozenset(sink.verdict(keys_of(b)) for b in traffic if keys_of(b) <= c.keys) for c in merged_permanent}
    assert any(len(s) > 1 for s in split_outcomes), f"requests of one merged batch got different verdicts: {split_outcomes}"


# ---------------------------------------------------------------------------- the OTLP receiver

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
HTTP_STATUS = {ACCEPT: 200, RETRY: 503, OVERLOAD: 429, PERMANENT: 400}
GRPC_STATUS = {ACCEPT: grpc.StatusCode.OK, RETRY: grpc.StatusCode.UNAVAILABLE,
               OVERLOAD: grpc.StatusCode.RESOURCE_EXHAUSTED, PERMANENT: grpc.StatusCode.INVALID_ARGUMENT}


@dataclass
class Receiving:
    receiver: OtlpReceiver
    sink: FlakyConsumer
    http: httpx.AsyncClient
    channel: grpc.aio.Channel

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.receiver.http_port}/v1/traces"


@pytest.fixture
async def receiving() -> AsyncIterator[Receiving]:
    factory = get_factory(Kind.RECEIVER, "otlp")
    assert factory is not None
    config = factory.config_type.model_validate(
        {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}, "http": {"endpoint": "127.0.0.1:0"}}})
    sink = FlakyConsumer(SEED + 1)
    receiver = factory.create(Settings(ComponentID("otlp"), Kind.RECEIVER, "traces"), config, sink)
    assert isinstance(receiver, OtlpReceiver)
    await receiver.start(TestHost())
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{receiver.grpc_port}")
            try:
                yield Receiving(receiver, sink, http, channel)
            finally:
                await channel.close()
    finally:
        await receiver.shutdown()


@dataclass
class Answer:
    transport: str
    keys: frozenset[Key]
    ok: bool
    status: str  # HTTP status code or gRPC code name
    retry_after: float | None


async def post(r: Receiving, batch: TraceBatch, transport: str) -> Answer:
    keys = keys_of(batch)
    if transport == "grpc":
        call = r.channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
        try:
            await call(batch.to_bytes(), timeout=10)
        except grpc.aio.AioRpcError as err:
            retry_after = None
            status = rpc_status.from_call(err)
            for detail in status.details if status else []:
                info = error_details_pb2.RetryInfo()
                if detail.Unpack(info):
                    retry_after = info.retry_delay.seconds + info.retry_delay.nanos / 1e9
            return Answer(transport, keys, False, err.code().name, retry_after)
        return Answer(transport, keys, True, grpc.StatusCode.OK.name, None)
    if transport == "http-json":
        resp = await r.http.post(r.url, content=encode_json(batch.request), headers={"content-type": "application/json"})
    else:
        resp = await r.http.post(r.url, content=batch.to_bytes(), headers={"content-type": "application/x-protobuf"})
    retry = resp.headers.get("retry-after")
    return Answer(transport, keys, resp.status_code == 200, str(resp.status_code),
                  float(retry) if retry is not None else None)


async def test_otlp_receiver_maps_every_downstream_verdict_and_acknowledges_only_accepted_spans(
        receiving: Receiving) -> None:
    traffic = requests(rounds=8, seed=SEED + 1)
    transports = ["http-protobuf", "http-json", "grpc"]
    answers: list[Answer] = []
    for i in range(0, len(traffic), 6):
        answers += await asyncio.gather(*(post(receiving, b, transports[(i + j) % 3])
                                          for j, b in enumerate(traffic[i:i + 6])))
    sink = receiving.sink

    problems = []
    seen: Counter[tuple[str, str]] = Counter()
    for a in answers:
        verdict = sink.verdict(a.keys)
        assert verdict is not None, "every valid request reaches the downstream"
        seen[(a.transport, verdict)] += 1
        expected = GRPC_STATUS[verdict].name if a.transport == "grpc" else str(HTTP_STATUS[verdict])
        if a.status != expected:
            problems.append(f"{a.transport}: downstream said {verdict}, client got {a.status} (expected {expected})")
        if a.ok and not a.keys <= sink.accepted:
            problems.append(f"{a.transport}: answered OK, but {len(a.keys - sink.accepted)} spans not accepted")
        # Retryable refusals tell the client when to come back; the downstream's hint wins.
        wanted_retry = {RETRY: 2.0, OVERLOAD: 3.0}.get(verdict)
        if a.retry_after != wanted_retry:
            problems.append(f"{a.transport}: {verdict} answered with retry-after {a.retry_after}, want {wanted_retry}")
    assert not problems, "\n".join(problems[:10])

    acked = {k for a in answers if a.ok for k in a.keys}
    assert acked == sink.accepted, "acknowledged exactly the spans the downstream accepted"
    assert len(sink.calls) == len(traffic), "the receiver never retries on its own"
    # Every transport met every verdict, or a mapping went untested.
    missing = {(t, v) for t in transports for v in OUTCOMES} - set(seen)
    assert not missing, f"untested (transport, verdict) pairs: {sorted(missing)}; seen {dict(seen)}"
