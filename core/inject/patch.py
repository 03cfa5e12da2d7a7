"""AdmissionReview v1 in, a JSONPatch (RFC 6902) adding the sidecar out.

What is injected comes from a template the Helm chart renders from the same helpers as its
example app (templates/injector.yaml), so an injected pod and the example cannot drift:
the sidecar container, the volumes it mounts, and the env given to the app containers
(where to export). The webhook adds:

- the container, as a native sidecar (first init container, `restartPolicy: Always`) or as
  the last regular container, with K8S_CONTAINER_NAME set to the app container's name (the
  first container, or the one the `tracehouse.dev/container` annotation names);
- the template's volumes;
- the app env (where to export) to each app container that sets none of it;
- the annotation tracehouse.dev/injected and the label tracehouse.dev/sidecar (what the
  sidecars' PodMonitor selects).

A pod is left as it is (allowed, with a warning saying why) when it is not annotated, when
it already has a container named like the sidecar (a reinvocation, or a hand-made sidecar),
or when one of the template's volume names is taken.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ANNOTATION = "tracehouse.dev/inject"
CONTAINER_ANNOTATION = "tracehouse.dev/container"
CONTAINER_NAME_ENV = "K8S_CONTAINER_NAME"
INJECTED = "tracehouse.dev/injected"
SIDECAR_LABEL = "tracehouse.dev/sidecar"


class ReviewError(ValueError):
    """The request is not an AdmissionReview v1 this webhook can answer (HTTP 400)."""


@dataclass(frozen=True)
class Template:
    container: dict[str, Any]
    volumes: list[dict[str, Any]] = field(default_factory=list)
    app_env: list[dict[str, Any]] = field(default_factory=list)
    native: bool = True
    annotation: str = ANNOTATION

    @classmethod
    def from_dict(cls, data: Any) -> Template:
        if not isinstance(data, dict):
            raise ValueError("the injection template is not a mapping")
        unknown = set(data) - {"container", "volumes", "appEnv", "native", "annotation"}
        if unknown:
            raise ValueError(f"unknown key(s) in the injection template: {sorted(unknown)}")
        container = data.get("container")
        if not isinstance(container, dict) or not container.get("name") or not container.get("image"):
            raise ValueError("the injection template needs `container` with a name and an image")
        volumes = data.get("volumes") or []
        if not all(isinstance(v, dict) and v.get("name") for v in volumes):
            raise ValueError("every volume of the injection template needs a name")
        return cls(container=container, volumes=list(volumes), app_env=list(data.get("appEnv") or []),
                   native=bool(data.get("native", True)), annotation=str(data.get("annotation", ANNOTATION)))

    @classmethod
    def load(cls, path: str | Path) -> Template:
        return cls.from_dict(yaml.safe_load(Path(path).read_text()))


@dataclass(frozen=True)
class Decision:
    patch: list[dict[str, Any]]  # empty: the pod is not changed
    warning: str = ""


def _escape(segment: str) -> str:
    """A JSON Pointer segment (RFC 6901)."""
    return segment.replace("~", "~0").replace("/", "~1")


def _sidecar(template: Template, app: str) -> dict[str, Any]:
    container = json.loads(json.dumps(template.container))  # a deep copy, JSON types only
    env = container.setdefault("env", [])
    for entry in env:
        if entry.get("name") == CONTAINER_NAME_ENV:
            entry.pop("valueFrom", None)
            entry["value"] = app
            break
    else:
        env.append({"name": CONTAINER_NAME_ENV, "value": app})
    if template.native:
        container["restartPolicy"] = "Always"
    else:
        container.pop("restartPolicy", None)
    return container


def decide(template: Template, pod: dict[str, Any]) -> Decision:
    """The patch that injects the sidecar into `pod` (a Pod object as the API server sends it)."""
    meta = pod.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    if str(annotations.get(template.annotation, "")).lower() != "true":
        return Decision([])
    spec = pod.get("spec") or {}
    containers = spec.get("containers") or []
    inits = spec.get("initContainers") or []
    name = template.container["name"]
    if any(c.get("name") == name for c in [*containers, *inits]):
        return Decision([], f"tracehouse: the pod already has a container named {name!r}; not injected again")
    taken = {v.get("name") for v in spec.get("volumes") or []} & {v["name"] for v in template.volumes}
    if taken:
        return Decision([], f"tracehouse: volume name(s) {sorted(taken)} already used by the pod; sidecar not injected")
    if not containers:
        raise ReviewError("the pod has no containers")
    wanted = annotations.get(CONTAINER_ANNOTATION)
    names = [c.get("name", "") for c in containers]
    if wanted and wanted not in names:
        return Decision([], f"tracehouse: {CONTAINER_ANNOTATION} names {wanted!r}, which is not one of the pod's "
                            f"containers {names}; sidecar not injected")
    app = wanted or names[0]

    ops: list[dict[str, Any]] = []
    sidecar = _sidecar(template, app)
    if template.native:
        # First: the kubelet starts init containers in order, and the app's own init
        # containers may already export telemetry.
        if inits:
            ops.append({"op": "add", "path": "/spec/initContainers/0", "value": sidecar})
        else:
            ops.append({"op": "add", "path": "/spec/initContainers", "value": [sidecar]})
    else:
        ops.append({"op": "add", "path": "/spec/containers/-", "value": sidecar})
    if template.volumes:
        if spec.get("volumes"):
            ops += [{"op": "add", "path": "/spec/volumes/-", "value": v} for v in template.volumes]
        else:
            ops.append({"op": "add", "path": "/spec/volumes", "value": list(template.volumes)})
    wanted_env = {e.get("name") for e in template.app_env}
    for i, c in enumerate(containers):
        # All or nothing: an app that chose its endpoint (or protocol) keeps its choice, and
        # the endpoint and protocol given here stay a pair.
        if template.app_env and not wanted_env & {e.get("name") for e in c.get("env") or []}:
            if c.get("env"):
                ops += [{"op": "add", "path": f"/spec/containers/{i}/env/-", "value": e} for e in template.app_env]
            else:
                ops.append({"op": "add", "path": f"/spec/containers/{i}/env", "value": list(template.app_env)})
    # Marks: the annotation for people, the label for the sidecars' PodMonitor.
    ops.append({"op": "add", "path": "/metadata/annotations/" + _escape(INJECTED), "value": "true"})
    if meta.get("labels"):
        ops.append({"op": "add", "path": "/metadata/labels/" + _escape(SIDECAR_LABEL), "value": "true"})
    else:
        ops.append({"op": "add", "path": "/metadata/labels", "value": {SIDECAR_LABEL: "true"}})
    return Decision(ops)


def review(template: Template, body: Any) -> dict[str, Any]:
    """The AdmissionReview v1 response to `body` (the parsed request)."""
    if not isinstance(body, dict) or body.get("apiVersion") != "admission.k8s.io/v1" \
            or body.get("kind") != "AdmissionReview":
        raise ReviewError("expected an admission.k8s.io/v1 AdmissionReview")
    request = body.get("request")
    if not isinstance(request, dict) or not request.get("uid"):
        raise ReviewError("the AdmissionReview has no request.uid")
    response: dict[str, Any] = {"uid": request["uid"], "allowed": True}
    kind = request.get("kind") or {}
    obj = request.get("object")
    # Anything but a pod being created passes untouched (the webhook's rules ask for pods only).
    if kind.get("kind") == "Pod" and kind.get("group", "") == "" and request.get("operation") == "CREATE" \
            and isinstance(obj, dict):
        decision = decide(template, obj)
        if decision.patch:
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(decision.patch).encode()).decode()
        if decision.warning:
            response["warnings"] = [decision.warning]
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
