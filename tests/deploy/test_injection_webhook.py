"""The sidecar injection webhook: its patch logic on the chart's own injection template
(an AdmissionReview in, a JSONPatch out, applied with an independent RFC 6902 library and
the result validated as a Pod, strictly, and by the manifests' checks), and its HTTPS
server with certificates made in the test.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import ssl
import subprocess
from pathlib import Path
from typing import Any

import httpx
import jsonpatch
import pytest
import yaml

from test_kubernetes import (
    TRACEHOUSE_CLI,
    check_config_paths,
    check_probes,
    check_schemas,
    check_sidecar_pods,
    check_sidecar_sizing,
    helm_template,
    load_docs,
    of_kind,
)
from tracehouse.core.inject.patch import ReviewError, Template, decide, review
from tracehouse.core.inject.server import make_server


@functools.cache
def chart_docs(*args: str) -> tuple[dict[str, Any], ...]:
    return tuple(load_docs(helm_template("--set", "injector.enabled=true", "--set", "injector.tls.secretName=tls",
                                         "--set", "injector.tls.certManagerCertificate=tracehouse/injector",
                                         *args).stdout))


def chart_template(*args: str) -> Template:
    (cm,) = [c for c in of_kind(list(chart_docs(*args)), "ConfigMap") if c["metadata"]["name"] == "tracehouse-injector"]
    return Template.from_dict(yaml.safe_load(cm["data"]["template.yaml"]))


def app_pod(**annotations: str) -> dict[str, Any]:
    """A Pod as the API server sends it for a Deployment's replica: generateName, no name yet."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "llm-app-7d4b9c8f6d-", "namespace": "tracehouse",
                     "labels": {"app": "llm-app", "pod-template-hash": "7d4b9c8f6d"},
                     "annotations": {"tracehouse.dev/inject": "true", **annotations}},
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "terminationGracePeriodSeconds": 60,
            "containers": [{
                "name": "chat", "image": "registry.example.com/llm-app:1.0.0",
                "env": [{"name": "OPENAI_BASE_URL", "value": "http://llm:8000/v1"}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                              "limits": {"cpu": "1", "memory": "512Mi"}},
                "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}},
                "volumeMounts": [{"name": "config", "mountPath": "/app/config"}],
            }],
            "volumes": [{"name": "config", "configMap": {"name": "llm-app-config"}}],
        },
    }


def admission(pod: dict[str, Any], operation: str = "CREATE", kind: str = "Pod") -> dict[str, Any]:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "operation": operation,
                        "kind": {"group": "", "version": "v1", "kind": kind},
                        "resource": {"group": "", "version": "v1", "resource": "pods"},
                        "namespace": "tracehouse", "object": pod}}


def patched(template: Template, pod: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the response, the pod with its patch applied)."""
    answer = review(template, admission(copy.deepcopy(pod)))
    assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert response["uid"] == "705ab4f5-6393-11e8-b7cc-42010a800002" and response["allowed"] is True
    if "patch" not in response:
        return response, pod
    assert response["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(response["patch"]))
    return response, jsonpatch.apply_patch(pod, ops)


def as_deployment(pod: dict[str, Any], name: str = "llm-app") -> dict[str, Any]:
    meta = {k: v for k, v in pod["metadata"].items() if k in ("labels", "annotations")}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "tracehouse"},
            "spec": {"selector": {"matchLabels": {"app": "llm-app"}},
                     "template": {"metadata": meta, "spec": pod["spec"]}}}


@pytest.mark.parametrize("native", [True, False], ids=["native", "regular"])
def test_injected_pod_is_valid_and_passes_the_sidecar_checks(native: bool) -> None:
    args = () if native else ("--set", "sidecar.native=false")
    template = chart_template(*args)
    response, pod = patched(template, app_pod())
    assert "warnings" not in response
    spec = pod["spec"]
    if native:
        (sidecar,) = spec["initContainers"]
        assert sidecar["restartPolicy"] == "Always"
    else:
        assert "initContainers" not in spec
        sidecar = spec["containers"][-1]
        assert "restartPolicy" not in sidecar
    assert sidecar["name"] == "tracehouse"
    env = {e["name"]: e for e in sidecar["env"]}
    assert env["K8S_CONTAINER_NAME"]["value"] == "chat", "the app container's name, not the example's"
    assert env["K8S_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    app = spec["containers"][0]
    assert {e["name"]: e["value"] for e in app["env"]} == {
        "OPENAI_BASE_URL": "http://llm:8000/v1", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4317",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    assert [v["name"] for v in spec["volumes"]] == ["config", "tracehouse-config", "tracehouse-tmp",
                                                    "tracehouse-podinfo"]
    assert app["volumeMounts"] == [{"name": "config", "mountPath": "/app/config"}], "the app's own volume is kept"
    assert pod["metadata"]["labels"]["tracehouse.dev/sidecar"] == "true"
    assert pod["metadata"]["annotations"]["tracehouse.dev/injected"] == "true"
    # The patched pod is a valid Pod (strict schema), and, in a Deployment beside the chart's
    # sidecar ConfigMap, passes the checks the chart's own sidecar pods pass.
    check_schemas([{**pod, "metadata": {**pod["metadata"], "name": "llm-app-7d4b9c8f6d-x2kqz"}}])
    docs = [*copy.deepcopy(list(chart_docs(*args))), as_deployment(pod)]
    for check in (check_sidecar_pods, check_sidecar_sizing, check_probes, check_config_paths):
        check(docs)


def test_second_pass_and_existing_init_containers() -> None:
    template = chart_template()
    _, once = patched(template, app_pod())
    response, twice = patched(template, once)
    assert twice == once and "patch" not in response
    assert "already has a container named 'tracehouse'" in response["warnings"][0]
    pod = app_pod()
    pod["spec"]["initContainers"] = [{"name": "migrate", "image": "registry.example.com/migrate:1"}]
    _, result = patched(template, pod)
    assert [c["name"] for c in result["spec"]["initContainers"]] == ["tracehouse", "migrate"], \
        "the sidecar starts first: the app's init containers may export too"


def test_what_the_app_chose_is_kept() -> None:
    template = chart_template()
    pod = app_pod(**{"tracehouse.dev/container": "worker"})
    pod["spec"]["containers"].insert(0, {"name": "proxy", "image": "envoyproxy/envoy:v1.31.0",
                                         "env": [{"name": "OTEL_EXPORTER_OTLP_PROTOCOL", "value": "http/protobuf"}]})
    pod["spec"]["containers"][1]["name"] = "worker"
    del pod["metadata"]["labels"]
    _, result = patched(template, pod)
    proxy, worker = result["spec"]["containers"]
    assert proxy["env"] == [{"name": "OTEL_EXPORTER_OTLP_PROTOCOL", "value": "http/protobuf"}], \
        "an app that set part of its OTLP settings keeps them all"
    assert {e["name"] for e in worker["env"]} >= {"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL"}
    sidecar_env = {e["name"]: e.get("value") for e in result["spec"]["initContainers"][0]["env"]}
    assert sidecar_env["K8S_CONTAINER_NAME"] == "worker", "tracehouse.dev/container names the app"
    assert result["metadata"]["labels"] == {"tracehouse.dev/sidecar": "true"}


@pytest.mark.parametrize(("change", "warning"), [
    (lambda p: p["spec"]["volumes"].append({"name": "tracehouse-tmp", "emptyDir": {}}), "volume name(s)"),
    (lambda p: p["metadata"]["annotations"].update({"tracehouse.dev/container": "nope"}), "not one of the pod's"),
])
def test_conflicts_leave_the_pod_alone_with_a_warning(change: Any, warning: str) -> None:
    pod = app_pod()
    change(pod)
    response, result = patched(chart_template(), pod)
    assert "patch" not in response and result == pod
    assert warning in response["warnings"][0]


@pytest.mark.parametrize("pod_change", [
    lambda p: p["metadata"]["annotations"].pop("tracehouse.dev/inject"),
    lambda p: p["metadata"]["annotations"].update({"tracehouse.dev/inject": "false"}),
])
def test_pods_not_asking_are_untouched(pod_change: Any) -> None:
    pod = app_pod()
    pod_change(pod)
    response, _ = patched(chart_template(), pod)
    assert response == {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": True}


def test_other_operations_and_kinds_pass() -> None:
    template = chart_template()
    for body in (admission(app_pod(), operation="UPDATE"), admission(app_pod(), kind="Deployment")):
        assert "patch" not in review(template, body)["response"]


@pytest.mark.parametrize(("body", "message"), [
    ([], "AdmissionReview"),
    ({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {"uid": "x"}}, "AdmissionReview"),
    ({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}, "request.uid"),
])
def test_malformed_reviews_are_refused(body: Any, message: str) -> None:
    with pytest.raises(ReviewError, match=message):
        review(chart_template(), body)


def test_a_pod_without_containers_is_refused() -> None:
    pod = app_pod()
    pod["spec"]["containers"] = []
    with pytest.raises(ReviewError, match="no containers"):
        decide(chart_template(), pod)


@pytest.mark.parametrize(("data", "message"), [
    ({"container": {"name": "x"}}, "name and an image"),
    ({"container": {"name": "x", "image": "i"}, "volumes": [{}]}, "needs a name"),
    ({"container": {"name": "x", "image": "i"}, "extra": 1}, "unknown key"),
])
def test_bad_templates_are_refused(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Template.from_dict(data)


# ------------------------------------------------------------------------------ over HTTPS


async def test_the_server_answers_over_tls(pki: Any) -> None:
    template = chart_template()
    server = make_server(template, "127.0.0.1:0", str(pki.server.cert), str(pki.server.key))
    await server.start()
    base = f"https://127.0.0.1:{server.port}"
    try:
        async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(pki.server_ca_file))) as client:
            r = await client.post(f"{base}/mutate", json=admission(app_pod()))
            assert r.status_code == 200, r.text
            _, expected = patched(template, app_pod())
            ops = json.loads(base64.b64decode(r.json()["response"]["patch"]))
            assert jsonpatch.apply_patch(app_pod(), ops) == expected
            assert (await client.get(f"{base}/healthz")).status_code == 200
            assert (await client.get(f"{base}/readyz")).status_code == 200
            bad = await client.post(f"{base}/mutate", content=b"{not json")
            assert bad.status_code == 400 and "not JSON" in bad.json()["error"]
            wrong = await client.post(f"{base}/mutate", json={"kind": "Pod"})
            assert wrong.status_code == 400 and "AdmissionReview" in wrong.json()["error"]
            assert (await client.get(f"{base}/mutate")).status_code == 405
            assert (await client.get(f"{base}/other")).status_code == 404
        # Only TLS: the API server never speaks plain HTTP to a webhook.
        async with httpx.AsyncClient() as plain:
            with pytest.raises(httpx.HTTPError):
                await plain.post(f"http://127.0.0.1:{server.port}/mutate", json=admission(app_pod()))
        # A client that does not trust the CA is refused the handshake.
        async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(pki.stranger_ca_file))) as client:
            with pytest.raises(httpx.ConnectError):
                await client.get(f"{base}/healthz")
    finally:
        await server.stop()


def test_cli_refuses_a_bad_template(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text("container: {name: tracehouse}\n")
    proc = subprocess.run([str(TRACEHOUSE_CLI), "inject-webhook", "--template", str(tmp_path / "t.yaml"),
                           "--tls-cert", "c", "--tls-key", "k"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "name and an image" in proc.stderr
