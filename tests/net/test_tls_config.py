"""`tls:` settings (net/tls.py): what a config may say, and the errors that name the key and the file.

Every listener takes the same server keys and the Kafka client the client keys; the files
are checked when the config loads (exist, parse, key matches certificate) unless file checks
are off (`validate-config --skip-file-checks`). The handshakes themselves are tested per
listener (tests/ingest/otlp/test_otlp_tls.py, tests/query/test_query_tls.py,
tests/sinks/test_kafka_tls.py).
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization

from tls_certs import Pki
from tracehouse.core.config import load_config_dict
from tracehouse.core.errors import ConfigError
from tracehouse.net.kafka import KafkaClientConfig, client_kwargs
from tracehouse.net.tls import ServerTls, TlsClientConfig, TlsServerConfig, client_context


def otlp_config(grpc_tls: Any = None, http_tls: Any = None) -> dict[str, Any]:
    protocols: dict[str, Any] = {}
    if grpc_tls is not None:
        protocols["grpc"] = {"endpoint": "127.0.0.1:0", "tls": grpc_tls}
    if http_tls is not None:
        protocols["http"] = {"endpoint": "127.0.0.1:0", "tls": http_tls}
    return {
        "receivers": {"otlp": {"protocols": protocols}},
        "exporters": {"debug": None},
        "service": {"pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["debug"]}}},
    }


def config_error(data: dict[str, Any], **kwargs: Any) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        load_config_dict(data, **kwargs)
    return err.value


def test_listeners_and_clients_load_their_tls_settings(pki: Pki) -> None:
    data = otlp_config(grpc_tls=pki.server_tls(mtls=True, reload_interval="30s", client_ca_file_reload=True),
                       http_tls=pki.server_tls(min_version="1.3"))
    data["extensions"] = {
        "query_api": {"endpoint": "127.0.0.1:0", "tls": pki.server_tls(mtls=True, max_version=1.3)},
        "health_check": {"endpoint": "127.0.0.1:0", "tls": pki.server_tls()},
    }
    data["exporters"]["kafka"] = {"brokers": ["k:9093"], "tls": {
        "ca_file": str(pki.server_ca_file), "cert_file": str(pki.client.cert), "key_file": str(pki.client.key),
        "min_version": "1.3"}}
    data["service"]["extensions"] = ["query_api", "health_check"]
    config = load_config_dict(data)
    otlp = next(e.config for e in config.components.values() if e.id.type == "otlp")
    grpc_tls = otlp.protocols.grpc.tls  # type: ignore[attr-defined]
    assert grpc_tls.client_ca_file == str(pki.client_ca_file) and grpc_tls.reload_interval == 30
    assert grpc_tls.min_version == "1.2" and grpc_tls.max_version == "", "the Collector's defaults"
    assert otlp.protocols.http.tls.min_version == "1.3"  # type: ignore[attr-defined]
    query = next(e.config for e in config.components.values() if e.id.type == "query_api")
    assert query.tls.max_version == "1.3", "a YAML float reads as the version"  # type: ignore[attr-defined]
    kafka = next(e.config for e in config.components.values() if e.id.type == "kafka")
    kwargs = client_kwargs(kafka)  # type: ignore[arg-type]
    assert kwargs["security_protocol"] == "SSL"
    assert kwargs["ssl_context"].minimum_version is ssl.TLSVersion.TLSv1_3


@pytest.mark.parametrize(("tls", "where", "message"), [
    ({"key_file": "KEY"}, "tls::cert_file", "required key is missing"),
    ({"cert_file": "CERT"}, "tls::key_file", "required key is missing"),
    ({"cert_file": "/nonexistent/tls.crt", "key_file": "KEY"}, "tls::cert_file",
     "file '/nonexistent/tls.crt' does not exist"),
    ({"cert_file": "CERT", "key_file": "KEY", "client_ca_file": "/nonexistent/ca.crt"}, "tls::client_ca_file",
     "file '/nonexistent/ca.crt' does not exist"),
    ({"cert_file": "CERT", "key_file": "OTHER_KEY"}, "tls", "is not the key of cert_file"),
    ({"cert_file": "KEY", "key_file": "KEY"}, "tls", "holds no PEM certificate"),
    ({"cert_file": "CERT", "key_file": "CERT"}, "tls", "holds no PEM private key"),
    ({"cert_file": "CERT", "key_file": "ENCRYPTED_KEY"}, "tls", "is encrypted"),
    ({"cert_file": "CERT", "key_file": "KEY", "client_ca_file": "KEY"}, "tls", "client_ca_file"),
    ({"cert_file": "CERT", "key_file": "KEY", "min_version": "1.1"}, "tls::min_version", "TLS 1.1 is deprecated"),
    ({"cert_file": "CERT", "key_file": "KEY", "min_version": "1.4"}, "tls::min_version", "'1.2' or '1.3'"),
    ({"cert_file": "CERT", "key_file": "KEY", "min_version": "1.3", "max_version": "1.2"}, "tls",
     "max_version 1.2 is below min_version 1.3"),
    ({"cert_file": "CERT", "key_file": "KEY", "ca_file": "CA"}, "tls", "client_ca_file"),
    ({"cert_file": "CERT", "key_file": "KEY", "reload_interval": "soon"}, "tls::reload_interval", "invalid duration"),
    ({"cert_file": "CERT", "key_file": "KEY", "cipher_suites": ["X"]}, "tls::cipher_suites", "unknown key"),
    ({"cert_file": "CERT", "key_file": "KEY", "client_ca_file_reload": True}, "tls", "client_ca_file is not"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_bad_server_tls_is_a_config_error_naming_the_key(pki: Pki, tmp_path: Path, tls: dict[str, Any],
                                                        where: str, message: str) -> None:
    other = pki.issue(pki.server_ca, "other", "localhost")
    key = serialization.load_pem_private_key(pki.server.key.read_bytes(), None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(b"secret")))
    files = {"CERT": str(pki.server.cert), "KEY": str(pki.server.key), "OTHER_KEY": str(other.key),
             "ENCRYPTED_KEY": str(encrypted), "CA": str(pki.server_ca_file)}
    tls = {k: files.get(v, v) if isinstance(v, str) else v for k, v in tls.items()}
    err = config_error(otlp_config(http_tls=tls))
    assert err.path == f"receivers::otlp::protocols::http::{where}", str(err)
    assert message in err.reason, str(err)


def test_the_grpc_listener_refuses_version_limits_it_cannot_enforce(pki: Pki) -> None:
    err = config_error(otlp_config(grpc_tls=pki.server_tls(min_version="1.3")))
    assert err.path == "receivers::otlp::protocols::grpc::tls"
    assert "cannot be limited" in err.reason
    load_config_dict(otlp_config(grpc_tls=pki.server_tls(max_version="1.3")))  # what it does anyway


@pytest.mark.parametrize(("tls", "where", "message"), [
    ({"cert_file": "CERT"}, "tls", "cert_file and key_file go together"),
    ({"ca_file": "/nonexistent/ca.pem"}, "tls::ca_file", "does not exist"),
    ({"ca_file": "KEY"}, "tls", "ca_file"),
    ({"min_version": "1.0"}, "tls::min_version", "deprecated"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_bad_kafka_tls_is_a_config_error_naming_the_key(pki: Pki, tls: dict[str, Any], where: str,
                                                       message: str) -> None:
    files = {"CERT": str(pki.client.cert), "KEY": str(pki.client.key)}
    tls = {k: files.get(v, v) for k, v in tls.items()}
    data = otlp_config(http_tls={})
    data["receivers"]["otlp"]["protocols"]["http"].pop("tls")
    data["exporters"] = {"kafka": {"brokers": ["k:9093"], "tls": tls}}
    data["service"]["pipelines"]["traces"]["exporters"] = ["kafka"]
    err = config_error(data)
    assert err.path == f"exporters::kafka::{where}", str(err)
    assert message in err.reason, str(err)


def test_file_checks_can_be_skipped_for_a_config_checked_elsewhere(tmp_path: Path) -> None:
    tls = {"cert_file": "/etc/tracehouse/tls/tls.crt", "key_file": "/etc/tracehouse/tls/tls.key",
           "client_ca_file": "/etc/tracehouse/tls/ca.crt"}
    data = otlp_config(grpc_tls=tls, http_tls=tls)
    assert "does not exist" in config_error(data).reason
    load_config_dict(data, check_files=False)
    # What is not about files is still checked.
    assert "required key" in config_error(otlp_config(http_tls={"key_file": "x"}), check_files=False).reason

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    cli = [sys.executable, "-m", "tracehouse.core.cli", "validate-config"]
    refused = subprocess.run([*cli, str(path)], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1
    assert "receivers::otlp::protocols::grpc::tls::cert_file: file '/etc/tracehouse/tls/tls.crt' does not exist" \
        in refused.stderr
    skipped = subprocess.run([*cli, "--skip-file-checks", str(path)], capture_output=True, text=True, timeout=60)
    assert skipped.returncode == 0, skipped.stderr


def test_kafka_client_context_follows_the_collector_keys(pki: Pki) -> None:
    # Present and empty: TLS, verified against the system's CAs, host name checked.
    default = client_context(TlsClientConfig())
    assert default is not None and default.verify_mode is ssl.CERT_REQUIRED and default.check_hostname
    assert default.minimum_version is ssl.TLSVersion.TLSv1_2
    assert len(default.get_ca_certs()) > 0 or ssl.get_default_verify_paths().cafile is None
    # ca_file alone: only that CA; include_system_ca_certs_pool adds the system's.
    own = client_context(TlsClientConfig(ca_file=str(pki.server_ca_file)))
    assert own is not None and len(own.get_ca_certs()) == 1
    skip = client_context(TlsClientConfig(insecure_skip_verify=True))
    assert skip is not None and skip.verify_mode is ssl.CERT_NONE and not skip.check_hostname
    assert client_context(TlsClientConfig(insecure=True)) is None
    plain = client_kwargs(KafkaClientConfig(brokers=["k:9092"], tls=TlsClientConfig(insecure=True)))
    assert plain["security_protocol"] == "PLAINTEXT" and "ssl_context" not in plain
    sasl = client_kwargs(KafkaClientConfig.model_validate({
        "brokers": ["k:9093"], "tls": {"ca_file": str(pki.server_ca_file), "max_version": "1.2"},
        "auth": {"sasl": {"mechanism": "SCRAM-SHA-512", "username": "u", "password": "p"}}}))
    assert sasl["security_protocol"] == "SASL_SSL" and sasl["ssl_context"].maximum_version is ssl.TLSVersion.TLSv1_2


async def test_a_rotation_that_does_not_load_keeps_the_current_certificate(pki: Pki) -> None:
    events: list[tuple[str, dict[str, Any]]] = []

    class Log:
        def info(self, event: str, **kw: Any) -> None:
            events.append((event, kw))

        warning = info

    tls = ServerTls(TlsServerConfig(**pki.server_tls(reload_interval=0.05)), name="test", logger=Log())  # type: ignore[arg-type]
    context = tls.ssl_context()
    assert not tls.check(), "nothing changed"
    pki.server.key.write_text("half-written")
    assert not tls.check()
    assert tls.reloads == 0 and "do not load" in events[-1][0] and "holds no PEM private key" in events[-1][1]["error"]
    pki.rotate_server(pki.stranger_ca)
    assert tls.check() and tls.reloads == 1
    assert "reloaded" in events[-1][0]
    # The listener's context stays the one uvicorn holds; the new one is handed over per handshake.
    assert tls._current is not context
    tls.start()
    await asyncio.sleep(0)
    await tls.close()
    await tls.close()
