"""Asyncio OTLP load generator: throughput, latency, back-pressure and time-to-queryable.

Sends pre-generated GenAI trace requests (see `traffic.py`) to a local tracehouse over
OTLP/HTTP (`POST /v1/traces`, protobuf, HTTP/1.1 keep-alive) or OTLP/gRPC (raw bytes on
`TraceService/Export`), with `--concurrency` requests in flight. Refusals the OTLP spec
calls retryable (HTTP 429/503 + Retry-After, gRPC UNAVAILABLE, RESOURCE_EXHAUSTED with
RetryInfo) are retried with backoff and counted. Afterwards it polls the query API until a
sample of the sent traces is complete, and with `--server-pid` it reports the server's
peak RSS and CPU seconds per 10k spans. `--header` adds request headers (an API key, or
MLflow's experiment header), and `run_load` takes another "stored" check in place of
tracehouse's query API: `run_mlflow_side_by_side` counts a peer's stored spans that way.

Everything is bounded: attempts per request, total send time, query wait, and the target
host, which must be loopback.

    python -m tracehouse.bench.loadgen --protocol grpc --spans 100000 --json-out out.json

One module on purpose (over 400 lines): it is one tool read top to bottom (config, senders,
send loop, queryability wait, figures, CLI), each part used only by `run_load`.
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import json
import os
import platform
import random
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal, Protocol
from urllib.parse import urlsplit

import grpc
import grpc.aio
import httpx
import psutil
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tracehouse.bench.traffic import Payload, TraceRef, pregenerate

__all__ = ["LoadConfig", "LoadResult", "main", "run_load"]

DEFAULT_HTTP_ENDPOINT = "http://127.0.0.1:4318"
DEFAULT_GRPC_ENDPOINT = "127.0.0.1:4317"
DEFAULT_QUERY_URL = "http://127.0.0.1:8080"
GRPC_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

BACKOFF_BASE_S = 0.05
BACKOFF_CAP_S = 5.0
RETRY_AFTER_CAP_S = 30.0  # never let a server-sent hint stall a bounded run for longer
QUERY_LAST_N = 50  # most recently acked traces: the likeliest to lag behind
QUERY_SAMPLE_N = 200  # plus a random sample of the rest
# Whole-trace reads the query API serves at once by default (query_api's
# max_concurrent_trace_reads); more only earn 429s, which are retried below anyway.
QUERY_CONCURRENCY = 2
QUERY_POLL_S = 0.1
RSS_SAMPLE_S = 0.1

Protocol_ = Literal["http", "grpc"]
Verdict = Literal["accepted", "retry", "failed"]


# --------------------------------------------------------------------------- config / result


@dataclass(frozen=True)
class LoadConfig:
    """One load run; defaults mirror the CLI."""

    protocol: Protocol_ = "http"
    endpoint: str = ""  # empty: the protocol's default
    spans: int = 100_000
    spans_per_request: int = 500
    spans_per_trace: int = 6
    concurrency: int = 8
    query_url: str = DEFAULT_QUERY_URL
    seed: int = 1
    server_pid: int | None = None
    skip_query: bool = False
    query_timeout_s: float = 120.0
    max_duration_s: float = 600.0
    request_timeout_s: float = 30.0
    max_attempts: int = 20
    headers: tuple[tuple[str, str], ...] = ()  # added to every OTLP/HTTP request

    def resolved_endpoint(self) -> str:
        if self.endpoint:
            return self.endpoint
        return DEFAULT_HTTP_ENDPOINT if self.protocol == "http" else DEFAULT_GRPC_ENDPOINT


@dataclass
class LoadResult:
    """Figures of one run; `to_json()` is the `--json-out` document."""

    protocol: str
    endpoint: str
    spans: int  # spans accepted by the server
    spans_offered: int
    requests: int  # requests accepted
    spans_per_request: float
    concurrency: int
    seed: int
    bytes_sent: int
    send_wall_s: float | None
    spans_per_s: float | None
    mb_per_s: float | None
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    retries: int
    refusals: int
    failed_requests: int
    rejected_spans: int
    queryable_after_s: float | None
    query_verify_s: float | None
    query_checked_traces: int
    query_pending_traces: int
    query_duplicate_traces: int
    server_pid: int | None
    peak_rss_mb: float | None
    server_cpu_s: float | None
    cpu_s_per_10k_spans: float | None
    loadgen_cpu_util: (
        float | None
    )  # load generator CPU s / send wall s; near 1.0 means it, not the server, limits
    python: str = field(default_factory=platform.python_version)
    cpu_count: int | None = field(default_factory=os.cpu_count)
    loadgen_cpus: list[int] = field(default_factory=lambda: sorted(os.sched_getaffinity(0)))
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return asdict(self)


# --------------------------------------------------------------------------- endpoints


def _require_loopback(host: str | None, what: str) -> None:
    # The benchmark must never be pointed at a shared or remote system by accident.
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"{what}: host {host!r} is not loopback; only 127.0.0.1/localhost/::1 are allowed")


def http_traces_url(endpoint: str) -> str:
    """`http://host:port` (or with an explicit path) -> the OTLP/HTTP traces URL."""
    parts = urlsplit(endpoint)
    _require_loopback(parts.hostname, "--endpoint")
    if parts.scheme != "http":
        raise ValueError(f"--endpoint: expected an http:// URL, got {endpoint!r}")
    return endpoint if parts.path not in ("", "/") else endpoint.rstrip("/") + "/v1/traces"


def grpc_target(endpoint: str) -> str:
    """`host:port` or `http://host:port` -> a gRPC target string."""
    parts = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
    _require_loopback(parts.hostname, "--endpoint")
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname
    return f"{host}:{parts.port or 4317}"


def query_base_url(url: str) -> str:
    parts = urlsplit(url)
    _require_loopback(parts.hostname, "--query-url")
    return url.rstrip("/")


# --------------------------------------------------------------------------- senders


@dataclass(frozen=True, slots=True)
class Outcome:
    verdict: Verdict
    retry_after_s: float | None = None
    refused: bool = False  # the server said "not now" (vs a transport error)
    rejected_spans: int = 0
    detail: str = ""


class Sender(Protocol):
    async def start(self) -> None: ...

    async def send(self, body: bytes, slot: int) -> Outcome: ...

    async def close(self) -> None: ...


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:  # HTTP-date form
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _rejected_spans(body: bytes) -> int:
    if not body:
        return 0
    try:
        return int(ExportTraceServiceResponse.FromString(body).partial_success.rejected_spans)
    except DecodeError:  # a malformed reply is not the benchmark's concern; the status already said OK
        return 0


class HttpSender:
    """OTLP/HTTP protobuf: one single-connection keep-alive HTTP/1.1 client per worker slot.

    One client per slot, not one shared pool: httpcore's pool costs grow with the number of
    connections it juggles (measured: 32 requests in flight over one shared pool sent ~4x
    fewer requests/s than over 32 private clients), which would make the generator the bottleneck.
    """

    def __init__(
        self, endpoint: str, concurrency: int, timeout_s: float, headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        self.url = http_traces_url(endpoint)
        self.clients = [
            httpx.AsyncClient(
                http1=True,
                http2=False,
                trust_env=False,  # ignore *_PROXY env: traffic stays on loopback
                timeout=timeout_s,
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                headers={"Content-Type": "application/x-protobuf", **dict(headers)},
            )
            for _ in range(concurrency)
        ]

    async def start(self) -> None:
        # Fail fast with a clear message instead of retrying against a closed port.
        parts = urlsplit(self.url)
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(parts.hostname, parts.port or 80), timeout=5.0
            )
        except (TimeoutError, OSError) as exc:
            raise ConnectionError(f"OTLP/HTTP endpoint {self.url} not reachable: {exc!r}") from exc
        writer.close()

    async def send(self, body: bytes, slot: int) -> Outcome:
        try:
            resp = await self.clients[slot].post(self.url, content=body)
        except httpx.TransportError as exc:
            return Outcome("retry", detail=f"{type(exc).__name__}: {exc}")
        code = resp.status_code
        if code == 200:
            return Outcome("accepted", rejected_spans=_rejected_spans(resp.content))
        if code in (429, 502, 503, 504):  # the OTLP/HTTP retryable set
            return Outcome(
                "retry",
                _parse_retry_after(resp.headers.get("Retry-After")),
                refused=True,
                detail=f"HTTP {code}",
            )
        return Outcome("failed", detail=f"HTTP {code}: {resp.text[:200]}")

    async def close(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self.clients))


def _grpc_retry_delay(err: grpc.aio.AioRpcError) -> float | None:
    """RetryInfo.retry_delay from `grpc-status-details-bin`, if the server sent one."""
    for key, value in err.trailing_metadata() or ():
        if key != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                info = error_details_pb2.RetryInfo()
                detail.Unpack(info)
                return float(info.retry_delay.ToTimedelta().total_seconds())
    return None


def _identity(b: bytes) -> bytes:
    return b


class GrpcSender:
    """OTLP/gRPC with pre-serialized bodies: one channel, `concurrency` RPCs multiplexed on it."""

    def __init__(self, endpoint: str, timeout_s: float) -> None:
        self.target = grpc_target(endpoint)
        self.timeout_s = timeout_s
        self.channel = grpc.aio.insecure_channel(
            self.target,
            options=[
                ("grpc.enable_retries", 0),  # we retry and count ourselves
                ("grpc.enable_http_proxy", 0),
                ("grpc.max_receive_message_length", 16 * 1024 * 1024),
            ],
        )
        self.export = self.channel.unary_unary(
            GRPC_METHOD, request_serializer=_identity, response_deserializer=_identity
        )

    async def start(self) -> None:
        # Connect before the clock starts, so the first RPC does not carry connection setup.
        try:
            await asyncio.wait_for(self.channel.channel_ready(), timeout=min(self.timeout_s, 10.0))
        except TimeoutError as exc:
            raise ConnectionError(f"OTLP/gRPC endpoint {self.target} not reachable") from exc

    async def send(self, body: bytes, slot: int) -> Outcome:
        try:
            reply = await self.export(body, timeout=self.timeout_s)
        except grpc.aio.AioRpcError as err:
            code = err.code()
            delay = _grpc_retry_delay(err)
            detail = f"gRPC {code.name}: {err.details()}"
            # OTLP: RESOURCE_EXHAUSTED is retryable only when the server attached RetryInfo.
            if code == grpc.StatusCode.UNAVAILABLE or (
                code == grpc.StatusCode.RESOURCE_EXHAUSTED and delay is not None
            ):
                return Outcome("retry", delay, refused=True, detail=detail)
            if code in (
                grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.StatusCode.ABORTED,
                grpc.StatusCode.CANCELLED,
            ):
                return Outcome("retry", detail=detail)
            return Outcome("failed", detail=detail)
        return Outcome("accepted", rejected_spans=_rejected_spans(reply))

    async def close(self) -> None:
        await self.channel.close()


def make_sender(cfg: LoadConfig) -> Sender:
    if cfg.protocol == "http":
        return HttpSender(cfg.resolved_endpoint(), cfg.concurrency, cfg.request_timeout_s, cfg.headers)
    return GrpcSender(cfg.resolved_endpoint(), cfg.request_timeout_s)


# --------------------------------------------------------------------------- server monitor


class ServerMonitor:
    """CPU seconds and peak RSS of the server process and its children, sampled via psutil."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak_rss = 0
        self.last_cpu = 0.0  # last reading, kept so a server that exits mid-run still reports its CPU

    def _tree(self) -> list[psutil.Process]:
        try:
            return [self.proc, *self.proc.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu_seconds(self) -> float:
        total = 0.0
        for p in self._tree():
            try:
                t = p.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += t.user + t.system
        self.last_cpu = max(self.last_cpu, total)
        return self.last_cpu

    def sample(self) -> None:
        self.cpu_seconds()
        rss = 0
        for p in self._tree():
            try:
                rss += p.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        self.peak_rss = max(self.peak_rss, rss)

    def high_water_mark(self) -> int:
        """Kernel's VmHWM for the main process (exact peak since start; Linux only)."""
        try:
            with open(f"/proc/{self.proc.pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    async def sample_forever(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(RSS_SAMPLE_S)


# --------------------------------------------------------------------------- sending


@dataclass
class _SendStats:
    first_send: float | None = None
    last_ack: float | None = None
    latencies: list[float] = field(default_factory=list)
    accepted_spans: int = 0
    accepted_requests: int = 0
    bytes_sent: int = 0
    retries: int = 0
    refusals: int = 0
    failed_requests: int = 0
    rejected_spans: int = 0
    acked_traces: list[TraceRef] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    consecutive_failures: int = 0
    aborted: bool = False

    def note_error(self, detail: str) -> None:
        key = detail[:160]
        if key in self.errors or len(self.errors) < 20:  # bounded: a handful of distinct messages
            self.errors[key] = self.errors.get(key, 0) + 1


def _backoff_s(attempt: int, retry_after: float | None, rng: random.Random) -> float:
    # Exponential with jitter, never below the server's hint (itself capped so runs stay bounded).
    delay = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2.0**attempt) * rng.uniform(0.5, 1.5)
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_AFTER_CAP_S))
    return delay


async def _send_one(
    sender: Sender,
    slot: int,
    payload: Payload,
    stats: _SendStats,
    cfg: LoadConfig,
    deadline: float,
    rng: random.Random,
) -> None:
    for attempt in range(cfg.max_attempts):
        if time.perf_counter() >= deadline:
            stats.note_error("run deadline reached (--max-duration)")
            break
        t0 = time.perf_counter()
        if stats.first_send is None:
            stats.first_send = t0
        out = await sender.send(payload.body, slot)
        t1 = time.perf_counter()
        if out.verdict == "accepted":
            stats.latencies.append(t1 - t0)
            stats.last_ack = t1
            stats.accepted_requests += 1
            stats.accepted_spans += payload.span_count - out.rejected_spans
            stats.rejected_spans += out.rejected_spans
            stats.bytes_sent += len(payload.body)
            stats.acked_traces.extend(payload.traces)
            stats.consecutive_failures = 0
            return
        stats.note_error(out.detail)
        if out.verdict == "failed" or attempt + 1 == cfg.max_attempts:
            break
        stats.retries += 1
        stats.refusals += out.refused
        await asyncio.sleep(
            min(_backoff_s(attempt, out.retry_after_s, rng), max(0.0, deadline - time.perf_counter()))
        )
    stats.failed_requests += 1
    stats.consecutive_failures += 1
    if stats.consecutive_failures >= cfg.concurrency and not stats.aborted:
        # Every worker just gave up on a request in a row: the server is gone or refuses all.
        stats.aborted = True
        stats.note_error(f"aborted after {stats.consecutive_failures} consecutive failed requests")


async def _worker(
    sender: Sender,
    slot: int,
    work: Iterator[Payload],
    stats: _SendStats,
    cfg: LoadConfig,
    deadline: float,
    rng: random.Random,
) -> None:
    # One shared iterator: the event loop is single-threaded, so next() needs no lock.
    for payload in work:
        if stats.aborted:
            return
        await _send_one(sender, slot, payload, stats, cfg, deadline, rng)


async def _send_all(sender: Sender, payloads: Sequence[Payload], cfg: LoadConfig) -> _SendStats:
    stats = _SendStats()
    deadline = time.perf_counter() + cfg.max_duration_s
    work = iter(payloads)
    rng = random.Random(cfg.seed ^ 0x5EED)
    workers = [_worker(sender, slot, work, stats, cfg, deadline, rng) for slot in range(cfg.concurrency)]
    await asyncio.gather(*workers)
    return stats


# --------------------------------------------------------------------------- queryability


@dataclass
class QueryStats:
    queryable_after_s: float | None = None
    verify_s: float | None = None
    checked: int = 0
    pending: int = 0
    duplicates: int = 0
    errors: int = 0
    refused: int = 0  # 429/503 from the query API's read budget, retried


# Another server's "stored" check: given every acked trace and when the last ack came, wait
# until they are stored and say when (run_mlflow_side_by_side reads MLflow's database).
StoredCheck = Callable[[Sequence[TraceRef], float], Awaitable[QueryStats]]


def query_sample(acked: Sequence[TraceRef], seed: int) -> list[TraceRef]:
    """The last QUERY_LAST_N acked traces (newest first) plus a random QUERY_SAMPLE_N of the rest."""
    last = list(reversed(acked[-QUERY_LAST_N:]))
    rest = acked[: max(0, len(acked) - QUERY_LAST_N)]
    picked = random.Random(seed).sample(list(rest), min(QUERY_SAMPLE_N, len(rest)))
    return last + picked


async def _trace_complete(client: httpx.AsyncClient, base: str, ref: TraceRef, qs: QueryStats) -> bool:
    while True:
        try:
            resp = await client.get(f"{base}/api/v1/traces/{ref.trace_id}")
        except httpx.TransportError:
            qs.errors += 1
            return False
        # The read budget refusing says nothing of whether the trace landed: ask again.
        if resp.status_code not in (429, 503):
            break
        qs.refused += 1
        await asyncio.sleep(0.02)
    if resp.status_code != 200:
        qs.errors += resp.status_code != 404
        return False
    try:
        n = len(resp.json()["spans"])
    except (ValueError, KeyError, TypeError):
        qs.errors += 1
        return False
    if n > ref.span_count:  # client-retry duplicates that the read path did not collapse
        qs.duplicates += 1
    return n >= ref.span_count


async def _wait_queryable(cfg: LoadConfig, sample: list[TraceRef], last_ack: float) -> QueryStats:
    """Poll until every sampled trace is complete.

    While data is still landing only the front pending trace (the newest acked, normally the
    last to land) is probed, one GET per QUERY_POLL_S, so polling does not load the server.
    Once it is complete, the rest of the sample is verified in one concurrent round. The
    figure is the moment that last successful probe returned; the verification round that
    follows (`verify_s`) bounds how much later the slowest sampled trace can have landed.
    """
    qs = QueryStats(checked=len(sample))
    base = query_base_url(cfg.query_url)
    pending = list(sample)
    deadline = time.perf_counter() + cfg.query_timeout_s
    sem = asyncio.Semaphore(QUERY_CONCURRENCY)
    probe_ok = last_ack

    async def check(ref: TraceRef) -> bool:
        async with sem:
            return await _trace_complete(client, base, ref, qs)

    async with httpx.AsyncClient(trust_env=False, timeout=5.0) as client:
        while pending and time.perf_counter() < deadline:
            if not await check(pending[0]):
                await asyncio.sleep(QUERY_POLL_S)
                continue
            probe_ok = time.perf_counter()
            done = await asyncio.gather(*(check(r) for r in pending[1:]))
            qs.verify_s = time.perf_counter() - probe_ok
            pending = [r for r, ok in zip(pending[1:], done) if not ok]
            if pending:
                await asyncio.sleep(QUERY_POLL_S)
    qs.pending = len(pending)
    if not pending:
        qs.queryable_after_s = max(0.0, probe_ok - last_ack)
    return qs


# --------------------------------------------------------------------------- run


def _percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile, q in [0, 100]."""
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 3)


def _round(v: float | None, nd: int = 3) -> float | None:
    return None if v is None else round(v, nd)


async def run_load(cfg: LoadConfig, payloads: Sequence[Payload], stored: StoredCheck | None = None) -> LoadResult:
    """Send `payloads`, wait until they are queryable (by tracehouse's query API, or by
    `stored` over every acked trace), and collect the figures."""
    validate(cfg)  # fail on a non-loopback target before sending anything
    monitor = ServerMonitor(cfg.server_pid) if cfg.server_pid else None
    sender = make_sender(cfg)
    try:
        await sender.start()
        cpu0 = monitor.cpu_seconds() if monitor else 0.0
        sampler = asyncio.create_task(monitor.sample_forever()) if monitor else None
        own_cpu0 = time.process_time()
        stats = await _send_all(sender, payloads, cfg)
        own_cpu = time.process_time() - own_cpu0
        # The server's CPU for taking the spans in, read at the last acknowledgement: the
        # reads that check them afterwards are the query side's, not ingestion's.
        cpu_s = monitor.cpu_seconds() - cpu0 if monitor else None
    finally:
        await sender.close()
    qs = QueryStats()
    # After an abort the server is gone or refuses everything: waiting for queries would only burn time.
    if not cfg.skip_query and not stats.aborted and stats.last_ack is not None:
        if stored is not None:
            qs = await stored(stats.acked_traces, stats.last_ack)
        else:
            qs = await _wait_queryable(cfg, query_sample(stats.acked_traces, cfg.seed), stats.last_ack)
    peak: float | None = None
    if monitor:
        monitor.sample()
        if sampler:
            sampler.cancel()
        peak = max(monitor.peak_rss, monitor.high_water_mark()) / 2**20
    return _result(cfg, payloads, stats, qs, cpu_s, peak, own_cpu)


def _result(
    cfg: LoadConfig,
    payloads: Sequence[Payload],
    stats: _SendStats,
    qs: QueryStats,
    cpu_s: float | None,
    peak_rss_mb: float | None,
    own_cpu_s: float,
) -> LoadResult:
    wall = None
    if stats.first_send is not None and stats.last_ack is not None:
        wall = stats.last_ack - stats.first_send
    lat = sorted(stats.latencies)
    per_s = stats.accepted_spans / wall if wall else None
    return LoadResult(
        protocol=cfg.protocol,
        endpoint=cfg.resolved_endpoint(),
        spans=stats.accepted_spans,
        spans_offered=sum(p.span_count for p in payloads),
        requests=stats.accepted_requests,
        spans_per_request=round(stats.accepted_spans / stats.accepted_requests, 1)
        if stats.accepted_requests
        else 0.0,
        concurrency=cfg.concurrency,
        seed=cfg.seed,
        bytes_sent=stats.bytes_sent,
        send_wall_s=_round(wall),
        spans_per_s=_round(per_s, 1),
        mb_per_s=_round(stats.bytes_sent / wall / 1e6 if wall else None),
        p50_ms=_ms(_percentile(lat, 50)),
        p99_ms=_ms(_percentile(lat, 99)),
        max_ms=_ms(lat[-1] if lat else None),
        retries=stats.retries,
        refusals=stats.refusals,
        failed_requests=stats.failed_requests,
        rejected_spans=stats.rejected_spans,
        queryable_after_s=_round(qs.queryable_after_s),
        query_verify_s=_round(qs.verify_s),
        query_checked_traces=qs.checked,
        query_pending_traces=qs.pending,
        query_duplicate_traces=qs.duplicates,
        server_pid=cfg.server_pid,
        peak_rss_mb=_round(peak_rss_mb, 1),
        server_cpu_s=_round(cpu_s),
        cpu_s_per_10k_spans=_round(
            cpu_s / stats.accepted_spans * 10_000 if cpu_s is not None and stats.accepted_spans else None
        ),
        loadgen_cpu_util=_round(own_cpu_s / wall if wall else None, 2),
        errors=[f"{n}x {msg}" for msg, n in stats.errors.items()],
    )


# --------------------------------------------------------------------------- CLI


def format_result(r: LoadResult) -> str:
    """Human-readable two-column table."""

    def fmt(v: object, unit: str = "") -> str:
        if v is None:
            return "n/a"
        if isinstance(v, float):
            return f"{v:,.3f}{unit}" if abs(v) < 100 else f"{v:,.1f}{unit}"
        if isinstance(v, int):
            return f"{v:,}{unit}"
        return f"{v}{unit}"

    complete = r.query_checked_traces - r.query_pending_traces
    rows: list[tuple[str, str]] = [
        ("protocol / endpoint", f"{r.protocol}  {r.endpoint}"),
        ("spans accepted / offered", f"{fmt(r.spans)} / {fmt(r.spans_offered)}"),
        ("requests (spans/request)", f"{fmt(r.requests)} ({r.spans_per_request})"),
        ("concurrency", fmt(r.concurrency)),
        ("send wall clock", fmt(r.send_wall_s, " s")),
        ("throughput", f"{fmt(r.spans_per_s, ' spans/s')}  ({fmt(r.mb_per_s, ' MB/s')})"),
        ("latency p50 / p99 / max", f"{fmt(r.p50_ms)} / {fmt(r.p99_ms)} / {fmt(r.max_ms)} ms"),
        ("retries / refusals / failed", f"{r.retries} / {r.refusals} / {r.failed_requests}"),
        ("rejected spans (partial)", fmt(r.rejected_spans)),
        (
            "queryable after last ack",
            f"{fmt(r.queryable_after_s, ' s')}  ({complete}/{r.query_checked_traces} of the sample complete)",
        ),
        ("server peak RSS", fmt(r.peak_rss_mb, " MB")),
        ("server CPU", f"{fmt(r.server_cpu_s, ' s')}  ({fmt(r.cpu_s_per_10k_spans, ' s per 10k spans')})"),
        ("load generator CPU", f"{fmt(r.loadgen_cpu_util)} of one core while sending"),
        ("python / cpus", f"{r.python} / {r.cpu_count} (loadgen on {r.loadgen_cpus})"),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k.ljust(width)}  {v}" for k, v in rows]
    if r.loadgen_cpu_util is not None and r.loadgen_cpu_util > 0.8:
        lines.append(
            "warning: the load generator was near CPU saturation; "
            "throughput may be its limit, not the server's"
        )
    # Retried refusals and permanent failures alike; the counters above say which were which.
    lines += [f"seen: {e}" for e in r.errors]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tracehouse.bench.loadgen",
        description="Send GenAI OTLP traffic to a local tracehouse; "
        "measure throughput, latency and time-to-queryable.",
    )
    p.add_argument("--protocol", choices=("http", "grpc"), default="http")
    p.add_argument(
        "--endpoint",
        default="",
        help=f"default {DEFAULT_HTTP_ENDPOINT} (http) / {DEFAULT_GRPC_ENDPOINT} (grpc)",
    )
    p.add_argument(
        "--spans", type=int, default=100_000, help="total spans to send (rounded up to whole requests)"
    )
    p.add_argument("--spans-per-request", type=int, default=500)
    p.add_argument("--spans-per-trace", type=int, default=6, help="mean trace size")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    p.add_argument("--query-url", default=DEFAULT_QUERY_URL)
    p.add_argument("--skip-query", action="store_true", help="do not wait for the spans to become queryable")
    p.add_argument("--query-timeout", type=float, default=120.0, help="max seconds to wait for queryability")
    p.add_argument("--max-duration", type=float, default=600.0, help="max seconds of sending")
    p.add_argument("--request-timeout", type=float, default=30.0, help="per-request timeout, seconds")
    p.add_argument("--max-attempts", type=int, default=20, help="attempts per request before giving up")
    p.add_argument(
        "--seed", type=int, default=None, help="traffic seed (default: random, printed); ids depend on it"
    )
    p.add_argument("--server-pid", type=int, default=None, help="sample this process's RSS and CPU")
    p.add_argument(
        "--header", action="append", default=[], metavar="NAME=VALUE", help="add to every OTLP/HTTP request"
    )
    p.add_argument("--json-out", default=None, help="write the figures as JSON here")
    return p


def parse_headers(values: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """`NAME=VALUE` strings as header pairs."""
    out = []
    for v in values:
        name, sep, value = v.partition("=")
        if not sep or not name.strip():
            raise SystemExit(f"--header {v!r}: expected NAME=VALUE")
        out.append((name.strip(), value))
    return tuple(out)


def config_from_args(a: argparse.Namespace) -> LoadConfig:
    for name in ("spans", "spans_per_request", "spans_per_trace", "concurrency", "max_attempts"):
        if getattr(a, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1")
    # A fresh seed by default: re-running against the same server must not resend the same trace ids.
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(2**31)
    return LoadConfig(
        protocol=a.protocol,
        endpoint=a.endpoint,
        spans=a.spans,
        spans_per_request=a.spans_per_request,
        spans_per_trace=a.spans_per_trace,
        concurrency=a.concurrency,
        query_url=a.query_url,
        seed=seed,
        server_pid=a.server_pid,
        skip_query=a.skip_query,
        query_timeout_s=a.query_timeout,
        max_duration_s=a.max_duration,
        request_timeout_s=a.request_timeout,
        max_attempts=a.max_attempts,
        headers=parse_headers(a.header),
    )


def validate(cfg: LoadConfig) -> None:
    """Raise ValueError on a non-loopback target."""
    if cfg.protocol == "http":
        http_traces_url(cfg.resolved_endpoint())
    else:
        grpc_target(cfg.resolved_endpoint())
    query_base_url(cfg.query_url)


def generate(cfg: LoadConfig) -> list[Payload]:
    """Pre-generate the run's request bodies (timestamps anchored at now)."""
    return pregenerate(cfg.seed, cfg.spans, cfg.spans_per_request, cfg.spans_per_trace)


def write_json(path: str, doc: object) -> None:
    with open(path, "w") as fh:
        json.dump(doc, fh, indent=2)
        fh.write("\n")


def report(figures: object, json_out: str | None) -> None:
    """A bench's figures on stdout, and in `json_out` when given."""
    print(json.dumps(figures, indent=2))
    if json_out:
        write_json(json_out, figures)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    try:
        validate(cfg)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    payloads = generate(cfg)
    gen_s = time.perf_counter() - t0
    offered = sum(p.span_count for p in payloads)
    print(
        f"generated {offered:,} spans in {len(payloads)} requests in {gen_s:.1f} s (seed {cfg.seed})",
        file=sys.stderr,
    )
    try:
        result = asyncio.run(run_load(cfg, payloads))
    except ConnectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_result(result))
    if args.json_out:
        write_json(args.json_out, result.to_json())
    complete = result.failed_requests == 0 and result.query_pending_traces == 0
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
