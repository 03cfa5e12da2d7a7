"""Free loopback ports for the processes tests start (the benchmarks' helper)."""

from __future__ import annotations

from tracehouse.bench.tansu import free_port

__all__ = ["free_port"]
