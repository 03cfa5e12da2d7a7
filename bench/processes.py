"""Starting and stopping the child processes benchmarks and tests run against (tansu,
tracehouse, Prometheus): wait until one answers, stop it politely, then firmly."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def wait_ready(proc: subprocess.Popen[bytes], ready: Callable[[], bool], *, timeout: float, what: str,
               log_tail: Callable[[], str], poll_s: float = 0.1) -> None:
    """Poll `ready()` until it is true; raise with the log's tail if the process exits or
    `timeout` passes first (the process is then terminated)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} during start:\n{log_tail()}")
        if ready():
            return
        time.sleep(poll_s)
    terminate(proc)
    raise RuntimeError(f"{what} not ready after {timeout}s:\n{log_tail()}")


def terminate(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `timeout`; a no-op for a process that already ended."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


def http_ok(url: str) -> bool:
    """Whether `url` answers 200 within a second (a readiness probe)."""
    import httpx  # only the probes need it

    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def rss_mb(pid: int) -> dict[str, float]:
    """Resident memory from /proc/<pid>/status in MB: total, anonymous (heap, the engine's
    allocations) and file-backed (mapped libraries' pages: clean, shared, reclaimable)."""
    fields = {"VmRSS": "rss", "RssAnon": "anon", "RssFile": "file"}
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in fields:
            out[fields[key]] = round(int(value.split()[0]) / 1024, 1)
    return out
