"""Kafka connection settings shared by the `kafka` exporter and the `kafka` receiver.

Keys follow the Collector's configkafka.ClientConfig (`brokers`, `client_id`, `tls`,
`auth.sasl`), so a config written for a stock Collector reads the same here; so do the
topics of the three signals (`topic` for traces, `traces::topic`, `logs::topic`,
`metrics::topic`), which both components resolve the same way (`SignalTopics`).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import field_validator, model_validator

from tracehouse.core.component import ComponentConfig, Signal
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


# The Collector kafkaexporter's `otlp_proto`: one serialized OTLP export request per message.
SUPPORTED_ENCODING = "otlp_proto"
_TOPIC_RE = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


def check_topic(v: str) -> str:
    if not _TOPIC_RE.match(v) or v in (".", ".."):
        raise ValueError(f"{v!r} is not a valid Kafka topic name (letters, digits, '.', '_', '-'; at most 249)")
    return v


def check_encoding(v: str) -> str:
    if v != SUPPORTED_ENCODING:
        raise ValueError(f"encoding {v!r} is not supported; the supported value is {SUPPORTED_ENCODING}")
    return v


DEFAULT_TOPICS = {Signal.TRACES: "otlp_spans", Signal.LOGS: "otlp_logs", Signal.METRICS: "otlp_metrics"}


class SignalTopicConfig(ComponentConfig):
    """`traces:`, `logs:`, `metrics:` (the Collector's kafka exporter and receiver keys):
    one signal's topic; empty means the signal's default (otlp_spans, otlp_logs, otlp_metrics)."""

    topic: str = ""
    encoding: str = SUPPORTED_ENCODING

    @field_validator("topic")
    @classmethod
    def _check_topic(cls, v: str) -> str:
        return v if v == "" else check_topic(v)

    _encoding = field_validator("encoding")(check_encoding)


class SignalTopics(ComponentConfig):
    """The topics of the three signals, resolved from `topic` (traces, the older key) and the
    per-signal sections; shared by the Kafka exporter's and receiver's configs."""

    topic: str = DEFAULT_TOPICS[Signal.TRACES]
    encoding: str = SUPPORTED_ENCODING
    traces: SignalTopicConfig = SignalTopicConfig()
    logs: SignalTopicConfig = SignalTopicConfig()
    metrics: SignalTopicConfig = SignalTopicConfig()

    _topic = field_validator("topic")(check_topic)
    _encoding = field_validator("encoding")(check_encoding)

    def topic_of(self, signal: Signal) -> str:
        section: SignalTopicConfig = getattr(self, signal.value)
        if section.topic:
            return section.topic
        return self.topic if signal is Signal.TRACES else DEFAULT_TOPICS[signal]

    @model_validator(mode="after")
    def _consistent_topics(self) -> SignalTopics:
        if "topic" in self.model_fields_set and self.traces.topic and self.traces.topic != self.topic:
            raise ValueError(f"topic ({self.topic!r}) and traces.topic ({self.traces.topic!r}) both name the traces "
                             "topic; keep one")
        topics = {signal: self.topic_of(signal) for signal in Signal}
        for signal, topic in topics.items():
            for other, other_topic in topics.items():
                if other is not signal and other_topic == topic:
                    raise ValueError(f"{signal.value} and {other.value} share the topic {topic!r}: each signal needs "
                                     "its own (a consumer tells them apart by topic)")
        return self
