"""Kafka connection settings shared by the `kafka` exporter and the `kafka` receiver.

Keys follow the Collector's configkafka.ClientConfig (`brokers`, `client_id`, `tls`,
`auth.sasl`), so a config written for a stock Collector reads the same here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import field_validator

from tracehouse.core.component import ComponentConfig
from tracehouse.net.tls import TlsClientConfig, client_context


class KafkaSASLConfig(ComponentConfig):
    mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    username: str
    password: str


class KafkaAuthConfig(ComponentConfig):
    sasl: KafkaSASLConfig | None = None


class KafkaClientConfig(ComponentConfig):
    brokers: list[str] = ["localhost:9092"]
    client_id: str = "tracehouse"
    # The Collector's client-side configtls keys (net/tls.py). Present (even empty) means TLS.
    tls: TlsClientConfig | None = None
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
    """Keyword arguments for AIOKafkaProducer / AIOKafkaConsumer / AIOKafkaAdminClient.

    Builds the TLS context from the files as they are now (each connect attempt calls this,
    so rotated files are picked up on reconnect); raises TlsFileError naming the key when a
    file no longer loads."""
    kwargs: dict[str, Any] = {"bootstrap_servers": list(config.brokers), "client_id": config.client_id}
    sasl = config.auth.sasl
    context = client_context(config.tls) if config.tls is not None else None
    if context is not None:
        kwargs["ssl_context"] = context
    if sasl is not None:
        kwargs.update(sasl_mechanism=sasl.mechanism, sasl_plain_username=sasl.username,
                      sasl_plain_password=sasl.password)
    kwargs["security_protocol"] = {(False, False): "PLAINTEXT", (True, False): "SSL",
                                   (False, True): "SASL_PLAINTEXT", (True, True): "SASL_SSL"}[
        (context is not None, sasl is not None)]
    return kwargs
