"""TLS and mTLS on the query API's listener and on health_check's, over real sockets with httpx
and certificates made in the test (tls_certs.Pki)."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tls_certs import Pki
from tracehouse.core.component import ComponentID, Kind, Settings
from tracehouse.core.config import load_config_dict
from tracehouse.core.service import Service
from tracehouse.core.telemetry import Telemetry
from tracehouse.extensions.health_check.extension import HealthCheckExtension
from tracehouse.query.config import QueryApiConfig
from tracehouse.query.extension import QueryApiExtension


class Host:
    def __init__(self) -> None:
        self.telemetry = Telemetry()

    def report_status(self, *args: Any, **kwargs: Any) -> None:
        pass

    def statuses(self) -> dict[str, tuple[str, str | None]]:
        return {}

    def ready(self) -> bool:
        return True

    def healthy(self) -> bool:
        return True


@asynccontextmanager
async def query_api(chdb_endpoint: str, tls: dict[str, Any]) -> AsyncIterator[QueryApiExtension]:
    config = QueryApiConfig.model_validate({
        "endpoint": "127.0.0.1:0", "tls": tls,
        "clickhouse": {"endpoint": chdb_endpoint, "database": f"tls_{uuid.uuid4().hex[:8]}"}})
    extension = QueryApiExtension(Settings(ComponentID("query_api"), Kind.EXTENSION), config)
    await extension.start(Host())  # type: ignore[arg-type]
    try:
        yield extension
    finally:
        await extension.shutdown()


def client(port: int, verify: ssl.SSLContext) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"https://127.0.0.1:{port}", verify=verify, timeout=5)


async def get(port: int, verify: ssl.SSLContext, path: str = "/healthz") -> httpx.Response:
    async with client(port, verify) as http:
        return await http.get(path)


async def test_the_query_api_serves_https_and_refuses_plain_http(pki: Pki, chdb_endpoint: str) -> None:
    async with query_api(chdb_endpoint, pki.server_tls()) as api:
        assert api.port
        resp = await get(api.port, pki.client_context())
        assert resp.status_code == 200 and resp.json() == {"status": "ok"}
        assert resp.extensions["network_stream"].get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
        openapi = await get(api.port, pki.client_context(), "/openapi.json")
        assert "/api/v1/traces" in openapi.json()["paths"]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api.port}", timeout=5) as plain:
            with pytest.raises(httpx.TransportError):
                await plain.get("/healthz")
        with pytest.raises(httpx.ConnectError):
            await get(api.port, pki.client_context(trust=pki.stranger_ca_file))


async def test_query_api_mtls(pki: Pki, chdb_endpoint: str) -> None:
    async with query_api(chdb_endpoint, pki.server_tls(mtls=True)) as api:
        assert api.port
        for refused in (pki.client_context(), pki.client_context(cert=pki.stranger)):
            with pytest.raises(httpx.TransportError):
                await get(api.port, refused)
        assert (await get(api.port, pki.client_context(cert=pki.client))).status_code == 200


async def test_query_api_min_version_13_refuses_a_tls12_only_client(pki: Pki, chdb_endpoint: str) -> None:
    async with query_api(chdb_endpoint, pki.server_tls(min_version="1.3")) as api:
        assert api.port
        with pytest.raises(httpx.ConnectError):
            await get(api.port, pki.client_context(max_version=ssl.TLSVersion.TLSv1_2))
        resp = await get(api.port, pki.client_context())
        assert resp.extensions["network_stream"].get_extra_info("ssl_object").version() == "TLSv1.3"


async def test_query_api_max_version_12_speaks_12(pki: Pki, chdb_endpoint: str) -> None:
    async with query_api(chdb_endpoint, pki.server_tls(max_version="1.2")) as api:
        assert api.port
        resp = await get(api.port, pki.client_context())
        assert resp.extensions["network_stream"].get_extra_info("ssl_object").version() == "TLSv1.2"


async def test_query_api_serves_a_rotated_certificate_and_keeps_open_connections(pki: Pki,
                                                                                chdb_endpoint: str) -> None:
    async with query_api(chdb_endpoint, pki.server_tls(reload_interval="100ms")) as api:
        assert api.port
        async with client(api.port, pki.client_context()) as kept:
            assert (await kept.get("/healthz")).status_code == 200
            pki.rotate_server(pki.stranger_ca)
            deadline = time.monotonic() + 10
            while True:
                try:
                    assert (await get(api.port, pki.client_context(trust=pki.stranger_ca_file))).status_code == 200
                    break
                except httpx.ConnectError:
                    assert time.monotonic() < deadline, "the rotated certificate was not served"
                    await asyncio.sleep(0.1)
            with pytest.raises(httpx.ConnectError):
                await get(api.port, pki.client_context())
            # A connection made before the rotation carries on.
            assert (await kept.get("/healthz")).status_code == 200


async def test_an_idle_tls_client_does_not_hold_up_shutdown(pki: Pki, chdb_endpoint: str) -> None:
    """An idle keep-alive client never answers the server's close_notify; shutdown does not wait 30 s for it."""
    async with query_api(chdb_endpoint, pki.server_tls()) as api:
        assert api.port
        idle = client(api.port, pki.client_context())
        assert (await idle.get("/healthz")).status_code == 200
        t0 = time.monotonic()
        await api.shutdown()
        assert time.monotonic() - t0 < 5
    await idle.aclose()


def health_config(tls: dict[str, Any] | None) -> dict[str, Any]:
    health: dict[str, Any] = {"endpoint": "127.0.0.1:0"}
    if tls is not None:
        health["tls"] = tls
    return {
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": "127.0.0.1:0"}}}},
        "exporters": {"debug": {}},
        "extensions": {"health_check": health},
        "service": {"extensions": ["health_check"],
                    "pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["debug"]}}},
    }


def health_port(service: Service) -> int:
    (node,) = [n for n in service._nodes if n.kind is Kind.EXTENSION]
    assert isinstance(node.component, HealthCheckExtension) and node.component.port
    return node.component.port


@pytest.mark.parametrize("mtls", [False, True], ids=["tls", "mtls"])
async def test_health_check_over_tls(pki: Pki, mtls: bool) -> None:
    service = Service(load_config_dict(health_config(pki.server_tls(mtls=mtls))))
    await service.start()
    try:
        port = health_port(service)
        cert = pki.client if mtls else None
        for path in ("/healthz", "/readyz", "/metrics"):
            assert (await get(port, pki.client_context(cert=cert), path)).status_code == 200
        if mtls:
            with pytest.raises(httpx.TransportError):
                await get(port, pki.client_context())
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as plain:
            with pytest.raises(httpx.TransportError):
                await plain.get("/healthz")
    finally:
        await service.shutdown()


async def test_the_image_healthcheck_follows_an_https_query_api(pki: Pki, chdb_endpoint: str) -> None:
    """deploy/docker/healthcheck.py asks over HTTPS too (without verifying: its own loopback)."""
    script = Path(__file__).resolve().parents[2] / "deploy" / "docker" / "healthcheck.py"
    async with query_api(chdb_endpoint, pki.server_tls()) as api:
        env = {"PATH": os.environ.get("PATH", ""), "TRACEHOUSE_BIND": "127.0.0.1",
               "TRACEHOUSE_QUERY_PORT": str(api.port), "TRACEHOUSE_HEALTH_PORT": "9"}
        result = await asyncio.to_thread(subprocess.run, [sys.executable, str(script)], env=env,
                                         capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
