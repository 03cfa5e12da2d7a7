from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from tracehouse.core.component import ComponentConfig

# The resource attributes this processor can set, as the Collector's k8sattributes names
# them in `extract.metadata`.
POD_NAME = "k8s.pod.name"
POD_UID = "k8s.pod.uid"
POD_IP = "k8s.pod.ip"
NAMESPACE = "k8s.namespace.name"
NODE = "k8s.node.name"
DEPLOYMENT = "k8s.deployment.name"
REPLICASET = "k8s.replicaset.name"
CONTAINER = "k8s.container.name"
METADATA = (POD_NAME, POD_UID, POD_IP, NAMESPACE, NODE, DEPLOYMENT, REPLICASET, CONTAINER)
# The Collector's default set, plus the container and the pod IP a sidecar knows for free.
DEFAULT_METADATA = [POD_NAME, POD_UID, NAMESPACE, NODE, DEPLOYMENT, CONTAINER, POD_IP]


class FieldExtractConfig(ComponentConfig):
    """One `extract.labels` / `extract.annotations` rule, in the Collector's shape."""

    # The attribute name; empty: k8s.pod.labels.<key> / k8s.pod.annotations.<key>
    # (with key_regex, `$1`-style groups of the match may be used, as in the Collector).
    tag_name: str = ""
    key: str = ""
    key_regex: str = ""
    # Only the pod's own labels and annotations are readable without the API.
    from_: Literal["pod"] = Field(default="pod", alias="from")

    @field_validator("key_regex")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
        return pattern

    @model_validator(mode="after")
    def _one_key(self) -> FieldExtractConfig:
        if bool(self.key) == bool(self.key_regex):
            raise ValueError("set exactly one of key and key_regex")
        return self


class ExtractConfig(ComponentConfig):
    metadata: list[str] = Field(default_factory=lambda: list(DEFAULT_METADATA))
    labels: list[FieldExtractConfig] = []
    annotations: list[FieldExtractConfig] = []

    @field_validator("metadata")
    @classmethod
    def _known(cls, metadata: list[str]) -> list[str]:
        unknown = [m for m in metadata if m not in METADATA]
        if unknown:
            raise ValueError(f"unknown metadata {', '.join(map(repr, unknown))}; "
                             f"known without a Kubernetes API watch: {', '.join(METADATA)}")
        return list(dict.fromkeys(metadata))


class K8sAttributesConfig(ComponentConfig):
    extract: ExtractConfig = ExtractConfig()
    # A downwardAPI volume with the files `labels` and `annotations` (metadata.labels and
    # metadata.annotations); a missing file means no labels (or annotations) are known.
    pod_info_dir: str = "/etc/podinfo"
    # Replace attributes the application already set. false (the Collector's behaviour):
    # an app that knows better (a gateway forwarding other pods' data) keeps its values.
    override: bool = False
