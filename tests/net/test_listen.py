"""Listeners bind every address of their host (both loopbacks for `localhost`) and fail start-up
when any of them is taken, naming it: a port held on 127.0.0.1 by another process must not
leave tracehouse serving [::1] alone while clients that resolve `localhost` to 127.0.0.1 reach
the other process."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracehouse.core.component import ComponentID, Kind, ListenerRole, Settings
from tracehouse.core.testing import TestHost, TracesSink
from tracehouse.ingest.otlp.config import GrpcConfig, HttpConfig, OtlpReceiverConfig, ProtocolsConfig
from tracehouse.ingest.otlp.receiver import OtlpReceiver
from tracehouse.net.asgi_server import AsgiServer
from tracehouse.net.endpoint import bind_tcp, client_url, listen_addresses

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


IPV6 = _has_ipv6_loopback()
needs_ipv6 = pytest.mark.skipif(not IPV6, reason="this machine has no IPv6 loopback (::1 cannot be bound)")


@pytest.fixture
def squatter() -> Iterator[socket.socket]:
    """Another process's listener on 127.0.0.1, on a port left free on ::1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock


def _receiver(grpc_endpoint: str | None, http_endpoint: str | None) -> OtlpReceiver:
    protocols: dict[str, object] = {}  # a protocol given as None would mean its defaults
    if grpc_endpoint:
        protocols["grpc"] = GrpcConfig(endpoint=grpc_endpoint)
    if http_endpoint:
        protocols["http"] = HttpConfig(endpoint=http_endpoint)
    config = OtlpReceiverConfig(protocols=ProtocolsConfig.model_validate(protocols))
    return OtlpReceiver(Settings(ComponentID("otlp"), Kind.RECEIVER), config, TracesSink())


@pytest.fixture
async def on_localhost() -> AsyncIterator[OtlpReceiver]:
    receiver = _receiver("localhost:0", "localhost:0")
    await receiver.start(TestHost())
    yield receiver
    await receiver.shutdown()


def test_localhost_stands_for_both_loopbacks_and_an_unspecified_host_for_every_interface() -> None:
    assert [str(a) for a in listen_addresses("localhost:4317")] == ["127.0.0.1:4317"] + (["[::1]:4317"] if IPV6 else [])
    for unspecified in (":4317", "0.0.0.0:4317", "[::]:4317"):  # as Go's listeners, so the Collector's
        assert [str(a) for a in listen_addresses(unspecified)] == ["0.0.0.0:4317"] + (["[::]:4317"] if IPV6 else [])
    assert [str(a) for a in listen_addresses("[::1]:4317")] == ["[::1]:4317"]  # a literal address is itself
    assert [str(a) for a in listen_addresses("127.0.0.1:4317")] == ["127.0.0.1:4317"]


def test_port_zero_gives_every_address_the_same_free_port() -> None:
    sockets = bind_tcp("localhost:0")
    try:
        ports = {s.getsockname()[1] for s in sockets}
        assert len(sockets) == (2 if IPV6 else 1) and len(ports) == 1
    finally:
        for s in sockets:
            s.close()


def test_client_urls_name_what_a_local_client_dials() -> None:
    assert client_url("http", "localhost:0", 4318) == "http://localhost:4318"
    assert client_url("https", "0.0.0.0:4318", 4318) == "https://localhost:4318"
    assert client_url("http", ":4318", 4318) == "http://localhost:4318"
    assert client_url("http", "[::1]:4317", 4317) == "http://[::1]:4317"
    assert client_url("http", "10.1.2.3:8080", 8080) == "http://10.1.2.3:8080"


async def test_a_port_taken_on_127_0_0_1_fails_the_http_listener_on_localhost(squatter: socket.socket) -> None:
    port = squatter.getsockname()[1]
    server = AsgiServer(lambda *a: None, f"localhost:{port}", name="probe")
    with pytest.raises(OSError, match=rf"cannot listen on localhost:{port}.*127\.0\.0\.1:{port}.*Address already in use"):
        await server.start()


async def test_a_port_taken_on_127_0_0_1_fails_the_grpc_receiver_on_localhost(squatter: socket.socket) -> None:
    port = squatter.getsockname()[1]
    receiver = _receiver(f"localhost:{port}", None)
    try:
        with pytest.raises(OSError, match=rf"cannot listen on localhost:{port} \(127\.0\.0\.1:{port}\): Address already in use"):
            await receiver.start(TestHost())
    finally:
        await receiver.shutdown()


@needs_ipv6
async def test_a_port_taken_on_ipv6_loopback_fails_both_listeners_on_localhost() -> None:
    with socket.socket(socket.AF_INET6) as other:
        other.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        other.bind(("::1", 0))
        other.listen()
        port = other.getsockname()[1]
        for receiver in (_receiver(f"localhost:{port}", None), _receiver(None, f"localhost:{port}")):
            try:
                with pytest.raises(OSError, match=rf"\(\[::1\]:{port}\): Address already in use"):
                    await receiver.start(TestHost())
            finally:
                await receiver.shutdown()
        # Nothing stays bound: the failed listeners released 127.0.0.1 too.
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))


async def _answers_http(host: str, port: int) -> int:
    async with httpx.AsyncClient(timeout=5) as http:
        return (await http.post(f"http://{host}:{port}/v1/traces", content=b"",
                                headers={"content-type": "application/x-protobuf"})).status_code


async def _answers_grpc(target: str) -> bytes:
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
        result: bytes = await call(ExportTraceServiceRequest().SerializeToString(), timeout=5)
        return result


async def test_a_listener_on_localhost_answers_on_127_0_0_1(on_localhost: OtlpReceiver) -> None:
    assert await _answers_http("127.0.0.1", on_localhost.http_port or 0) == 200
    assert await _answers_grpc(f"127.0.0.1:{on_localhost.grpc_port}") == b""


@needs_ipv6
async def test_a_listener_on_localhost_answers_on_ipv6_loopback(on_localhost: OtlpReceiver) -> None:
    assert await _answers_http("[::1]", on_localhost.http_port or 0) == 200
    assert await _answers_grpc(f"ipv6:[::1]:{on_localhost.grpc_port}") == b""


async def test_listeners_report_urls_and_every_bound_address(on_localhost: OtlpReceiver) -> None:
    listeners = {listener.role: listener for listener in on_localhost.listeners()}
    http, grpc_port = on_localhost.http_port, on_localhost.grpc_port
    assert listeners[ListenerRole.OTLP_HTTP].url == f"http://localhost:{http}"
    assert listeners[ListenerRole.OTLP_GRPC].url == f"http://localhost:{grpc_port}"
    assert listeners[ListenerRole.OTLP_HTTP].addresses == (f"127.0.0.1:{http}",) + ((f"[::1]:{http}",) if IPV6 else ())
    assert listeners[ListenerRole.OTLP_GRPC].addresses == (
        (f"127.0.0.1:{grpc_port}",) + ((f"[::1]:{grpc_port}",) if IPV6 else ()))


async def test_the_health_check_extension_reports_its_listener() -> None:
    from tracehouse.extensions.health_check.config import HealthCheckConfig
    from tracehouse.extensions.health_check.extension import HealthCheckExtension

    extension = HealthCheckExtension(Settings(ComponentID("health_check"), Kind.EXTENSION),
                                     HealthCheckConfig(endpoint="localhost:0"))
    await extension.start(TestHost())
    try:
        (listener,) = extension.listeners()
        assert listener.role is ListenerRole.HEALTH
        assert listener.url == f"http://localhost:{extension.port}"
        async with httpx.AsyncClient(timeout=5) as http:
            assert (await http.get(f"{listener.url}/healthz")).status_code == 200
    finally:
        await extension.shutdown()
    assert extension.listeners() == []
