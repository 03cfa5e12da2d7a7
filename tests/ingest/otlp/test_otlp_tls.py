"""TLS and mTLS on the OTLP receiver's gRPC and HTTP listeners, driven by the real
OpenTelemetry SDK exporters (gRPC: `credentials=grpc.ssl_channel_credentials(...)`; HTTP:
`certificate_file`, `client_certificate_file`, `client_key_file`), with certificates made
in the test (tls_certs.Pki). The SDK exporters are synchronous: they run on a thread while
the receiver serves in the test's event loop.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tls_certs import CertFiles, Pki
from tracehouse.core.component import ComponentID, Kind, Settings
from tracehouse.core.testing import TestHost, TracesSink
from tracehouse.ingest.otlp.config import OtlpReceiverConfig
from tracehouse.ingest.otlp.receiver import OtlpReceiver

PROTOCOLS = ("grpc", "http")
# Short: a refused export is retried by the SDK until this runs out.
REFUSED_TIMEOUT_S = 2.0


@pytest.fixture(autouse=True)
def _no_ca_bundle_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE win over the session's `verify`, which is
    # where the SDK's HTTP exporter puts certificate_file: with them set, it would be ignored.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


def sdk_spans(count: int = 3) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tracehouse.tests.tls")
    for i in range(count):
        with tracer.start_as_current_span(f"tls-span-{i}"):
            pass
    return list(memory.get_finished_spans())


@asynccontextmanager
async def receiver(**protocols: dict[str, Any]) -> AsyncIterator[tuple[OtlpReceiver, TracesSink]]:
    sink = TracesSink()
    config = OtlpReceiverConfig.model_validate({"protocols": {
        name: {"endpoint": "127.0.0.1:0", **settings} for name, settings in protocols.items()}})
    otlp = OtlpReceiver(Settings(ComponentID("otlp"), Kind.RECEIVER), config, sink)
    await otlp.start(TestHost())
    try:
        yield otlp, sink
    finally:
        await otlp.shutdown()


def exporter(protocol: str, otlp: OtlpReceiver, *, trust: Path | None, cert: CertFiles | None = None,
             timeout: float = 10.0) -> SpanExporter:
    """The SDK's exporter for `protocol`: TLS trusting `trust` (plaintext when None), presenting `cert`."""
    if protocol == "grpc":
        target = f"127.0.0.1:{otlp.grpc_port}"
        if trust is None:
            return GrpcSpanExporter(endpoint=target, insecure=True, timeout=timeout)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=trust.read_bytes(),
            private_key=cert.key.read_bytes() if cert else None,
            certificate_chain=cert.cert.read_bytes() if cert else None)
        return GrpcSpanExporter(endpoint=target, insecure=False, credentials=credentials, timeout=timeout)
    scheme = "http" if trust is None else "https"
    return HttpSpanExporter(endpoint=f"{scheme}://127.0.0.1:{otlp.http_port}/v1/traces",
                            certificate_file=str(trust) if trust else None,
                            client_certificate_file=str(cert.cert) if cert else None,
                            client_key_file=str(cert.key) if cert else None, timeout=timeout)


async def export(exp: SpanExporter, spans: int = 3) -> SpanExportResult:
    try:
        return await asyncio.to_thread(exp.export, sdk_spans(spans))
    finally:
        await asyncio.to_thread(exp.shutdown)


def root_cause(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return exc


async def eventually(ok: Callable[[], Any], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await ok():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_the_sdk_exports_over_tls_and_a_plaintext_client_is_refused(pki: Pki, protocol: str) -> None:
    async with receiver(**{protocol: {"tls": pki.server_tls()}}) as (otlp, sink):
        assert await export(exporter(protocol, otlp, trust=pki.server_ca_file)) is SpanExportResult.SUCCESS
        assert sink.span_count == 3
        plain = exporter(protocol, otlp, trust=None, timeout=REFUSED_TIMEOUT_S)
        assert await export(plain) is SpanExportResult.FAILURE
        # A client that does not trust the server's CA does not send either.
        assert await export(exporter(protocol, otlp, trust=pki.stranger_ca_file,
                                     timeout=REFUSED_TIMEOUT_S)) is SpanExportResult.FAILURE
        assert sink.span_count == 3


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_mtls_takes_only_client_certificates_from_the_client_ca(pki: Pki, protocol: str) -> None:
    async with receiver(**{protocol: {"tls": pki.server_tls(mtls=True)}}) as (otlp, sink):
        no_cert = exporter(protocol, otlp, trust=pki.server_ca_file, timeout=REFUSED_TIMEOUT_S)
        assert await export(no_cert) is SpanExportResult.FAILURE
        stranger = exporter(protocol, otlp, trust=pki.server_ca_file, cert=pki.stranger, timeout=REFUSED_TIMEOUT_S)
        assert await export(stranger) is SpanExportResult.FAILURE
        assert sink.span_count == 0
        good = exporter(protocol, otlp, trust=pki.server_ca_file, cert=pki.client)
        assert await export(good) is SpanExportResult.SUCCESS
        assert sink.span_count == 3


async def test_min_version_13_refuses_a_tls12_only_client_on_http(pki: Pki) -> None:
    async with receiver(http={"tls": pki.server_tls(min_version="1.3")}) as (otlp, sink):
        url = f"https://127.0.0.1:{otlp.http_port}/v1/traces"
        body = b""  # an empty request is a valid export of nothing
        tls12 = pki.client_context(max_version=ssl.TLSVersion.TLSv1_2)
        async with httpx.AsyncClient(verify=tls12, timeout=5) as client:
            with pytest.raises(httpx.ConnectError) as refused:
                await client.post(url, content=body, headers={"content-type": "application/x-protobuf"})
            # asyncio's TLS closes without the alert: the client sees the handshake cut short.
            assert isinstance(root_cause(refused.value), ssl.SSLError), repr(root_cause(refused.value))
        async with httpx.AsyncClient(verify=pki.client_context(), timeout=5) as client:
            resp = await client.post(url, content=body, headers={"content-type": "application/x-protobuf"})
            assert resp.status_code == 200
            assert resp.extensions["network_stream"].get_extra_info("ssl_object").version() == "TLSv1.3"


async def test_the_grpc_listener_speaks_tls_12_and_13(pki: Pki) -> None:
    """What the gRPC listener takes (it cannot be limited further: config refuses min_version 1.3 there)."""
    async with receiver(grpc={"tls": pki.server_tls()}) as (otlp, _):
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            context = pki.client_context(max_version=version)
            context.set_alpn_protocols(["h2"])
            reader, writer = await asyncio.open_connection("127.0.0.1", otlp.grpc_port, ssl=context,
                                                           server_hostname="localhost")
            assert writer.get_extra_info("ssl_object").version() == version.name.replace("_", ".")
            writer.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_rotated_certificate_is_served_without_a_restart(pki: Pki, protocol: str) -> None:
    async with receiver(**{protocol: {"tls": pki.server_tls(reload_interval="100ms")}}) as (otlp, sink):
        assert await export(exporter(protocol, otlp, trust=pki.server_ca_file)) is SpanExportResult.SUCCESS
        pki.rotate_server(pki.stranger_ca)  # renewed by another CA: a client can tell the new one

        async def new_one_served() -> bool:
            exp = exporter(protocol, otlp, trust=pki.stranger_ca_file, timeout=REFUSED_TIMEOUT_S)
            return await export(exp, spans=1) is SpanExportResult.SUCCESS

        await eventually(new_one_served, "the rotated certificate")
        old = exporter(protocol, otlp, trust=pki.server_ca_file, timeout=REFUSED_TIMEOUT_S)
        assert await export(old) is SpanExportResult.FAILURE, "the old certificate is no longer served"


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_rotated_client_ca_is_picked_up_with_client_ca_file_reload(pki: Pki, protocol: str) -> None:
    tls = pki.server_tls(mtls=True, client_ca_file_reload=True, reload_interval="100ms")
    async with receiver(**{protocol: {"tls": tls}}) as (otlp, sink):
        assert await export(exporter(protocol, otlp, trust=pki.server_ca_file, cert=pki.client)) \
            is SpanExportResult.SUCCESS
        # The clients' CA is replaced by the stranger's: its certificates now get in, the old ones not.
        pki.client_ca_file.write_bytes(pki.stranger_ca_file.read_bytes())

        async def stranger_accepted() -> bool:
            exp = exporter(protocol, otlp, trust=pki.server_ca_file, cert=pki.stranger, timeout=REFUSED_TIMEOUT_S)
            return await export(exp, spans=1) is SpanExportResult.SUCCESS

        await eventually(stranger_accepted, "the new client CA")
        old = exporter(protocol, otlp, trust=pki.server_ca_file, cert=pki.client, timeout=REFUSED_TIMEOUT_S)
        assert await export(old) is SpanExportResult.FAILURE, "a certificate of the replaced CA is refused"
