"""The ClickHouse client's `tls:` block (exporter and query API) for an https:// endpoint.

No ClickHouse server speaks TLS here, so the client is pointed at a TLS server that records
what reaches it (the client certificate, the headers) and answers like a failing ClickHouse:
enough to see that the CA, the client certificate, skip-verify and the server name override
travel from the config through clickhouse-connect to the handshake.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tls_certs import Pki
from tracehouse.core.config import load_config_dict
from tracehouse.core.errors import ConfigError
from tracehouse.query.config import QueryApiConfig
from tracehouse.sinks.clickhouse.client import open_client
from tracehouse.sinks.clickhouse.config import ClickHouseExporterConfig


@dataclass
class Seen:
    requests: list[dict[str, str]] = field(default_factory=list)
    client_certs: list[Any] = field(default_factory=list)


@contextmanager
def fake_clickhouse(pki: Pki, *, mtls: bool, names: tuple[str, ...] = ("localhost", "127.0.0.1")) -> Iterator[tuple[int, Seen]]:
    seen = Seen()
    cert = pki.issue(pki.server_ca, "clickhouse", *names)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert.cert, cert.key)
    if mtls:
        context.load_verify_locations(pki.client_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.client_certs.append(self.connection.getpeercert())  # type: ignore[attr-defined]
            seen.requests.append(dict(self.headers))
            body = b"Code: 999. DB::Exception: a test double, not ClickHouse"
            self.send_response(500)
            self.send_header("X-ClickHouse-Exception-Code", "999")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()


def exporter_tls(pki: Pki, port: int, **tls: Any) -> ClickHouseExporterConfig:
    return ClickHouseExporterConfig.model_validate({
        "endpoint": f"https://127.0.0.1:{port}", "username": "writer", "password": "s3cret", "tls": tls})


def connect(config: ClickHouseExporterConfig) -> None:
    client = open_client(config.endpoint, username=config.username, password=config.password, timeout_s=5,
                         tls=config.tls)
    client.close()


def test_the_client_presents_its_certificate_and_still_sends_its_password(pki: Pki) -> None:
    with fake_clickhouse(pki, mtls=True) as (port, seen):
        config = exporter_tls(pki, port, ca_file=str(pki.server_ca_file), cert_file=str(pki.client.cert),
                              key_file=str(pki.client.key))
        with pytest.raises(Exception, match="999|test double"):
            connect(config)
    assert seen.requests, "no request reached the server"
    assert "app.example.com" in str(seen.client_certs[0]["subjectAltName"])
    # Transport-level mTLS; the user is still the configured one with its password.
    assert seen.requests[0].get("Authorization", "").startswith("Basic ")
    assert "X-ClickHouse-SSL-Certificate-Auth" not in seen.requests[0]


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_the_server_certificate_is_verified_against_ca_file(pki: Pki) -> None:
    with fake_clickhouse(pki, mtls=False) as (port, seen):
        with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            connect(exporter_tls(pki, port, ca_file=str(pki.stranger_ca_file)))
        assert not seen.requests
        with pytest.raises(Exception, match="999|test double"):
            connect(exporter_tls(pki, port, ca_file=str(pki.stranger_ca_file), insecure_skip_verify=True))
        assert seen.requests, "skip-verify connects to any certificate"


def test_server_name_override_checks_the_certificate_against_another_name(pki: Pki) -> None:
    with fake_clickhouse(pki, mtls=False, names=("clickhouse.internal",)) as (port, seen):
        with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed|match"):
            connect(exporter_tls(pki, port, ca_file=str(pki.server_ca_file)))
        with pytest.raises(Exception, match="999|test double"):
            connect(exporter_tls(pki, port, ca_file=str(pki.server_ca_file),
                                 server_name_override="clickhouse.internal"))
        assert seen.requests


@pytest.mark.parametrize(("clickhouse", "where", "message"), [
    ({"endpoint": "http://ch:8123", "tls": {}}, "exporters::clickhouse", "not https://"),
    ({"endpoint": "chdb://./data", "tls": {}}, "exporters::clickhouse", "not https://"),
    ({"endpoint": "https://ch:8443", "tls": {"ca_file": "/nonexistent/ca.crt"}}, "exporters::clickhouse::tls::ca_file",
     "does not exist"),
    ({"endpoint": "https://ch:8443", "tls": {"cert_file": "CERT"}}, "exporters::clickhouse::tls",
     "cert_file and key_file go together"),
    ({"endpoint": "https://ch:8443", "tls": {"min_version": "1.3"}}, "exporters::clickhouse::tls::min_version",
     "unknown key"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_bad_clickhouse_tls_is_a_config_error(pki: Pki, clickhouse: dict[str, Any], where: str, message: str) -> None:
    tls = {k: (str(pki.client.cert) if v == "CERT" else v) for k, v in clickhouse["tls"].items()}
    data = {"receivers": {"otlp": {"protocols": {"http": {"endpoint": "127.0.0.1:0"}}}},
            "exporters": {"clickhouse": {**clickhouse, "tls": tls}},
            "service": {"pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["clickhouse"]}}}}
    with pytest.raises(ConfigError) as err:
        load_config_dict(data)
    assert err.value.path == where and message in err.value.reason, str(err.value)


def test_the_query_api_takes_the_same_clickhouse_tls_keys(pki: Pki) -> None:
    config = QueryApiConfig.model_validate({"clickhouse": {
        "endpoint": "https://ch:8443", "tls": {"ca_file": str(pki.server_ca_file)}}})
    assert config.clickhouse.tls is not None and config.clickhouse.tls.ca_file == str(pki.server_ca_file)
