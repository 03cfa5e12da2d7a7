"""Kafka connection settings shared by the `kafka` exporter and the `kafka` receiver.

Keys follow the Collector's configkafka.ClientConfig (`brokers`, `client_id`, `tls`,
`auth.sasl`), so a config written for a stock Collector reads the same here.
"""

from __future__ import annotations

import ssl
from typing import Any, Literal

from pydantic import field_validator, model_validator

from tracehouse.core.component import ComponentConfig


class KafkaTLSConfig(ComponentConfig):
    """TLS to the brokers. Present (even empty) means on; verification is on by default."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    insecure_skip_verify: bool = False

    @model_validator(mode="after")
    def _pair(self) -> KafkaTLSConfig:
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("cert_file and key_file go together (client certificate authentication)")
        return self


class KafkaSASLConfig(ComponentConfig):
    mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    username: str
    password: str


class KafkaAuthConfig(ComponentConfig):
    sasl: KafkaSASLConfig | None = None


class KafkaClientConfig(ComponentConfig):
    brokers: list[str] = ["localhost:9092"]
    client_id: str = "tracehouse"
    tls: KafkaTLSConfig | None = None
    auth: KafkaAuthConfig = KafkaAuthConfig()

    @field_validator("brokers", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        # `brokers: ${env:KAFKA_BROKERS}` expands to one comma-separated string.
        if isinstance(v, str):
            v = [b.strip() for b in v.split(",") if b.strip()]
        return v

    @field_validator("brokers")
    @classmethod
    def _check_brokers(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one broker (host:port) is required")
        for broker in v:
            host, sep, port = broker.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"{broker!r} is not host:port")
        return v


def client_kwargs(config: KafkaClientConfig) -> dict[str, Any]:
    """Keyword arguments for AIOKafkaProducer / AIOKafkaConsumer / AIOKafkaAdminClient."""
    kwargs: dict[str, Any] = {"bootstrap_servers": list(config.brokers), "client_id": config.client_id}
    sasl = config.auth.sasl
    if config.tls is not None:
        kwargs["ssl_context"] = _ssl_context(config.tls)
    if sasl is not None:
        kwargs.update(sasl_mechanism=sasl.mechanism, sasl_plain_username=sasl.username,
                      sasl_plain_password=sasl.password)
    kwargs["security_protocol"] = {(False, False): "PLAINTEXT", (True, False): "SSL",
                                   (False, True): "SASL_PLAINTEXT", (True, True): "SASL_SSL"}[
        (config.tls is not None, sasl is not None)]
    return kwargs


def _ssl_context(tls: KafkaTLSConfig) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=tls.ca_file or None)
    if tls.cert_file:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
