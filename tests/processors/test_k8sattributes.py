"""The k8sattributes processor on real captured OTLP (traces, logs, metrics), with the
downward API as a pod would give it: K8S_* env vars and a downwardAPI volume in tmp_path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from otlp_fixtures import load_batch
from tracehouse.core.anyvalue import to_python
from tracehouse.core.component import ALL_SIGNALS, ComponentID, Kind, Settings
from tracehouse.core.config import load_config_dict
from tracehouse.core.errors import ConfigError
from tracehouse.core.pdata import LogBatch, MetricBatch, OtlpBatch, TraceBatch
from tracehouse.core.registry import get_factory
from tracehouse.core.testing import Sink, TestHost
from tracehouse.processors.k8sattributes.config import K8sAttributesConfig
from tracehouse.processors.k8sattributes.podinfo import PodInfo, go_unquote, read_map
from tracehouse.processors.k8sattributes.processor import K8sAttributesProcessor

EVENTS = Path(__file__).resolve().parents[1] / "fixtures" / "genai-events" / "current"

POD = {
    "K8S_POD_NAME": "llm-app-7d4b9c8f6d-x2kqz",
    "K8S_POD_UID": "0b6f6e0e-3f0a-4b43-9a55-2d1c0c6f1f10",
    "K8S_POD_IP": "10.244.1.17",
    "K8S_NAMESPACE": "shop",
    "K8S_NODE_NAME": "node-a",
    "K8S_CONTAINER_NAME": "app",
}
# As the kubelet writes a downwardAPI volume: sorted `key="value"` lines, Go-quoted.
LABELS = ('app.kubernetes.io/name="llm-app"\n'
          'example.com/team="search"\n'
          'pod-template-hash="7d4b9c8f6d"\n')
ANNOTATIONS = ('ai.example.com/model-budget="gold"\n'
               'ai.example.com/owner="jane \\"jd\\" doe"\n'
               'kubectl.kubernetes.io/last-applied-configuration="{\\"a\\":1}\\n"\n')
EXPECTED = {
    "k8s.pod.name": "llm-app-7d4b9c8f6d-x2kqz",
    "k8s.pod.uid": "0b6f6e0e-3f0a-4b43-9a55-2d1c0c6f1f10",
    "k8s.namespace.name": "shop",
    "k8s.node.name": "node-a",
    "k8s.deployment.name": "llm-app",
    "k8s.container.name": "app",
    "k8s.pod.ip": "10.244.1.17",
}


@pytest.fixture
def pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, value in POD.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("K8S_DEPLOYMENT_NAME", raising=False)
    (tmp_path / "labels").write_text(LABELS)
    (tmp_path / "annotations").write_text(ANNOTATIONS)
    return tmp_path


async def started(pod_info_dir: Path, **config: Any) -> tuple[K8sAttributesProcessor, Sink]:
    sink = Sink()
    processor = K8sAttributesProcessor(Settings(ComponentID("k8sattributes"), Kind.PROCESSOR, "traces"),
                                       K8sAttributesConfig.model_validate({"pod_info_dir": str(pod_info_dir),
                                                                           **config}), sink)
    await processor.start(TestHost())
    return processor, sink


def resource_attrs(batch: OtlpBatch[Any]) -> list[dict[str, Any]]:
    return [{kv.key: to_python(kv.value) for kv in r.resource.attributes} for r in batch.resources()]


def items_bytes(batch: OtlpBatch[Any]) -> list[bytes]:
    """Everything under the resources, serialized: what the processor must not touch."""
    scopes = batch.scopes_field
    return [s.SerializeToString() for r in batch.resources() for s in getattr(r, scopes)]


def payloads() -> list[tuple[str, OtlpBatch[Any]]]:
    return [
        ("traces (gRPC)", load_batch("otel-genai-openai-v2/grpc.pb")),
        ("traces (OTLP/JSON)", load_batch("otel-js-vercel-ai-style/http-json.otlp.json")),
        ("logs", LogBatch.from_bytes((EVENTS / "logs.pb").read_bytes())),
        ("metrics", MetricBatch.from_bytes((EVENTS / "metrics.pb").read_bytes())),
    ]


@pytest.mark.parametrize("which", range(4), ids=[p[0] for p in payloads()])
async def test_adds_the_pods_metadata_to_every_resource(pod: Path, which: int) -> None:
    _, batch = payloads()[which]
    before = resource_attrs(batch)
    items = items_bytes(batch)
    processor, sink = await started(pod)
    await processor.consume(batch)
    assert sink.batches == [batch]
    after = resource_attrs(batch)
    assert after and len(after) == len(before)
    for old, new in zip(before, after, strict=True):
        assert new == {**old, **EXPECTED}, "the app's own attributes stay, the pod's are added"
    assert items_bytes(batch) == items, "spans, log records and data points are untouched"
    assert batch.raw is None, "the wire bytes are rebuilt"
    # The batch round-trips with the attributes (what the Kafka exporter sends).
    again = type(batch).from_bytes(batch.to_bytes())
    assert resource_attrs(again) == after


async def test_second_pass_changes_nothing_and_keeps_the_wire_bytes(pod: Path) -> None:
    processor, _ = await started(pod)
    batch = load_batch("otel-genai-openai-v2/http-protobuf.pb")
    await processor.consume(batch)
    raw = batch.to_bytes()
    await processor.consume(batch)
    assert batch.raw is raw


async def test_app_values_are_kept_unless_override(pod: Path) -> None:
    def batch_with(values: dict[str, AnyValue]) -> TraceBatch:
        batch = load_batch("otel-genai-openai-v2/grpc.pb")
        for r in batch.resources():
            for key, value in values.items():
                r.resource.attributes.add(key=key, value=value)
        return batch

    app_set = {"k8s.pod.name": AnyValue(string_value="set-by-app"),
               "k8s.namespace.name": AnyValue(string_value=""),  # empty counts as unset
               "k8s.node.name": AnyValue()}  # no value at all
    kept, _ = await started(pod)
    batch = batch_with(app_set)
    await kept.consume(batch)
    for attrs in resource_attrs(batch):
        assert attrs["k8s.pod.name"] == "set-by-app"
        assert attrs["k8s.namespace.name"] == "shop" and attrs["k8s.node.name"] == "node-a"
    for r in batch.resources():
        assert [kv.key for kv in r.resource.attributes].count("k8s.pod.name") == 1, "never a duplicate key"

    replaced, _ = await started(pod, override=True)
    batch = batch_with(app_set)
    await replaced.consume(batch)
    assert {a["k8s.pod.name"] for a in resource_attrs(batch)} == {"llm-app-7d4b9c8f6d-x2kqz"}


async def test_labels_and_annotations_rules(pod: Path) -> None:
    processor, _ = await started(pod, extract={
        "metadata": ["k8s.pod.name", "k8s.replicaset.name"],
        "labels": [{"key": "app.kubernetes.io/name"}, {"tag_name": "team", "key": "example.com/team", "from": "pod"},
                   {"key": "not-there"}],
        "annotations": [{"key_regex": r"ai\.example\.com/(.*)", "tag_name": "ai.$1"},
                        {"key": "kubectl.kubernetes.io/last-applied-configuration"}],
    })
    assert processor.attributes == {
        "k8s.pod.name": "llm-app-7d4b9c8f6d-x2kqz",
        "k8s.replicaset.name": "llm-app-7d4b9c8f6d",
        "k8s.pod.labels.app.kubernetes.io/name": "llm-app",
        "team": "search",
        "ai.model-budget": "gold",
        "ai.owner": 'jane "jd" doe',
        "k8s.pod.annotations.kubectl.kubernetes.io/last-applied-configuration": '{"a":1}\n',
    }
    # key_regex without tag_name: the Collector's default names.
    regex_only, _ = await started(pod, extract={"metadata": [], "labels": [{"key_regex": "example\\.com/.*"}]})
    assert regex_only.attributes == {"k8s.pod.labels.example.com/team": "search"}


@pytest.mark.parametrize(("pod_name", "labels", "expected"), [
    ("llm-app-7d4b9c8f6d-x2kqz", 'pod-template-hash="7d4b9c8f6d"\n', ("llm-app", "llm-app-7d4b9c8f6d")),
    # A Deployment whose name itself looks like a hash suffix: the label decides.
    ("api-v2-6b7f5c9d48-bcdfg", 'pod-template-hash="6b7f5c9d48"\n', ("api-v2", "api-v2-6b7f5c9d48")),
    # A StatefulSet's or a Job's pod: no ReplicaSet label, no Deployment (even if the name fits).
    ("web-0", 'app="web"\n', None),
    ("etl-7d4b9c8f6d-x2kqz", 'job-name="etl"\n', None),
    # No labels file: the name shape alone.
    ("llm-app-7d4b9c8f6d-x2kqz", None, ("llm-app", "llm-app-7d4b9c8f6d")),
    ("nightly-job-x2kqz", None, None),
    ("web-0", None, None),
])
def test_deployment_from_the_replicaset(tmp_path: Path, pod_name: str, labels: str | None,
                                        expected: tuple[str, str] | None) -> None:
    if labels is not None:
        (tmp_path / "labels").write_text(labels)
    info = PodInfo.read(str(tmp_path), {"K8S_POD_NAME": pod_name})
    workload = info.workload()
    if expected is None:
        assert workload == {}
    else:
        assert workload == {"k8s.deployment.name": expected[0], "k8s.replicaset.name": expected[1]}


def test_explicit_deployment_env_wins(tmp_path: Path) -> None:
    info = PodInfo.read(str(tmp_path), {"K8S_POD_NAME": "llm-app-7d4b9c8f6d-x2kqz", "K8S_DEPLOYMENT_NAME": "chat"})
    assert info.workload() == {"k8s.deployment.name": "chat"}


async def test_outside_a_pod_nothing_is_added(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [*POD, "K8S_DEPLOYMENT_NAME"]:
        monkeypatch.delenv(name, raising=False)
    with structlog.testing.capture_logs() as logs:
        processor, _ = await started(tmp_path / "absent")
    assert processor.attributes == {}
    # The shipped sidecar config runs outside Kubernetes too (compose): no warning there.
    assert [e["log_level"] for e in logs] == ["info", "info"]
    batch = load_batch("otel-genai-openai-v2/grpc.pb")
    raw = batch.raw
    await processor.consume(batch)
    assert batch.raw is raw


async def test_missing_env_vars_leave_their_attributes_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [*POD, "K8S_DEPLOYMENT_NAME"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("K8S_NAMESPACE", "shop")
    with structlog.testing.capture_logs() as logs:
        processor, _ = await started(tmp_path)
    assert processor.attributes == {"k8s.namespace.name": "shop"}
    (warning,) = [e for e in logs if e["log_level"] == "warning"]
    assert warning["missing"] == ["K8S_POD_NAME", "K8S_POD_UID", "K8S_NODE_NAME", "K8S_CONTAINER_NAME", "K8S_POD_IP"]
    # Only what the config asks for is missed.
    with structlog.testing.capture_logs() as logs:
        await started(tmp_path, extract={"metadata": ["k8s.namespace.name"]})
    assert not [e for e in logs if e["log_level"] == "warning"]


def test_go_quoting() -> None:
    assert go_unquote(r'"a\"b\\c\n\t\u00e9\U0001F600"') == 'a"b\\c\n\té\U0001F600'
    assert go_unquote('"plain é"') == "plain é"
    assert go_unquote(r'"\xff"') == "\ufffd"
    with pytest.raises(ValueError):
        go_unquote("unquoted")


def test_read_map_skips_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "labels"
    path.write_text('good="1"\nno-equals-sign\nbad=unquoted\n="no key"\nempty=""\n')
    assert read_map(path) == {"good": "1", "empty": ""}
    assert read_map(tmp_path / "none") is None


@pytest.mark.parametrize(("config", "message"), [
    ({"extract": {"metadata": ["k8s.pod.start_time"]}}, "unknown metadata"),
    ({"extract": {"labels": [{"key": "a", "from": "namespace"}]}}, "from"),
    ({"extract": {"labels": [{"key": "a", "key_regex": "a"}]}}, "exactly one of key and key_regex"),
    ({"extract": {"annotations": [{"tag_name": "x"}]}}, "exactly one of key and key_regex"),
    ({"extract": {"labels": [{"key_regex": "("}]}}, "invalid regular expression"),
    ({"passthrough": True}, "passthrough"),
])
def test_bad_config_is_refused(config: dict[str, Any], message: str) -> None:
    raw = {"receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "localhost:4317"}}}},
           "processors": {"k8sattributes": config},
           "exporters": {"debug": {}},
           "service": {"pipelines": {"traces": {"receivers": ["otlp"], "processors": ["k8sattributes"],
                                                "exporters": ["debug"]}}}}
    with pytest.raises(ConfigError, match=message):
        load_config_dict(raw)


def test_registered_for_every_signal() -> None:
    factory = get_factory(Kind.PROCESSOR, "k8sattributes")
    assert factory is not None and factory.signals == ALL_SIGNALS
    text = """
receivers: {otlp: {protocols: {grpc: {endpoint: "localhost:4317"}}}}
processors: {k8sattributes: {}}
exporters: {debug: {}}
service:
  pipelines:
    traces: {receivers: [otlp], processors: [k8sattributes], exporters: [debug]}
    logs: {receivers: [otlp], processors: [k8sattributes], exporters: [debug]}
    metrics: {receivers: [otlp], processors: [k8sattributes], exporters: [debug]}
"""
    config = load_config_dict(yaml.safe_load(text))
    assert {p for p in config.service.pipelines} == {"traces", "logs", "metrics"}
