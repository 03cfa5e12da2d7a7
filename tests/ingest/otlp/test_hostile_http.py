"""OTLP/HTTP against hostile clients, over raw sockets: stalled and trickled bodies, slow and
huge headers. The server drops them within its limits, and a valid request sent meanwhile is
stored and acknowledged."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from test_receivers import PB, make_request
from tracehouse.core.component import ComponentID, Kind, Settings
from tracehouse.core.testing import TestHost, TracesSink
from tracehouse.ingest.otlp.config import HttpConfig, OtlpReceiverConfig, ProtocolsConfig
from tracehouse.ingest.otlp.receiver import OtlpReceiver



@pytest.fixture
async def start_receiver() -> AsyncIterator[Callable[..., object]]:
    receivers: list[OtlpReceiver] = []

    async def start(**http: object) -> tuple[OtlpReceiver, TracesSink]:
        sink = TracesSink()
        config = OtlpReceiverConfig(protocols=ProtocolsConfig(
            http=HttpConfig(endpoint="127.0.0.1:0", request_timeout=5, **http)))  # type: ignore[arg-type]
        receiver = OtlpReceiver(Settings(ComponentID("otlp"), Kind.RECEIVER), config, sink)
        await receiver.start(TestHost())
        receivers.append(receiver)
        return receiver, sink

    yield start
    for receiver in receivers:
        await receiver.shutdown()


def head(port: int, *, length: int, extra: bytes = b"") -> bytes:
    return (f"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-protobuf\r\n"
            f"Content-Length: {length}\r\n").encode() + extra + b"\r\n"


async def read_reply(reader: asyncio.StreamReader, timeout: float) -> tuple[int, bytes, bool]:
    """(status, bytes read, whether the server closed the connection after its reply)."""
    data = b""
    closed = False
    async with asyncio.timeout(timeout):
        try:
            while b"\r\n\r\n" not in data:
                chunk = await reader.read(65536)
                if not chunk:
                    closed = True
                    break
                data += chunk
            if not closed:
                try:
                    data += await asyncio.wait_for(reader.read(), timeout)  # to EOF: the server closes
                    closed = True
                except TimeoutError:
                    pass
        except ConnectionResetError:  # closed with our unread bytes in its buffer: a reset
            closed = True
    assert data.startswith(b"HTTP/1.1 "), data[:200]
    return int(data.split(b" ", 2)[1]), data, closed


async def post_valid(port: int) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(f"http://127.0.0.1:{port}/v1/traces", content=make_request(2), headers=PB)


async def test_stalled_bodies_hold_no_slot_a_valid_request_needs(start_receiver) -> None:
    # 140 clients (more than max_concurrent_requests, 128) send their headers and a few bytes
    # of body, then stall. They used to hold every slot: each valid POST got 503.
    receiver, sink = await start_receiver(read_timeout=60)
    port = receiver.http_port
    stalled = []
    try:
        for _ in range(140):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(head(port, length=100_000) + b"\x0a\x05")
            await writer.drain()
            stalled.append((reader, writer))
        await asyncio.sleep(0.5)  # every stalled request is in the app, reading its body
        for _ in range(3):
            t0 = time.monotonic()
            resp = await post_valid(port)
            assert resp.status_code == 200, resp.content
            assert time.monotonic() - t0 < 3
        assert sink.span_count == 6
    finally:
        for _, writer in stalled:
            writer.close()


async def test_a_body_that_stalls_is_answered_408_and_the_connection_closed(start_receiver) -> None:
    receiver, sink = await start_receiver(read_timeout=1)
    port = receiver.http_port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = make_request(1)
    writer.write(head(port, length=len(body)) + body[:5])
    await writer.drain()
    t0 = time.monotonic()
    status, data, closed = await read_reply(reader, timeout=5)
    assert status == 408, data
    assert b"body not received within 1s" in data
    assert closed
    assert 0.8 < time.monotonic() - t0 < 3
    # A body trickled a byte at a time is bounded the same way (no idle gap is ever long).
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head(port, length=len(body)))
    reply = asyncio.create_task(read_reply(reader, timeout=5))
    for byte in body[:-1]:
        if reply.done():
            break
        writer.write(bytes([byte]))
        await asyncio.sleep(0.1)
    status, data, closed = await reply
    assert status == 408 and closed
    writer.close()
    assert sink.span_count == 0
    assert (await post_valid(port)).status_code == 200


async def test_headers_that_never_end_are_answered_408_and_the_connection_closed(start_receiver) -> None:
    receiver, _ = await start_receiver(read_header_timeout=1)
    port = receiver.http_port
    # One sends part of a head and stops; one trickles header bytes forever; one sends nothing.
    partial = await asyncio.open_connection("127.0.0.1", port)
    partial[1].write(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n")
    trickle = await asyncio.open_connection("127.0.0.1", port)
    trickle[1].write(b"POST /v1/traces HTTP/1.1\r\nX-Slow: ")
    silent = await asyncio.open_connection("127.0.0.1", port)
    t0 = time.monotonic()

    async def keep_trickling() -> None:
        while not trickle[0].at_eof():
            trickle[1].write(b"a")
            await asyncio.sleep(0.1)

    trickling = asyncio.create_task(keep_trickling())
    for reader, writer in (partial, trickle, silent):
        status, data, closed = await read_reply(reader, timeout=5)
        assert status == 408 and closed, data
        writer.close()
    trickling.cancel()
    assert time.monotonic() - t0 < 3
    assert (await post_valid(port)).status_code == 200


async def test_64_mib_of_headers_is_refused_with_431(start_receiver) -> None:
    receiver, sink = await start_receiver()  # max_request_header_size: 1 MiB
    port = receiver.http_port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    reply = asyncio.create_task(read_reply(reader, timeout=30))
    chunk = b"a" * (1 << 20)
    writer.write(f"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-protobuf\r\n"
                 "Content-Length: 0\r\nX-Huge: ".encode())
    try:
        for _ in range(64):
            if reply.done():
                break
            writer.write(chunk)
            await writer.drain()
        writer.write(b"\r\n\r\n")
        await writer.drain()
    except (ConnectionResetError, BrokenPipeError):
        pass  # the server stopped reading after its answer
    status, data, _ = await reply
    assert status == 431, data[:200]
    assert b"request headers exceed the limit of 1048576 bytes" in data
    writer.close()
    assert sink.span_count == 0
    assert (await post_valid(port)).status_code == 200


def test_limits_are_config_keys_with_collector_like_defaults() -> None:
    cfg = HttpConfig()
    assert (cfg.read_header_timeout, cfg.read_timeout, cfg.max_request_header_size) == (60.0, 60.0, 1 << 20)
    custom = HttpConfig.model_validate({"read_header_timeout": "5s", "read_timeout": "2m",
                                        "max_request_header_size": 65536})
    assert (custom.read_header_timeout, custom.read_timeout, custom.max_request_header_size) == (5.0, 120.0, 65536)
    with pytest.raises(ValueError):
        HttpConfig(max_request_header_size=0)


async def test_a_keep_alive_request_whose_head_trickles_is_cut_off_too(start_receiver) -> None:
    # A complete request, then on the same connection the next one's head, a byte at a time:
    # its deadline runs from its first byte, whatever the first request's answer does.
    receiver, sink = await start_receiver(read_header_timeout=1)
    port = receiver.http_port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = make_request(1)
    writer.write(head(port, length=len(body)) + body + b"POST /v1/traces HTTP/1.1\r\nX-Slow: ")
    t0 = time.monotonic()

    async def trickle() -> None:
        while not reader.at_eof():
            writer.write(b"a")
            await asyncio.sleep(0.1)

    trickling = asyncio.create_task(trickle())
    data = b""
    async with asyncio.timeout(5):
        try:
            while not reader.at_eof():
                data += await reader.read(65536)
        except ConnectionResetError:
            pass
    trickling.cancel()
    writer.close()
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    assert b"HTTP/1.1 408" in data, data[-300:]
    assert time.monotonic() - t0 < 3
    assert sink.span_count == 1
