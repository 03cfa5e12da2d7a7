"""Starting and stopping the child processes benchmarks and tests run against (tansu,
tracehouse, Prometheus): wait until one answers, stop it politely, then firmly."""

from __future__ import annotations

import contextlib
import os
import signal
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


def terminate(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0, *, group: bool = False) -> None:
    """SIGTERM, then SIGKILL after `timeout`; a no-op for a process that already ended.

    `group`: signal the process group the process leads (started with `start_new_session`)
    rather than the process alone, for a server whose own shutdown hands the signal on to
    its workers slowly (MLflow's CLI takes ~10 s)."""
    if proc is None or proc.poll() is not None:
        return

    def send(sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)

    send(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        proc.wait(timeout)


def log_tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a child's log, for an error message."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:]) or "(the log is empty)"


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
