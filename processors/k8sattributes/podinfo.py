"""What a pod knows of itself without the Kubernetes API: downward API env vars and files.

The env vars (set by the chart, the manifests and the injection webhook from `fieldRef`s):
K8S_POD_NAME, K8S_POD_UID, K8S_POD_IP, K8S_NAMESPACE, K8S_NODE_NAME, and K8S_CONTAINER_NAME
(the app container's name: the downward API has no field for it, so it is a literal).
K8S_DEPLOYMENT_NAME, when set, names the Deployment outright.

The downwardAPI volume's `labels` and `annotations` files hold one `key="value"` line per
entry, the value quoted as Go's %q does (kubelet's fieldpath.FormatMap).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tracehouse.processors.k8sattributes import config as c

ENV = {
    c.POD_NAME: "K8S_POD_NAME",
    c.POD_UID: "K8S_POD_UID",
    c.POD_IP: "K8S_POD_IP",
    c.NAMESPACE: "K8S_NAMESPACE",
    c.NODE: "K8S_NODE_NAME",
    c.CONTAINER: "K8S_CONTAINER_NAME",
    c.DEPLOYMENT: "K8S_DEPLOYMENT_NAME",
}

# The label a Deployment's ReplicaSet puts on its pods; their names are
# <deployment>-<pod-template-hash>-<5 characters>.
TEMPLATE_HASH = "pod-template-hash"
# Without the labels file: the same shape, in the alphabet Kubernetes' generated names use
# (rand.SafeEncodeString: no vowels, no 0/1/3 that read as letters).
_SAFE = "[bcdfghjklmnpqrstvwxz2456789]"
_DEPLOYMENT_POD = re.compile(rf"^(?P<deployment>.+)-(?P<hash>{_SAFE}{{6,10}})-{_SAFE}{{5}}$")

_GO_ESCAPE = re.compile(r'\\(?:x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|([abfnrtv\\"\']))')
_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
           "\\": "\\", '"': '"', "'": "'"}


def go_unquote(quoted: str) -> str:
    """A Go %q string's value. \\xNN escapes are bytes of invalid UTF-8; kept as U+FFFD."""
    if len(quoted) < 2 or quoted[0] != '"' or quoted[-1] != '"':
        raise ValueError(f"not a quoted value: {quoted!r}")

    def one(m: re.Match[str]) -> str:
        if m[1]:
            return "\ufffd"
        if m[2] or m[3]:
            return chr(int(m[2] or m[3], 16))
        return _SIMPLE[m[4]]

    return _GO_ESCAPE.sub(one, quoted[1:-1])


def read_map(path: Path) -> dict[str, str] | None:
    """A downward API labels/annotations file, or None when there is none. A line that is
    not `key="value"` is skipped: the rest of the pod's metadata is still worth having."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep or not key:
            continue
        try:
            out[key] = go_unquote(value.strip())
        except ValueError:
            continue
    return out


@dataclass(frozen=True, slots=True)
class PodInfo:
    env: dict[str, str]  # attribute -> value, from the env vars that are set
    labels: dict[str, str] | None  # None: no labels file
    annotations: dict[str, str] | None
    missing: list[str] = field(default_factory=list)  # env vars not set

    @classmethod
    def read(cls, pod_info_dir: str, environ: Mapping[str, str] = os.environ) -> PodInfo:
        env, missing = {}, []
        for attribute, name in ENV.items():
            value = environ.get(name, "")
            if value:
                env[attribute] = value
            elif attribute != c.DEPLOYMENT:  # optional: derived below when unset
                missing.append(name)
        root = Path(pod_info_dir)
        return cls(env, read_map(root / "labels"), read_map(root / "annotations"), missing)

    def workload(self) -> dict[str, str]:
        """k8s.deployment.name and k8s.replicaset.name, when the pod belongs to a Deployment."""
        if c.DEPLOYMENT in self.env:
            return {c.DEPLOYMENT: self.env[c.DEPLOYMENT]}
        pod = self.env.get(c.POD_NAME, "")
        if not pod:
            return {}
        if self.labels is not None:
            # The ReplicaSet's hash label is the owner reference we can see: a pod without it
            # (a StatefulSet's, a Job's, a bare pod) belongs to no Deployment.
            h = self.labels.get(TEMPLATE_HASH)
            suffix = f"-{h}-"
            if not h or suffix not in pod:
                return {}
            deployment = pod[:pod.rindex(suffix)]
            return {c.DEPLOYMENT: deployment, c.REPLICASET: f"{deployment}-{h}"}
        m = _DEPLOYMENT_POD.match(pod)
        if not m:
            return {}
        return {c.DEPLOYMENT: m["deployment"], c.REPLICASET: f"{m['deployment']}-{m['hash']}"}
