"""The `k8sattributes` processor: the pod's Kubernetes metadata as resource attributes.

The values are read once, at start, from the downward API (podinfo.py); each batch then
costs one pass over its resources' attribute keys, never a look at a span, log record or
data point: a resource-level operation, in pipelines of every signal.
"""

from __future__ import annotations

import re
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tracehouse.core.component import Consumer, Host, Settings
from tracehouse.core.pdata import OtlpBatch
from tracehouse.processors.k8sattributes.config import FieldExtractConfig, K8sAttributesConfig
from tracehouse.processors.k8sattributes.podinfo import ENV, PodInfo

_GROUP_REF = re.compile(r"\$\{?(\d+)\}?")  # Go's $1 / ${1} in a key_regex rule's tag_name


def extract(rules: list[FieldExtractConfig], values: dict[str, str] | None, prefix: str) -> dict[str, str]:
    """The attributes `rules` take from a pod's labels or annotations (`prefix`:
    k8s.pod.labels / k8s.pod.annotations), as the Collector's extract rules name them."""
    out: dict[str, str] = {}
    if not values:
        return out
    for rule in rules:
        if rule.key:
            if rule.key in values:
                out[rule.tag_name or f"{prefix}.{rule.key}"] = values[rule.key]
            continue
        pattern = re.compile(rule.key_regex)
        for key, value in values.items():
            m = pattern.fullmatch(key)
            if m is None:
                continue
            out[_expand(rule.tag_name, m) if rule.tag_name else f"{prefix}.{key}"] = value
    return out


def _expand(tag_name: str, m: re.Match[str]) -> str:
    """`$1` / `${1}` in tag_name replaced by the match's groups (an unmatched group: "")."""
    return _GROUP_REF.sub(lambda ref: m.group(int(ref[1])) or "", tag_name)


def pod_attributes(config: K8sAttributesConfig, info: PodInfo) -> dict[str, str]:
    """Every attribute the processor adds, in a stable order."""
    known = {**info.env, **info.workload()}
    out = {name: known[name] for name in config.extract.metadata if known.get(name)}
    out.update(extract(config.extract.labels, info.labels, "k8s.pod.labels"))
    out.update(extract(config.extract.annotations, info.annotations, "k8s.pod.annotations"))
    return out


class K8sAttributesProcessor:
    mutates_data = True  # adds resource attributes in place

    def __init__(self, settings: Settings, config: K8sAttributesConfig, next_consumer: Consumer):
        self._settings = settings
        self._config = config
        self._next = next_consumer
        self._override = config.override
        self._attributes: dict[str, str] = {}
        self._values: dict[str, AnyValue] = {}

    @property
    def attributes(self) -> dict[str, str]:
        """What is added to every resource (read at start)."""
        return dict(self._attributes)

    async def start(self, host: Host) -> None:
        info = PodInfo.read(self._config.pod_info_dir)
        self._attributes = pod_attributes(self._config, info)
        self._values = {k: AnyValue(string_value=v) for k, v in self._attributes.items()}
        log = self._settings.logger.bind(pod_info_dir=self._config.pod_info_dir, override=self._override)
        # Names, uids, IPs and the selected labels: pod identity, nothing secret.
        log.info("k8sattributes configured", attributes=self._attributes,
                 labels_file=info.labels is not None, annotations_file=info.annotations is not None)
        if not info.env and info.labels is None and info.annotations is None:
            # Not a pod (compose, a laptop): the same config runs there; nothing to warn about.
            log.info("no Kubernetes downward API (no K8S_* env, no pod_info_dir files): adds nothing")
        elif missing := [ENV[m] for m in self._config.extract.metadata if ENV.get(m) in info.missing]:
            log.warning("downward API env vars not set: their attributes are left out", missing=missing)

    async def shutdown(self) -> None:
        return None

    async def consume(self, batch: OtlpBatch[Any]) -> None:
        if self._values and self.apply(batch.resources()):
            batch.mark_mutated()
        await self._next.consume(batch)

    def apply(self, resources: Any) -> bool:
        """Add the attributes to each resource in place; whether any changed."""
        values = self._values
        changed = False
        for rs in resources:
            kvs = rs.resource.attributes
            present: dict[str, Any] = {}
            for kv in kvs:
                if kv.key in values:
                    present[kv.key] = kv
            for key, value in values.items():
                kv = present.get(key)
                if kv is None:
                    kvs.add(key=key, value=value)
                elif kv.value == value or not (self._override or _unset(kv.value)):
                    continue
                else:
                    kv.value.CopyFrom(value)
                changed = True
        return changed


def _unset(value: AnyValue) -> bool:
    """No value, or an empty string: the Collector fills these even without override."""
    which = value.WhichOneof("value")
    return which is None or (which == "string_value" and not value.string_value)
