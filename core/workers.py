"""Processor workers: a pipeline's enrichment processors run in other processes.

One Python process runs one thread of bytecode at a time, and on the all-in-one the GenAI
processors and redaction (~30 µs of CPU per span) share that thread with the receivers and
the exporter's column building. With `service.workers: N`, every maximal run of processors
whose factory declares `runs_in_workers` (pure functions of one batch: genai_normalize,
genai_tokens, redaction, genai_cost) is replaced in the owner's pipeline by a
`WorkerStage`, and the run itself is built in each of N worker processes.

What must stay one stays in the owner: the listeners, memory_limiter's count, the batch
processor's group commit, the exporters and the embedded ClickHouse engine. A request
crosses to a worker as its wire bytes and comes back as the processed bytes, the GenAI
columns and the counters the processors moved; the owner never re-runs the processors.
The guarantees hold: the stage returns only once the batch it produced was handed on
downstream, a processor's error reaches the client as it would in-process, and a worker
that dies fails its in-flight requests with a retryable error (the client retries) and is
started again.

Frames on the socket pair: 4-byte big-endian length, 8-byte request id, pickle. Only the
owner and the workers it starts share the socket, so pickle carries no foreign input.
"""

from __future__ import annotations

import asyncio
import itertools
import pickle
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from tracehouse.core import errors
from tracehouse.core.component import ComponentConfig, ComponentID, Kind, Settings, Signal, Status
from tracehouse.core.pdata import BATCH_TYPES, OtlpBatch, RecordRange, TraceBatch
from tracehouse.core.registry import get_factory
from tracehouse.core.telemetry import Telemetry

log = structlog.get_logger("tracehouse.workers")

_HEADER = struct.Struct("!IQ")
_READY = 0  # the request id of a worker's first frame: its processors started (or why not)
# How long a worker may take to import and start its processors.
START_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class RunSpec:
    """One run of processors a worker builds: `key` names it in requests."""

    key: int
    pipeline: str
    processors: tuple[tuple[str, ComponentConfig], ...]  # (component id, its config), in order


@dataclass(frozen=True, slots=True)
class WorkerInit:
    runs: tuple[RunSpec, ...]
    log_level: str
    log_encoding: str
    index: int


@dataclass(slots=True)
class _Request:
    run: int
    signal: Signal
    raw: bytes
    tenant: str
    origin: RecordRange | None
    deadline: float | None  # CLOCK_MONOTONIC is the same clock in every process of the machine


@dataclass(slots=True)
class _Result:
    raw: bytes | None = None
    genai: Any = None
    counters: list[tuple[str, tuple[str, ...], float]] = field(default_factory=list)
    error: tuple[str, str, bool, float | None] | None = None  # (class name, message, overload, retry_after)


# ----------------------------------------------------------------------------- framing

async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    header = await reader.readexactly(_HEADER.size)
    length, request_id = _HEADER.unpack(header)
    return request_id, await reader.readexactly(length)


def _frame(request_id: int, obj: Any) -> bytes:
    body = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body), request_id) + body


# ----------------------------------------------------------------------------- counters

def counter_values(telemetry: Telemetry) -> dict[tuple[str, tuple[str, ...]], float]:
    """Every counter sample of a registry: (metric name, label values) -> value."""
    out: dict[tuple[str, tuple[str, ...]], float] = {}
    for metric in telemetry.registry.collect():
        if metric.type != "counter":
            continue
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                out[(metric.name, tuple(sample.labels.values()))] = sample.value
    return out


def add_counters(telemetry: Telemetry, deltas: Sequence[tuple[str, tuple[str, ...], float]]) -> None:
    """Add a worker's counter increments to the owner's counters of the same names."""
    counters = telemetry.counters_by_name()
    for name, labels, delta in deltas:
        counter = counters.get(name)
        if counter is not None:
            (counter.labels(*labels) if labels else counter).inc(delta)


# ----------------------------------------------------------------------------- the owner's side

def offloadable(processor_type: str) -> bool:
    factory = get_factory(Kind.PROCESSOR, processor_type)
    return bool(getattr(factory, "runs_in_workers", False))


class _Worker:
    """One worker process and the requests in flight on its socket."""

    def __init__(self, index: int, init: WorkerInit, on_exit: Callable[[int], None]):
        self.index = index
        self._init = init
        self._on_exit = on_exit
        self.in_flight: dict[int, asyncio.Future[_Result]] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self.ready = False

    async def start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with theirs:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "tracehouse.core.workers", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        reader, self._writer = await asyncio.open_unix_connection(sock=ours)
        self._writer.write(_frame(_READY, self._init))
        try:
            _, body = await asyncio.wait_for(_read_frame(reader), START_TIMEOUT_S)
        except (asyncio.IncompleteReadError, TimeoutError):
            code = self._proc.poll()
            await self.stop()
            raise RuntimeError(f"processor worker {self.index} did not start"
                               + (f" (exited with code {code})" if code is not None else "")) from None
        problem = pickle.loads(body)
        if problem:
            await self.stop()
            raise RuntimeError(f"processor worker {self.index} could not start its processors: {problem}")
        self.ready = True
        self._reader_task = asyncio.create_task(self._read(reader), name=f"worker-{self.index}-reader")
        log.info("processor worker started", worker=self.index, pid=self._proc.pid)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                request_id, body = await _read_frame(reader)
                fut = self.in_flight.pop(request_id, None)
                if fut is not None and not fut.done():
                    fut.set_result(pickle.loads(body))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception:  # an unreadable frame: this worker's stream can no longer be trusted
            log.exception("processor worker sent an unreadable frame; stopping it", worker=self.index)
            if self._proc is not None and self._proc.poll() is None:
                self._proc.kill()
        was_ready, self.ready = self.ready, False
        self._fail_in_flight()
        if was_ready:  # it died (a stop clears `ready` first)
            self._on_exit(self.index)

    def _fail_in_flight(self) -> None:
        code = self.exit_code
        for fut in self.in_flight.values():
            if not fut.done():
                fut.set_exception(errors.RetryableError(
                    f"processor worker {self.index} exited (code {code}) while processing the request; retry it"))
        self.in_flight.clear()

    @property
    def exited(self) -> bool:
        return self.exit_code is not None

    @property
    def exit_code(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    async def submit(self, request_id: int, request: _Request) -> _Result:
        if self._writer is None or not self.ready:
            raise errors.RetryableError(f"processor worker {self.index} is not running; retry the request")
        fut: asyncio.Future[_Result] = asyncio.get_running_loop().create_future()
        self.in_flight[request_id] = fut
        try:
            self._writer.write(_frame(request_id, request))
            await self._writer.drain()
        except (ConnectionError, RuntimeError) as exc:  # it died as we wrote
            self.in_flight.pop(request_id, None)
            raise errors.RetryableError(f"processor worker {self.index} is gone ({exc}); retry the request") from None
        return await fut

    async def stop(self, timeout: float = 10.0) -> None:
        """Close the socket (the worker exits at its end) and reap the process."""
        self.ready = False
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        proc = self._proc
        if proc is not None:
            deadline = time.monotonic() + timeout
            while proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            if proc.poll() is None:
                proc.kill()
                await asyncio.to_thread(proc.wait)
        if self._reader_task is not None:
            await asyncio.gather(self._reader_task, return_exceptions=True)
            self._reader_task = None


class WorkerPool:
    """N worker processes, each holding every offloaded run of processors; a request goes to
    the worker with the fewest in flight. A worker that exits is started again."""

    def __init__(self, size: int, log_level: str, log_encoding: str):
        self.size = size
        self._runs: list[RunSpec] = []
        self._log_level, self._log_encoding = log_level, log_encoding
        self._workers: list[_Worker] = []
        self._ids = itertools.count(1)
        self._users = 0
        self._starting: asyncio.Task[None] | None = None
        self._restarts: set[asyncio.Task[None]] = set()
        self._closed = False
        self.telemetry: Telemetry | None = None
        self.restarted = 0

    def add_run(self, pipeline: str, processors: Sequence[tuple[str, ComponentConfig]]) -> int:
        """Register a run of processors (before start); its key for `process`."""
        key = len(self._runs)
        self._runs.append(RunSpec(key, pipeline, tuple(processors)))
        return key

    def _new(self, index: int) -> _Worker:
        return _Worker(index, WorkerInit(tuple(self._runs), self._log_level, self._log_encoding, index),
                       self._exited)

    def _exited(self, index: int) -> None:
        if not self._closed:
            self._restart(index)

    async def acquire(self, telemetry: Telemetry) -> None:
        """Start the workers on first use (every stage of every pipeline shares them)."""
        self._users += 1
        self.telemetry = telemetry
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._start_all())
        await self._starting

    async def _start_all(self) -> None:
        self._workers = [self._new(i) for i in range(self.size)]
        results = await asyncio.gather(*(w.start() for w in self._workers), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            await asyncio.gather(*(w.stop() for w in self._workers))
            raise failed[0]

    async def release(self) -> None:
        self._users -= 1
        if self._users > 0:
            return
        self._closed = True
        for task in list(self._restarts):
            task.cancel()
        await asyncio.gather(*self._restarts, return_exceptions=True)
        await asyncio.gather(*(w.stop() for w in self._workers))

    def _pick(self) -> _Worker:
        for i, worker in enumerate(self._workers):
            if worker.exited and not self._closed:
                self._restart(i)
        ready = [w for w in self._workers if w.ready]
        if not ready:
            raise errors.RetryableError("no processor worker is running (restarting); retry the request",
                                        retry_after=1.0)
        return min(ready, key=lambda w: len(w.in_flight))

    def _restart(self, index: int) -> None:
        """Start worker `index` again, at once (it exited); a restart already under way is enough."""
        old = self._workers[index]
        if any(t.get_name() == f"restart-{index}" for t in self._restarts):
            return
        log.error("processor worker exited; starting it again", worker=index, code=old.exit_code)

        async def restart() -> None:
            await old.stop(timeout=0)
            worker = self._new(index)
            try:
                await worker.start()
            except Exception as exc:  # the next request tries again
                log.error("processor worker could not be started again", worker=index, error=str(exc))
                return
            self._workers[index] = worker
            self.restarted += 1

        task = asyncio.create_task(restart(), name=f"restart-{index}")
        self._restarts.add(task)
        task.add_done_callback(self._restarts.discard)

    async def process(self, run: int, batch: OtlpBatch[Any]) -> OtlpBatch[Any]:
        request = _Request(run, batch.signal, batch.to_bytes(), batch.tenant, batch.origin, batch.deadline)
        worker = self._pick()
        result = await worker.submit(next(self._ids), request)
        if result.counters and self.telemetry is not None:
            add_counters(self.telemetry, result.counters)
        if result.error is not None:
            raise _error(*result.error)
        assert result.raw is not None
        out = BATCH_TYPES[batch.signal].from_bytes(result.raw, deadline=batch.deadline)
        out.origin, out.tenant = batch.origin, batch.tenant
        if isinstance(out, TraceBatch):
            out.genai = result.genai
        return out

    def pids(self) -> list[int]:
        return [w.pid for w in self._workers if w.pid is not None]


def _error(name: str, message: str, overload: bool, retry_after: float | None) -> Exception:
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, errors.RetryableError):
        return cls(message, overload=overload, retry_after=retry_after)
    if isinstance(cls, type) and issubclass(cls, errors.PermanentError):
        return cls(message)
    return errors.RetryableError(message)


class WorkerStage:
    """Stands in the owner's pipeline for a run of processors that runs in the workers."""

    # It hands on a new batch built from the worker's answer and never changes the one it
    # is given, so a fanout in front of it need not clone.
    mutates_data = False

    def __init__(self, settings: Settings, pool: WorkerPool, run: int, next_consumer: Any):
        self._settings = settings
        self._pool = pool
        self._run = run
        self._next = next_consumer
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self, host: Any) -> None:
        await self._pool.acquire(host.telemetry)

    async def consume(self, batch: OtlpBatch[Any]) -> None:
        self._in_flight += 1
        self._idle.clear()
        try:
            processed = await self._pool.process(self._run, batch)
            await self._next.consume(processed)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    async def shutdown(self) -> None:
        await self._idle.wait()  # the requests in flight finish first
        await self._pool.release()


# ----------------------------------------------------------------------------- the worker's side

class _Capture:
    """The end of a run in a worker: keeps what the last processor handed on."""

    mutates_data = False

    def __init__(self) -> None:
        self.batches: list[OtlpBatch[Any]] = []

    async def consume(self, batch: OtlpBatch[Any]) -> None:
        self.batches.append(batch)


class _WorkerHost:
    def __init__(self) -> None:
        self.telemetry = Telemetry()

    def report_status(self, component: ComponentID, kind: Kind, status: Status, error: str | None = None) -> None:
        if status in (Status.RECOVERABLE_ERROR, Status.PERMANENT_ERROR, Status.FATAL_ERROR):
            log.warning("component status", component=f"{kind.value}/{component}", status=status.value, error=error)

    def statuses(self) -> dict[str, tuple[Status, str | None]]:
        return {}

    def extension(self, cid: ComponentID) -> object | None:
        return None


@dataclass(slots=True)
class _Run:
    head: Any
    capture: _Capture
    components: list[Any]


async def _build_runs(specs: Sequence[RunSpec], host: _WorkerHost) -> dict[int, _Run]:
    runs: dict[int, _Run] = {}
    for spec in specs:
        capture = _Capture()
        head: Any = capture
        components = []
        for ref, config in reversed(spec.processors):
            cid = ComponentID.parse(ref)
            factory = get_factory(Kind.PROCESSOR, cid.type)
            assert factory is not None
            head = factory.create(Settings(cid, Kind.PROCESSOR, spec.pipeline), config, head)
            components.append(head)
        for component in components:  # the last processor first, as the service starts them
            await component.start(host)
        runs[spec.key] = _Run(head, capture, components)
    return runs


async def _handle(run: _Run, request: _Request, host: _WorkerHost,
                  last: dict[tuple[str, tuple[str, ...]], float]) -> _Result:
    result = _Result()
    try:
        batch = BATCH_TYPES[request.signal].from_bytes(request.raw, deadline=request.deadline)
        batch.tenant, batch.origin = request.tenant, request.origin
        await run.head.consume(batch)
        out = run.capture.batches
        merged = out[0] if len(out) == 1 else type(batch).merge(out)  # a processor may split
        result.raw = merged.to_bytes()
        if isinstance(merged, TraceBatch):
            result.genai = merged.genai
    except errors.RetryableError as exc:
        result.error = (type(exc).__name__, str(exc), exc.overload, exc.retry_after)
    except errors.PipelineError as exc:
        result.error = (type(exc).__name__, str(exc), False, None)
    except Exception as exc:  # a processor bug: the client may retry; the worker lives on
        log.exception("processor failed in a worker", error=str(exc))
        result.error = ("RetryableError", f"processing failed: {exc}", False, None)
    finally:
        run.capture.batches = []
    now = counter_values(host.telemetry)
    result.counters = [(name, labels, value - last.get((name, labels), 0.0))
                       for (name, labels), value in now.items() if value != last.get((name, labels), 0.0)]
    last.update(now)
    return result


async def _serve(fd: int) -> None:
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    _, body = await _read_frame(reader)
    init: WorkerInit = pickle.loads(body)
    from tracehouse.core.logs import configure_logging

    configure_logging(init.log_level, init.log_encoding)  # type: ignore[arg-type]  # validated by the owner's config
    structlog.contextvars.bind_contextvars(worker=init.index)
    host = _WorkerHost()
    try:
        runs = await _build_runs(init.runs, host)
    except Exception as exc:
        writer.write(_frame(_READY, f"{type(exc).__name__}: {exc}"))
        await writer.drain()
        return
    writer.write(_frame(_READY, ""))
    last: dict[tuple[str, tuple[str, ...]], float] = counter_values(host.telemetry)
    try:
        while True:
            try:
                request_id, body = await _read_frame(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                break  # the owner closed the socket: shut down
            request: _Request = pickle.loads(body)
            result = await _handle(runs[request.run], request, host, last)
            writer.write(_frame(request_id, result))
            await writer.drain()
    finally:
        for run in runs.values():
            for component in reversed(run.components):
                await component.shutdown()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m tracehouse.core.workers <socket fd> (started by `tracehouse run`)", file=sys.stderr)
        return 2
    # The owner handles SIGINT/SIGTERM and closes our socket once drained; a Ctrl-C or a
    # SIGTERM sent to the whole process group must not kill a worker mid-drain. (If the
    # owner dies, the socket closes and the worker exits.)
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    asyncio.run(_serve(int(args[0])))
    return 0


if __name__ == "__main__":
    # Through the module's import name, so what this process pickles names
    # `tracehouse.core.workers._Result`, which the owner can load (not `__main__._Result`).
    from tracehouse.core import workers

    sys.exit(workers.main())
