"""The exporters' sending queues (the Collector's exporterhelper queue, memory or persistent).

`MemoryQueue` bounds the spans being sent: a batch is admitted whole or refused, and its
spans stay counted until the destination has answered for them.

`DiskQueue` is a write-ahead queue in a directory: one file per accepted batch, written
to `<name>.tmp`, fsynced, renamed to `<seq>-<spans>.wal`, then the directory is fsynced
(once for every group of writes that were waiting together). Only then is the batch
acknowledged. A file holds a fixed header (magic, version, span count, payload length,
CRC-32 of the payload) and the batch as `codec.py` encodes it (the OTLP request bytes,
plus its GenAI columns and origin when it has any). On open, `*.tmp` files (a crash
mid-write, never acknowledged) are deleted and every `*.wal` file is queued again in
sequence order. The file name carries the span count, so recovery lists the directory
without reading the files, and a corrupt file still says how many spans it held.
"""

from __future__ import annotations

import asyncio
import collections
import fcntl
import os
import re
import struct
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tracehouse.core.errors import PayloadTooLargeError, RetryableError

_HEADER = struct.Struct(">4sHHIQI")  # magic, version, flags, span count, payload length, CRC-32
_MAGIC = b"THWQ"
_VERSION = 1
_NAME_RE = re.compile(r"^(\d{20})-(\d+)\.wal$")
LOCK_NAME = "queue.lock"
CORRUPT_DIR = "corrupt"


class QueueFullError(RetryableError):
    """The queue has no room for the batch now; the client should come back later."""

    def __init__(self, message: str, *, retry_after: float = 1.0):
        super().__init__(message, retry_after=retry_after, overload=True)


class CorruptEntryError(Exception):
    """A queue file whose content does not match its header or name."""


class MemoryQueue:
    """Admission control in spans; `capacity` None means unbounded."""

    def __init__(self, capacity: int | None, on_change: Callable[[int], None]):
        self.capacity = capacity
        self.size = 0
        self._on_change = on_change

    def admit(self, spans: int) -> None:
        if self.capacity is not None:
            if spans > self.capacity:
                raise PayloadTooLargeError(f"a batch of {spans} spans is larger than the whole sending queue "
                                           f"(sending_queue.queue_size = {self.capacity})")
            if self.size + spans > self.capacity:
                raise QueueFullError(f"sending queue is full ({self.size} of {self.capacity} spans in flight)")
        self.size += spans
        self._on_change(self.size)

    def release(self, spans: int) -> None:
        self.size -= spans
        self._on_change(self.size)


@dataclass(frozen=True, slots=True)
class QueueEntry:
    seq: int
    span_count: int
    nbytes: int

    @property
    def name(self) -> str:
        return f"{self.seq:020d}-{self.span_count}.wal"


@dataclass(slots=True)
class Recovery:
    """What `DiskQueue.open` found in the directory."""

    entries: int = 0
    spans: int = 0
    nbytes: int = 0
    partial_writes_removed: int = 0
    unknown_files: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Write:
    entry: QueueEntry
    payload: bytes
    done: asyncio.Future[None]


class DiskQueue:
    """A directory of write-ahead files, bounded in spans and bytes; one process at a time."""

    def __init__(self, directory: str | Path, *, max_spans: int, max_bytes: int,
                 on_change: Callable[[int], None]):
        self.directory = Path(directory)
        self.max_spans = max_spans
        self.max_bytes = max_bytes
        self._on_change = on_change
        self.spans = 0  # on disk or being written
        self.nbytes = 0
        self.entries = 0
        self._next_seq = 0
        self._ready: collections.deque[QueueEntry] = collections.deque()
        self._nonempty = asyncio.Event()
        self._writes: list[_Write] = []
        self._write_wanted = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._lock_fd: int | None = None
        self._closed = False

    # -------------------------------------------------------------- lifecycle

    async def open(self) -> Recovery:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sending-queue-write")
        loop = asyncio.get_running_loop()
        try:
            recovery, entries = await loop.run_in_executor(self._executor, self._open_sync)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise
        for entry in entries:
            self._ready.append(entry)
            self.spans += entry.span_count
            self.nbytes += entry.nbytes
        self.entries = len(entries)
        self._next_seq = entries[-1].seq + 1 if entries else 0
        if entries:
            self._nonempty.set()
        self._on_change(self.spans)
        self._writer = asyncio.create_task(self._write_loop(), name=f"sending-queue-writer:{self.directory}")
        return recovery

    def _open_sync(self) -> tuple[Recovery, list[QueueEntry]]:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            # Two replayers on one directory would send and delete each other's entries.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise RuntimeError(f"sending_queue.storage {str(self.directory)!r} is in use by another exporter "
                               "or process; give each exporter its own directory") from None
        self._lock_fd = fd
        recovery = Recovery()
        entries: list[QueueEntry] = []
        for item in os.scandir(self.directory):
            if item.name in (LOCK_NAME, CORRUPT_DIR):
                continue
            if item.name.endswith(".tmp"):
                # Written but never renamed: the client was not acknowledged.
                os.unlink(item.path)
                recovery.partial_writes_removed += 1
                continue
            m = _NAME_RE.match(item.name)
            if m is None or not item.is_file():
                recovery.unknown_files.append(item.name)
                continue
            entries.append(QueueEntry(int(m[1]), int(m[2]), item.stat().st_size))
        entries.sort(key=lambda e: e.seq)
        recovery.entries = len(entries)
        recovery.spans = sum(e.span_count for e in entries)
        recovery.nbytes = sum(e.nbytes for e in entries)
        if recovery.partial_writes_removed:
            _fsync_dir(self.directory)
        return recovery, entries

    async def close(self) -> int:
        """Finish the writes already accepted, then release the directory. Returns the entries left."""
        if self._closed:
            return self.entries
        self._closed = True
        if self._writer is not None:
            # The writer finishes every write it accepted (their clients wait for it), then exits.
            self._write_wanted.set()
            try:
                await self._writer
            except Exception:
                pass  # already failed; nothing is left to write
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        return self.entries

    # -------------------------------------------------------------- writing

    async def put(self, payload: bytes, span_count: int) -> None:
        """Return once the batch is durably on disk; raise QueueFullError when it does not fit."""
        if self._closed or self._writer is None:
            raise RetryableError("the sending queue is not open", retry_after=1.0)
        nbytes = _HEADER.size + len(payload)
        if span_count > self.max_spans or nbytes > self.max_bytes:
            raise PayloadTooLargeError(
                f"a batch of {span_count} spans / {nbytes} bytes is larger than the whole sending queue "
                f"(queue_size {self.max_spans} spans, max_storage_mib {self.max_bytes // 2**20})")
        if self.spans + span_count > self.max_spans:
            raise QueueFullError(f"sending queue is full ({self.spans} of {self.max_spans} spans on disk)")
        if self.nbytes + nbytes > self.max_bytes:
            raise QueueFullError(f"sending queue is full ({self.nbytes // 2**20} of {self.max_bytes // 2**20} MiB)")
        self._reserve(span_count, nbytes)
        entry = QueueEntry(self._next_seq, span_count, nbytes)
        self._next_seq += 1
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._writes.append(_Write(entry, payload, done))
        self._write_wanted.set()
        # Shielded: a client that goes away must not cancel a write other writes wait behind.
        await asyncio.shield(done)

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not (self._closed and not self._writes):
            await self._write_wanted.wait()
            self._write_wanted.clear()
            while self._writes:
                # Group commit: everything that queued up during the last write shares
                # one directory fsync.
                group, self._writes = self._writes, []
                errors = await loop.run_in_executor(self._executor, self._write_group,
                                                    [(w.entry, w.payload) for w in group])
                for write, error in zip(group, errors):
                    if error is None:
                        self.entries += 1
                        self._ready.append(write.entry)
                        self._nonempty.set()
                        if not write.done.done():
                            write.done.set_result(None)
                    else:
                        self._release(write.entry)
                        if not write.done.done():
                            write.done.set_exception(RetryableError(
                                f"cannot write the sending queue in {self.directory}: {error}", retry_after=5.0))

    def _write_group(self, writes: list[tuple[QueueEntry, bytes]]) -> list[str | None]:
        errors: list[str | None] = []
        for entry, payload in writes:
            final = self.directory / entry.name
            tmp = final.with_name(final.name + ".tmp")
            try:
                header = _HEADER.pack(_MAGIC, _VERSION, 0, entry.span_count, len(payload), zlib.crc32(payload))
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                try:
                    _write_all(fd, header)
                    _write_all(fd, payload)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.rename(tmp, final)
                errors.append(None)
            except Exception as exc:  # a disk error fails this write, never the writer
                _unlink_quietly(tmp)
                errors.append(str(exc))
        if any(e is None for e in errors):
            try:
                _fsync_dir(self.directory)  # makes the renames durable
            except OSError as exc:
                for i, (entry, _) in enumerate(writes):
                    if errors[i] is None:
                        _unlink_quietly(self.directory / entry.name)
                        errors[i] = f"fsync of the directory failed: {exc}"
        return errors

    # -------------------------------------------------------------- reading

    async def get(self) -> QueueEntry:
        """The oldest entry not yet handed out; waits while there is none."""
        while not self._ready:
            self._nonempty.clear()
            await self._nonempty.wait()
        return self._ready.popleft()

    async def read(self, entry: QueueEntry) -> bytes:
        return await asyncio.to_thread(self._read_sync, entry)

    def _read_sync(self, entry: QueueEntry) -> bytes:
        try:
            data = (self.directory / entry.name).read_bytes()
        except OSError as exc:
            raise CorruptEntryError(f"unreadable: {exc}") from None
        if len(data) < _HEADER.size:
            raise CorruptEntryError(f"{len(data)} bytes, shorter than the header")
        magic, version, _flags, spans, length, crc = _HEADER.unpack_from(data)
        if magic != _MAGIC or version != _VERSION:
            raise CorruptEntryError(f"not a queue entry (magic {magic!r}, version {version})")
        payload = data[_HEADER.size:]
        if len(payload) != length:
            raise CorruptEntryError(f"payload is {len(payload)} bytes, header says {length}")
        if zlib.crc32(payload) != crc:
            raise CorruptEntryError("payload checksum mismatch")
        if spans != entry.span_count:
            raise CorruptEntryError(f"header says {spans} spans, file name says {entry.span_count}")
        return payload

    async def remove(self, entry: QueueEntry) -> None:
        """Delete an entry the destination acknowledged (or that was given up on)."""
        # No directory fsync: if a crash resurrects the file, the batch is sent twice,
        # which at-least-once delivery allows.
        await asyncio.to_thread(_unlink_quietly, self.directory / entry.name)
        self._release(entry)
        self.entries -= 1

    async def quarantine(self, entry: QueueEntry) -> Path:
        """Move a corrupt entry aside (kept for inspection, out of the queue's accounting)."""
        target = self.directory / CORRUPT_DIR / entry.name

        def move() -> None:
            target.parent.mkdir(exist_ok=True)
            try:
                os.replace(self.directory / entry.name, target)
            except OSError:
                _unlink_quietly(self.directory / entry.name)

        await asyncio.to_thread(move)
        self._release(entry)
        self.entries -= 1
        return target

    # -------------------------------------------------------------- accounting

    def _reserve(self, spans: int, nbytes: int) -> None:
        self.spans += spans
        self.nbytes += nbytes
        self._on_change(self.spans)

    def _release(self, entry: QueueEntry) -> None:
        self.spans -= entry.span_count
        self.nbytes -= entry.nbytes
        self._on_change(self.spans)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
