"""Config of the `health_check` extension."""

from __future__ import annotations

from pydantic import field_validator

from tracehouse.core.component import ComponentConfig
from tracehouse.net.endpoint import parse_endpoint
from tracehouse.net.tls import TlsServerConfig


class HealthCheckConfig(ComponentConfig):
    # The Collector's health_check extension listens on 13133; localhost unless a
    # container sets 0.0.0.0.
    endpoint: str = "localhost:13133"
    # Off by default: the kubelet's probes speak plain HTTP or unverified HTTPS, and never
    # present a client certificate, so client_ca_file here fails the probes.
    tls: TlsServerConfig | None = None

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, v: str) -> str:
        parse_endpoint(v)
        return v
