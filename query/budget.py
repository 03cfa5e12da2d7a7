"""The read budget: how many API requests run at once, in total and per client.

A read holds its slot from the first byte of the request to the last byte of the response
(streamed trace bodies included), so neither many clients nor one greedy client can pile
up work and memory in the query service, or starve the ingest path that shares its
process. Over the per-client limit a request is refused at once (429, Retry-After); over
the total it waits up to `read_queue_timeout` for a slot, then 503 with Retry-After.
A client is its API key (a digest of the Authorization header), else its address.
Health probes and `/metrics` never wait here.

Reads of whole traces (a trace's page, Jaeger's trace routes, v2 and v3) can each hold a hundred
thousand spans in memory: they also take one of `max_concurrent_trace_reads` slots, which
bounds the service's memory whatever the number of clients.

Exports (`/api/v1/traces/export`) hold little memory (a few thousand spans at a time) but
may stream for minutes: they take one of `max_concurrent_exports` slots of their own, so they
never hold up a trace's page, and a further export waits `read_queue_timeout` at most, then
503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections import Counter
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from tracehouse.query.errors import error_response
from tracehouse.query.jaeger.errors import is_jaeger_path, jaeger_error_for

# Routes that return whole traces; exports of a search's traces.
_TRACE_READS = re.compile(r"^/api/v1/traces/[^/]+$|^/api/traces(/|$)|^/api/v3/traces(/|$)")
_EXPORTS = re.compile(r"^/api/v1/traces/export$")


class ReadBudget:
    def __init__(self, total: int, per_client: int, queue_timeout: float, trace_reads: int = 2,
                 exports: int = 2):
        self._slots = asyncio.Semaphore(total)
        self.trace_slots = asyncio.Semaphore(trace_reads)
        self.export_slots = asyncio.Semaphore(exports)
        self.queue_timeout = queue_timeout
        self._per_client_limit = per_client
        self._per_client: Counter[str] = Counter()

    def over_client_limit(self, client: str) -> bool:
        return self._per_client[client] >= self._per_client_limit

    async def acquire(self, client: str) -> bool:
        """Take a slot for `client`; False when none freed up in time."""
        self._per_client[client] += 1
        try:
            await asyncio.wait_for(self._slots.acquire(), self.queue_timeout)
        except TimeoutError:
            self.release_client(client)
            return False
        return True

    def release(self, client: str) -> None:
        self._slots.release()
        self.release_client(client)

    def release_client(self, client: str) -> None:
        self._per_client[client] -= 1
        if self._per_client[client] <= 0:
            del self._per_client[client]


def client_of(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            return "key:" + hashlib.sha256(value).hexdigest()[:16]
    client = scope.get("client")
    return f"addr:{client[0]}" if client else "addr:?"


class ReadBudgetMiddleware:
    def __init__(self, app: ASGIApp, budget: ReadBudget):
        self.app = app
        self.budget = budget

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/api/"):
            await self.app(scope, receive, send)
            return
        client = client_of(scope)
        if self.budget.over_client_limit(client):
            await self._refuse(scope, receive, send, 429, "too many concurrent requests from this client; "
                               "wait for the ones in flight, then retry")
            return
        if not await self.budget.acquire(client):
            await self._refuse(scope, receive, send, 503, "the query API is busy; retry later")
            return
        try:
            if scope.get("method") == "GET" and _EXPORTS.match(path):
                await self._export(scope, receive, send)
            elif scope.get("method") == "GET" and _TRACE_READS.match(path):
                async with self.budget.trace_slots:
                    await self.app(scope, receive, send)
            else:
                await self.app(scope, receive, send)
        finally:
            self.budget.release(client)

    async def _export(self, scope: Scope, receive: Receive, send: Send) -> None:
        slots = self.budget.export_slots
        try:
            await asyncio.wait_for(slots.acquire(), self.budget.queue_timeout)
        except TimeoutError:
            await self._refuse(scope, receive, send, 503, "the query API is busy with other exports; retry later")
            return
        try:
            await self.app(scope, receive, send)
        finally:
            slots.release()

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, code: int, message: str) -> None:
        headers = {"Retry-After": "1"}
        response: Any = (jaeger_error_for(scope["path"], code, message, headers) if is_jaeger_path(scope["path"])
                         else error_response(code, message, headers=headers))
        await response(scope, receive, send)

