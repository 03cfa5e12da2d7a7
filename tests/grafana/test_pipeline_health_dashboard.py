"""The "Pipeline health" dashboard against a real Prometheus scraping real tracehouse processes.

Static checks (no servers): the committed JSON is what the code builds; every metric an
expression names is declared in core/telemetry.py with that type (`_total` for counters,
`_bucket` for histograms), every label it matches, groups by or shows in a legend is one
of that metric's labels (or `job`/`instance`/`le`); every selector is filtered by `$job`.

Live checks: a tansu Kafka broker, a sidecar and a writer over it, an all-in-one, and two
processes kept in trouble on purpose (a sidecar whose Kafka is unreachable, an all-in-one
whose ClickHouse is), each scraped every second by Prometheus under its own `job`. The test
sends OTLP traffic and provokes what the panels show: refused spans (invalid ids, a full
memory limiter, a full sending queue, an unreachable exporter, an oversized span), a
malformed request, a client retry (duplicate spans), a corrupt sending-queue entry, a
poison Kafka message (dead-lettered), unpriced and token-estimated GenAI spans. Then every
panel target is interpolated the way Grafana would and run as a range query: valid PromQL,
data in every target, legend labels present, nothing left when `$job` matches no process.
"""

from __future__ import annotations

import ast
import asyncio
import json
import math
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

# allinone.py and kafka_stack.py live in tests/integration, which has no __init__.py (the
# test folders are rootdir-relative script folders): make it importable from here too.
_INTEGRATION = str(Path(__file__).resolve().parents[1] / "integration")
if _INTEGRATION not in sys.path:
    sys.path.insert(0, _INTEGRATION)

import prometheus as prom  # noqa: E402  (tests/prometheus.py)
from allinone import REPO, AllInOne  # noqa: E402
from generated_traffic import traffic_bodies  # noqa: E402
from kafka_stack import derived_config, kafka_env, sidecar, writer  # noqa: E402
from ports import free_port  # noqa: E402
from tracehouse.core.pdata import key_values  # noqa: E402
from tracehouse.grafana import pipeline_health  # noqa: E402
from tracehouse.grafana.common import PROMETHEUS_UID, to_dict  # noqa: E402

TELEMETRY = REPO / "core" / "telemetry.py"

SCRAPE_S = 1
# What Grafana computes for `$__rate_interval` at a 1 s step with a 1 s scrape interval:
# max($__interval + scrape interval, 4 * scrape interval).
RATE_INTERVAL = f"{4 * SCRAPE_S}s"

SIDECAR, WRITER, ALL_IN_ONE_JOB = "tracehouse-sidecar", "tracehouse-writer", "tracehouse-all-in-one"
SIDECAR_OUTAGE, ALL_IN_ONE_OUTAGE = "tracehouse-sidecar-kafka-down", "tracehouse-all-in-one-clickhouse-down"
JOBS = (SIDECAR, WRITER, ALL_IN_ONE_JOB, SIDECAR_OUTAGE, ALL_IN_ONE_OUTAGE)
NO_SUCH_JOB = "no-such-job"

UNPRICED_MODEL = "tracehouse-dashboard-test-model"
CORRUPT_ENTRY_SPANS = 7
OVERSIZED_ATTR_BYTES = 100_000
MAX_MESSAGE_BYTES = 65_536
LIMITER_SPANS = 100  # the ClickHouse-down all-in-one's memory limiter
STUCK_SPANS = 60  # one request of that many spans waits for ClickHouse; a second one does not fit


# ============================================================================ the dashboard


@dataclass(frozen=True)
class Target:
    panel: str
    ref_id: str
    expr: str
    legend: str


def dashboard() -> dict[str, Any]:
    return to_dict(pipeline_health.build())


def targets(board: dict[str, Any]) -> list[Target]:
    out = []
    for panel in board["panels"]:
        for panel_target in panel.get("targets", []):
            out.append(Target(panel["title"], panel_target["refId"], panel_target["expr"],
                              panel_target.get("legendFormat", "")))
    return out


_VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)")


def interpolate(expr: str, job: str, *, rate_interval: str = RATE_INTERVAL, interval: str = f"{SCRAPE_S}s",
                range_s: int = 60) -> str:
    """Grafana's variable substitution for a Prometheus target. `job` is the variable's value
    as Grafana writes it for Prometheus: the All value (`.*`), one job, or `(a|b)`."""
    values = {"__rate_interval": rate_interval, "__interval": interval, "__range": f"{range_s}s",
              "__range_s": str(range_s), "job": job, "prometheus": PROMETHEUS_UID}

    def replace(m: re.Match[str]) -> str:
        name = m[1] or m[3]
        if name not in values:
            raise AssertionError(f"{expr}: unknown variable ${name}")
        return values[name]

    return _VARIABLE.sub(replace, expr)


def test_variables_and_links() -> None:
    board = dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["prometheus"]["type"] == "datasource" and variables["prometheus"]["query"] == "prometheus"
    assert variables["prometheus"]["current"]["value"] == PROMETHEUS_UID
    job = variables["job"]
    assert job["type"] == "query" and job["multi"] and job["includeAll"] and job["allValue"] == ".*"
    assert job["datasource"]["uid"] == "${prometheus}"
    assert {link["url"] for link in board["links"]} == {"/d/tracehouse-genai-overview", "/d/tracehouse-prompts"}
    assert board["time"] == {"from": "now-1h", "to": "now"} and board["refresh"] == "30s"


# ---------------------------------------------------------------------------- names and labels


@dataclass(frozen=True)
class Declared:
    kind: str  # Counter, Gauge, Histogram
    labels: frozenset[str]


def declared_metrics() -> dict[str, Declared]:
    """Every metric core/telemetry.py declares: `Counter("name", "help", ["label", ...], ...)`."""
    out = {}
    for node in ast.walk(ast.parse(TELEMETRY.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in ("Counter", "Gauge", "Histogram"):
            name = node.args[0]
            labels = node.args[2] if len(node.args) > 2 else next(
                (k.value for k in node.keywords if k.arg == "labelnames"), ast.List(elts=[]))
            assert isinstance(name, ast.Constant) and isinstance(labels, ast.List | ast.Tuple)
            out[name.value] = Declared(node.func.id, frozenset(
                e.value for e in labels.elts if isinstance(e, ast.Constant)))
    assert len(out) > 20, "core/telemetry.py not parsed"
    return out


SUFFIXES = {"Counter": ("_total",), "Gauge": ("",), "Histogram": ("_bucket", "_sum", "_count")}
ALWAYS = frozenset({"job", "instance"})


def resolve(exposed: str, declared: dict[str, Declared]) -> tuple[str, Declared]:
    """The declared metric behind an exposed series name, with its type checked."""
    for name, metric in declared.items():
        for suffix in SUFFIXES[metric.kind]:
            if exposed == name + suffix:
                return name, metric
    kinds = {n: m.kind for n, m in declared.items() if exposed.startswith(n)}
    raise AssertionError(f"{exposed!r} is not a metric core/telemetry.py declares (as exposed: counters end "
                         f"in _total, histograms in _bucket/_sum/_count); near: {kinds}")


_SELECTOR = re.compile(r"\b(tracehouse_[a-z0-9_]+)\s*(\{[^}]*\})?")
_MATCHER = re.compile(r"(\w+)\s*(=~|!~|!=|=)\s*\"([^\"]*)\"")
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
_LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def names_and_labels(expr: str, declared: dict[str, Declared]) -> tuple[set[str], set[str], set[str]]:
    """(metrics used, labels grouped by, labels available) of one expression; asserts every
    selector's matchers name real labels of its metric and that `job=~"$job"` is one."""
    used, available = set(), set(ALWAYS)
    selectors = _SELECTOR.findall(expr)
    assert selectors, f"{expr}: no tracehouse metric"
    for exposed, matchers in selectors:
        name, metric = resolve(exposed, declared)
        used.add(name)
        allowed = metric.labels | ALWAYS | ({"le"} if exposed.endswith("_bucket") else set())
        available |= allowed
        found = {m[0]: (m[1], m[2]) for m in _MATCHER.findall(matchers or "")}
        assert found.get("job") == ("=~", "$job"), f"{expr}: selector {exposed} is not filtered by job=~\"$job\""
        unknown = set(found) - allowed
        assert not unknown, f"{expr}: {exposed} has no label(s) {unknown} (declared: {sorted(metric.labels)})"
    grouped = {label.strip() for group in _GROUPING.findall(expr) for label in group.split(",") if label.strip()}
    unknown = grouped - available
    assert not unknown, f"{expr}: groups by {unknown}, which none of its metrics has"
    return used, grouped, available


def test_every_metric_and_label_is_declared_in_core_telemetry() -> None:
    declared = declared_metrics()
    board = dashboard()
    used: set[str] = set()
    for t in targets(board):
        names, grouped, _ = names_and_labels(t.expr, declared)
        used |= names
        legend = set(_LEGEND.findall(t.legend))
        missing = legend - grouped - ({"job"} if "job" in grouped else set())
        assert not missing, f"{t.panel} ({t.ref_id}): legend shows {missing}, which {t.expr} does not keep"
    # The metrics no panel shows, each for a stated reason (a new metric must be placed or listed).
    unshown = {
        "tracehouse_processor_dropped_spans": "declared, never incremented by any component",
        "tracehouse_processor_batch_send_size_spans": "batch sizes: the trigger panel covers batching",
        "tracehouse_processor_redaction_redacted_keys": "attributes an allowlist removed: no shipped config sets "
                                                        "allow_all_keys: false",
        "tracehouse_processor_redaction_spans": "spans redaction changed: the redacted-values panel shows it by kind",
        "tracehouse_processor_redaction_log_records": "log records redaction changed: the redacted-values panel "
                                                      "shows it by kind",
        # Logs and metrics pipelines: the same counters in their units; the dashboard's panels
        # show the span pipelines (the GenAI data) only, for now.
        **{f"tracehouse_{what}_{unit}": "logs and metrics pipelines: no panel yet"
           for unit in ("log_records", "metric_points")
           for what in ("receiver_accepted", "receiver_refused", "processor_refused", "exporter_sent",
                        "exporter_send_failed", "exporter_duplicate", "exporter_enqueue_failed", "exporter_dropped")},
    }
    assert set(declared) - used == set(unshown), f"metrics without a panel: {sorted(set(declared) - used)}"


def test_panels_use_the_prometheus_variable_and_sane_units() -> None:
    for panel in dashboard()["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${prometheus}"}, panel["title"]
        assert all(t["datasource"]["uid"] == "${prometheus}" for t in panel["targets"]), panel["title"]
        unit = panel["fieldConfig"]["defaults"]["unit"]
        assert unit in {"ops", "reqps", "short", "s", "percent", "bytes"}, (panel["title"], unit)
        exprs = " ".join(t["expr"] for t in panel["targets"])
        if unit == "s":
            assert "histogram_quantile" in exprs, panel["title"]
        if "rate(" in exprs:
            assert "[$__rate_interval]" in exprs, panel["title"]


# ============================================================================ the live stack


def _span(name: str, attrs: dict[str, Any] | None = None, *, trace_id: bytes | None = None) -> Span:
    start = time.time_ns() - 2_000_000_000
    return Span(trace_id=trace_id if trace_id is not None else os.urandom(16), span_id=os.urandom(8), name=name,
                kind=Span.SPAN_KIND_CLIENT, start_time_unix_nano=start, end_time_unix_nano=start + 1_000_000,
                attributes=key_values(attrs or {}))


def _request(spans: list[Span]) -> bytes:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add(resource=Resource(attributes=key_values({"service.name": "dashboard-test"})))
    rs.scope_spans.add(scope=InstrumentationScope(name="dashboard-test")).spans.extend(spans)
    return request.SerializeToString()


def span_count(body: bytes) -> int:
    return sum(len(ss.spans) for rs in ExportTraceServiceRequest.FromString(body).resource_spans
               for ss in rs.scope_spans)


def genai_body() -> bytes:
    """Two chat spans: one with usage for a model the price table does not know (unpriced),
    one with messages but no usage (tokens estimated offline) and an email in them (redacted)."""
    messages = {
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [
            {"type": "text", "content": "Hello? I am jane.doe@example.com"}]}]),
        "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
            {"type": "text", "content": "Hello, how can I help you today?"}]}]),
    }
    chat = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai"}
    return _request([
        _span(f"chat {UNPRICED_MODEL}", {**chat, "gen_ai.request.model": UNPRICED_MODEL,
                                          "gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 3}),
        _span("chat gpt-4o", {**chat, "gen_ai.request.model": "gpt-4o", **messages}),
    ])


def post(process: AllInOne, body: bytes, content_type: str = "application/x-protobuf") -> int:
    response = httpx.post(f"{process.otlp_http}/v1/traces", content=body, headers={"Content-Type": content_type},
                          timeout=60)
    return response.status_code


def post_grpc(process: AllInOne, body: bytes) -> None:
    with grpc.insecure_channel(process.otlp_grpc) as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        export(body, timeout=60)


def wait_until(what: str, predicate: Callable[[], bool], timeout: float = 60.0, logs: Callable[[], str] = str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{logs()}")
        time.sleep(0.1)


@dataclass
class Stack:
    """Everything the live tests read: Prometheus, the window, and what was sent."""

    prometheus: prom.Prometheus
    topic: str
    start: float = 0.0
    baseline: float = 0.0  # after the warm-up, before the main traffic
    end: float = 0.0
    expected: dict[str, Any] = field(default_factory=dict)

    def range(self, expr: str) -> dict[str, Any]:
        return self.prometheus.query_range(expr, self.start, self.end, SCRAPE_S)


def _outage_all_in_one(data: dict[str, Any], clickhouse: str) -> None:
    """OTLP -> memory limiter -> ClickHouse exporter, ClickHouse unreachable, short retries."""
    data["extensions"] = {"health_check": {"endpoint": "${env:TRACEHOUSE_BIND:-localhost}:"
                                                       "${env:TRACEHOUSE_HEALTH_PORT:-13133}"}}
    data["service"]["extensions"] = ["health_check"]
    data["processors"] = {"memory_limiter": {"max_in_flight_spans": LIMITER_SPANS, "max_in_flight_mib": 64}}
    for pipeline in data["service"]["pipelines"].values():  # traces, logs, metrics
        pipeline["processors"] = ["memory_limiter"]
    exporter = data["exporters"]["clickhouse"]
    exporter["endpoint"] = clickhouse
    exporter["retry_on_failure"] = {"initial_interval": "200ms", "max_interval": "400ms", "max_elapsed_time": "2s"}


def _outage_sidecar(data: dict[str, Any], queue_size: int) -> None:
    exporter = data["exporters"]["kafka"]
    exporter["sending_queue"]["queue_size"] = queue_size
    exporter["producer"]["max_message_bytes"] = MAX_MESSAGE_BYTES


def _produce(bootstrap: str, topic: str, value: bytes, partition: int) -> None:
    from aiokafka import AIOKafkaProducer

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
        await producer.start()
        try:
            await producer.send_and_wait(topic, value, partition=partition)
        finally:
            await producer.stop()

    asyncio.run(run())


def clickhouse_down_round(process: AllInOne, logs: Callable[[], str]) -> Callable[[], int]:
    """One request of STUCK_SPANS spans waits in the exporter's retries (it will get a 503);
    meanwhile a second one does not fit the memory limiter (429). Returns a function that
    waits for the first request's status."""
    statuses: list[int] = []
    stuck = threading.Thread(target=lambda: statuses.append(post(process, _request(
        [_span(f"stuck-{i}") for i in range(STUCK_SPANS)]))))
    stuck.start()
    wait_until("the first request to hold the memory limiter", lambda: process.metric(
        "tracehouse_memory_limiter_in_flight_spans") == STUCK_SPANS, logs=logs)
    assert post(process, _request([_span(f"refused-{i}") for i in range(STUCK_SPANS)])) == 429

    def status() -> int:
        stuck.join(30)
        assert len(statuses) == 1, "the stuck request did not finish"
        return statuses[0]

    return status


def _stop(process: AllInOne) -> None:
    try:
        process.stop(timeout=20)
    except Exception:
        process.kill()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if prom.binary() is None:
        pytest.skip(prom.SKIP_REASON)
    from kafka_broker import TansuBroker
    from kafka_testing import create_topic

    tmp = Path(tmp_path_factory.mktemp("pipeline-health"))
    broker = TansuBroker(tmp / "tansu.log").start()
    processes: list[AllInOne] = []
    prometheus: prom.Prometheus | None = None
    try:
        topic = f"dash_{uuid.uuid4().hex[:8]}"
        asyncio.run(create_topic(broker.bootstrap, topic, partitions=2))
        env = kafka_env(broker.bootstrap, topic, group=f"writers-{topic}")

        # The sidecar's disk queue starts with one corrupt entry: dropped when replayed.
        queue = tmp / "sidecar-queue"
        queue.mkdir()
        (queue / f"{0:020d}-{CORRUPT_ENTRY_SPANS}.wal").write_bytes(b"THWQ not a queue entry")

        outage_bodies = traffic_bodies(spans=1200, spans_per_request=400, seed=13)[:3]
        outage_counts = [span_count(b) for b in outage_bodies]
        queue_size = outage_counts[0] + outage_counts[1] + outage_counts[2] // 2

        edge = sidecar(tmp / "sidecar", {**env, "TRACEHOUSE_QUEUE_DIR": str(queue)})
        store = writer(tmp / "writer", env)
        (tmp / "all-in-one").mkdir()
        aio = AllInOne(tmp / "all-in-one")
        kafka_down = sidecar(tmp / "sidecar-outage", {
            **kafka_env(f"127.0.0.1:{free_port()}", "unreachable"),
            "TRACEHOUSE_QUEUE_DIR": str(tmp / "outage-queue")},
            config=derived_config(tmp, "sidecar", lambda d: _outage_sidecar(d, queue_size)))
        (tmp / "all-in-one-outage").mkdir()
        clickhouse_down = AllInOne(tmp / "all-in-one-outage", probe="health", config=derived_config(
            tmp, "all-in-one", lambda d: _outage_all_in_one(d, f"http://127.0.0.1:{free_port()}")))
        by_job = {SIDECAR: edge, WRITER: store, ALL_IN_ONE_JOB: aio, SIDECAR_OUTAGE: kafka_down,
                  ALL_IN_ONE_OUTAGE: clickhouse_down}
        processes.extend(by_job.values())
        with ThreadPoolExecutor(len(by_job)) as pool:
            list(pool.map(lambda p: p.start(), by_job.values()))

        def metrics_at(p: AllInOne) -> str:
            return (p.health if p.probe == "health" else p.query).removeprefix("http://")

        server = prometheus = prom.Prometheus(tmp / "prometheus", {job: metrics_at(p) for job, p in by_job.items()},
                                              scrape_interval_s=SCRAPE_S).start()
        run = Stack(server, topic, start=time.time())
        server.wait_for_scrapes()

        def logs() -> str:
            return "\n".join(f"--- {job}\n{p.log_tail(15)}" for job, p in by_job.items())

        # ---- warm-up: the traffic counters and histograms get their series, the writer joins its group
        warm = genai_body()
        assert post(edge, warm) == 200 and post(aio, warm) == 200
        wait_until("the writer to store the warm-up spans",
                   lambda: store.metric("tracehouse_exporter_sent_spans_total") >= 2, logs=logs)
        time.sleep(2 * SCRAPE_S)  # two samples of every series before the main traffic moves them
        run.baseline = time.time()

        # ---- trouble, round 1 (round 2 repeats it once Prometheus has scraped round 1, so the
        # counters it creates also show an increase, which is what rate() panels draw).
        # Kafka down: the disk queue takes two requests and refuses the third; an oversized
        # span can never be sent. ClickHouse down: one request waits in retries while the
        # next one does not fit the memory limiter.
        assert [post(kafka_down, b) for b in outage_bodies] == [200, 200, 429]
        assert post(kafka_down, _request([_span("huge", {"blob": "x" * OVERSIZED_ATTR_BYTES})])) == 400
        stuck = clickhouse_down_round(clickhouse_down, logs)

        # ---- all-in-one: OTLP over gRPC and HTTP, GenAI spans, invalid ids, a malformed body, a retry
        bodies = traffic_bodies(spans=600, spans_per_request=200, seed=11)
        post_grpc(aio, bodies[0])
        assert all(post(aio, b) == 200 for b in bodies[1:])
        assert post(aio, genai_body()) == 200
        invalid = _request([_span("ok"), _span("zero trace id", trace_id=bytes(16)), _span("short", trace_id=b"x")])
        assert post(aio, invalid) == 200  # partial success: one span kept, two refused (reason invalid)
        assert post(aio, b"\x0a\xff\xff\xff\xff") == 400  # not protobuf
        retried = bodies[1]
        assert post(aio, retried) == 200  # a client retry: every span already stored
        main_aio = sum(span_count(b) for b in bodies) + 2 + 1 + span_count(retried)  # + GenAI + the valid id

        # ---- sidecar -> Kafka -> writer, then a poison message straight into the topic
        side_bodies = traffic_bodies(spans=600, spans_per_request=200, seed=12)
        post_grpc(edge, side_bodies[0])
        assert all(post(edge, b) == 200 for b in side_bodies[1:])
        assert post(edge, genai_body()) == 200
        main_side = sum(span_count(b) for b in side_bodies) + 2
        _produce(broker.bootstrap, topic, b"\xff\xfe not an OTLP request", partition=0)

        # ---- trouble, round 2: the same, after Prometheus has scraped round 1
        assert stuck() == 503
        scraped = time.time()
        wait_until("a scrape after round 1", lambda: all(
            v > scraped for v in server.value("timestamp(up)").values()), logs=logs)
        assert post(kafka_down, outage_bodies[2]) == 429
        assert clickhouse_down_round(clickhouse_down, logs)() == 503

        # ---- settle: the writer has everything, the corrupt entry was dropped; Prometheus saw it
        side_total, aio_total = main_side + 2, main_aio + 2
        wait_until("the writer to store every span", lambda: store.metric(
            "tracehouse_exporter_sent_spans_total") == side_total
            and store.metric("tracehouse_kafka_receiver_messages_total") >= 1
            and store.metric("tracehouse_kafka_receiver_dead_letter_messages_total") == 1
            and store.metric("tracehouse_kafka_receiver_offset_lag") == 0, logs=logs)
        wait_until("the sidecar to drop the corrupt queue entry", lambda: edge.metric(
            "tracehouse_exporter_dropped_spans_total") == CORRUPT_ENTRY_SPANS, logs=logs)
        settled = time.time()
        wait_until("a scrape of every process after the traffic", lambda: all(
            v > settled for v in server.value("timestamp(up)").values()), logs=logs)
        # Counters created by the last events need two samples before rate() sees them.
        time.sleep(3 * SCRAPE_S)
        run.end = time.time()
        run.expected = {
            "aio_total": aio_total, "aio_main": main_aio, "side_total": side_total, "side_main": main_side,
            "retried": span_count(retried), "outage_counts": outage_counts, "queue_size": queue_size,
        }
        yield run
    finally:
        if prometheus is not None:
            prometheus.stop()
        with ThreadPoolExecutor(max(1, len(processes))) as pool:
            list(pool.map(_stop, processes))
        broker.stop()


# ---------------------------------------------------------------------------- every target


def _series(body: dict[str, Any]) -> list[dict[str, Any]]:
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def _finite(series: dict[str, Any]) -> list[float]:
    return [float(v) for _, v in series["values"] if not math.isnan(float(v))]


@pytest.mark.integration
def test_the_job_variable_lists_every_process(stack: Stack) -> None:
    query = pipeline_health.JOB_QUERY
    match = re.fullmatch(r"label_values\((.+), job\)", query)
    assert match, query
    assert set(stack.prometheus.label_values("job", match[1])) == set(JOBS)


@pytest.mark.integration
def test_every_panel_target_is_valid_promql_and_shows_data(stack: Stack) -> None:
    failures = []
    for t in targets(dashboard()):
        everything = stack.range(interpolate(t.expr, ".*"))
        if everything["status"] != "success":
            failures.append(f"{t.panel} ({t.ref_id}): {everything.get('error')}\n  {t.expr}")
            continue
        result = _series(everything)
        if not any(_finite(s) for s in result):
            failures.append(f"{t.panel} ({t.ref_id}): no series with a value\n  {interpolate(t.expr, '.*')}")
            continue
        # Every label the legend shows is on the series (a misspelt label would show empty).
        legend = set(_LEGEND.findall(t.legend))
        if not any(all(s["metric"].get(label) for label in legend) for s in result):
            failures.append(f"{t.panel} ({t.ref_id}): no series carries every legend label {sorted(legend)}: "
                            f"{[s['metric'] for s in result][:3]}")
        # `$job` filters every selector: a job that does not exist leaves nothing.
        nothing = _series(stack.range(interpolate(t.expr, NO_SUCH_JOB)))
        if nothing:
            failures.append(f"{t.panel} ({t.ref_id}): data for job {NO_SUCH_JOB!r}: {nothing[0]['metric']}")
        # A multi-value selection, as Grafana formats it for Prometheus.
        _series(stack.range(interpolate(t.expr, f"({SIDECAR}|{WRITER})")))
    assert not failures, "\n".join(failures)


# ---------------------------------------------------------------------------- the right values


def panel(title: str) -> list[Target]:
    found = [t for t in targets(dashboard()) if t.panel == title]
    assert found, f"no panel {title!r}"
    return found


def panel_series(stack: Stack, title: str, job: str = ".*", ref_id: str = "A") -> list[dict[str, Any]]:
    target = next(t for t in panel(title) if t.ref_id == ref_id)
    return _series(stack.range(interpolate(target.expr, job)))


def labels_of(series: list[dict[str, Any]], *names: str) -> set[tuple[str, ...]]:
    return {tuple(s["metric"].get(n, "") for n in names) for s in series}


def last(series: dict[str, Any]) -> float:
    return float(series["values"][-1][1])


@pytest.mark.integration
def test_exported_spans_equal_the_spans_sent(stack: Stack) -> None:
    p, e = stack.prometheus, stack.expected

    def sent(job: str, exporter: str, at: float) -> float:
        return p.scalar(f'sum(tracehouse_exporter_sent_spans_total{{job="{job}", exporter="{exporter}"}})', at)

    assert sent(ALL_IN_ONE_JOB, "clickhouse", stack.end) == e["aio_total"]
    assert sent(SIDECAR, "kafka", stack.end) == e["side_total"]
    assert sent(WRITER, "clickhouse", stack.end) == e["side_total"]
    # Over the window: what the main traffic added to each counter.
    assert sent(ALL_IN_ONE_JOB, "clickhouse", stack.end) - sent(ALL_IN_ONE_JOB, "clickhouse", stack.baseline) \
        == e["aio_main"]
    assert sent(WRITER, "clickhouse", stack.end) - sent(WRITER, "clickhouse", stack.baseline) == e["side_main"]
    # The panel shows each exporter of each job, and its rate integrates to roughly the same.
    series = panel_series(stack, "Exported spans/s by exporter")
    assert labels_of(series, "job", "exporter") >= {(ALL_IN_ONE_JOB, "clickhouse"), (SIDECAR, "kafka"),
                                                    (WRITER, "clickhouse")}
    writer_rate = next(s for s in series if s["metric"] == {"job": WRITER, "exporter": "clickhouse"})
    assert sum(_finite(writer_rate)) > 0
    # Received by receiver and transport: the writer's Kafka intake equals the sidecar's output.
    received = panel_series(stack, "Received spans/s by receiver & transport")
    assert labels_of(received, "job", "transport") >= {(ALL_IN_ONE_JOB, "grpc"), (ALL_IN_ONE_JOB, "http"),
                                                      (SIDECAR, "grpc"), (SIDECAR, "http"), (WRITER, "kafka")}
    assert p.scalar(f'sum(tracehouse_receiver_accepted_spans_total{{job="{WRITER}"}})', stack.end) \
        == e["side_total"]


@pytest.mark.integration
def test_refusals_show_their_reasons_and_statuses(stack: Stack) -> None:
    p = stack.prometheus
    refused = panel_series(stack, "Refused spans/s by reason")
    assert labels_of(refused, "job", "reason") >= {
        (ALL_IN_ONE_JOB, "invalid"), (SIDECAR_OUTAGE, "overload"), (SIDECAR_OUTAGE, "permanent"),
        (ALL_IN_ONE_OUTAGE, "overload"), (ALL_IN_ONE_OUTAGE, "unavailable")}

    def total(metric: str, **labels: str) -> float:
        matchers = ", ".join(f'{k}="{v}"' for k, v in labels.items())
        return p.scalar(f"sum({metric}{{{matchers}}})", stack.end)

    assert total("tracehouse_receiver_refused_spans_total", job=ALL_IN_ONE_JOB, reason="invalid") == 2
    # Each kind of trouble happened twice (two rounds).
    assert total("tracehouse_receiver_refused_spans_total", job=SIDECAR_OUTAGE, reason="overload") \
        == 2 * stack.expected["outage_counts"][2]
    assert total("tracehouse_receiver_refused_spans_total", job=ALL_IN_ONE_OUTAGE, reason="overload") \
        == 2 * STUCK_SPANS
    assert total("tracehouse_receiver_refused_spans_total", job=ALL_IN_ONE_OUTAGE, reason="unavailable") \
        == 2 * STUCK_SPANS
    statuses = panel_series(stack, "Export requests/s by status")
    assert labels_of(statuses, "job", "status") >= {
        (ALL_IN_ONE_JOB, "200"), (ALL_IN_ONE_JOB, "OK"), (ALL_IN_ONE_JOB, "400"), (SIDECAR_OUTAGE, "429"),
        (ALL_IN_ONE_OUTAGE, "503")}
    back_pressure = panel_series(stack, "Processor back-pressure: refused spans/s")
    assert labels_of(back_pressure, "job", "processor") == {(ALL_IN_ONE_OUTAGE, "memory_limiter")}
    assert total("tracehouse_processor_refused_spans_total", job=ALL_IN_ONE_OUTAGE) == 2 * STUCK_SPANS

    def refused_percent(job: str) -> list[float]:
        return [v for s in panel_series(stack, "Refused %", job=job) for v in _finite(s)]

    # Nothing accepted (the ClickHouse-down process has no accepted series at all), or
    # nothing accepted while round 2 was refused: 100 %.
    assert max(refused_percent(ALL_IN_ONE_OUTAGE)) == pytest.approx(100)
    assert max(refused_percent(SIDECAR_OUTAGE)) == pytest.approx(100)
    # No refusal series at all (the sidecar never refused): 0 %, not an empty panel.
    assert set(refused_percent(SIDECAR)) == {0.0}


@pytest.mark.integration
def test_export_problems_and_queues(stack: Stack) -> None:
    p, e = stack.prometheus, stack.expected

    def total(metric: str, **labels: str) -> float:
        matchers = ", ".join(f'{k}="{v}"' for k, v in labels.items())
        return p.scalar(f"sum({metric}{{{matchers}}})", stack.end)

    problems = {t.ref_id: _series(stack.range(interpolate(t.expr, ".*")))
                for t in panel("Failed, dropped and duplicate spans/s")}
    assert labels_of(problems["A"], "job", "exporter") == {(ALL_IN_ONE_OUTAGE, "clickhouse"), (SIDECAR_OUTAGE, "kafka")}
    assert labels_of(problems["B"], "job", "reason") == {(SIDECAR, "corrupt_queue_entry")}
    assert labels_of(problems["C"], "job", "exporter") == {(ALL_IN_ONE_JOB, "clickhouse")}
    assert total("tracehouse_exporter_send_failed_spans_total", job=ALL_IN_ONE_OUTAGE) == 2 * STUCK_SPANS
    assert total("tracehouse_exporter_send_failed_spans_total", job=SIDECAR_OUTAGE) == 1  # the oversized span
    assert total("tracehouse_exporter_dropped_spans_total", job=SIDECAR) == CORRUPT_ENTRY_SPANS
    assert total("tracehouse_exporter_duplicate_spans_total", job=ALL_IN_ONE_JOB) == e["retried"]
    assert total("tracehouse_exporter_send_retries_total", job=ALL_IN_ONE_OUTAGE) >= 1
    assert labels_of(panel_series(stack, "Export attempts retried/s"), "job") == {(ALL_IN_ONE_OUTAGE,)}
    assert total("tracehouse_exporter_enqueue_failed_spans_total", job=SIDECAR_OUTAGE) == 2 * e["outage_counts"][2]

    # Two requests fit the Kafka-down sidecar's queue, the third did not.
    queued = sum(e["outage_counts"][:2])
    size = panel_series(stack, "Exporter sending queue: size vs capacity", job=SIDECAR_OUTAGE)
    capacity = panel_series(stack, "Exporter sending queue: size vs capacity", job=SIDECAR_OUTAGE, ref_id="B")
    assert [last(s) for s in size] == [queued] and [last(s) for s in capacity] == [e["queue_size"]]
    utilization = 100 * queued / e["queue_size"]
    assert last(panel_series(stack, "Queue utilization")[0]) == pytest.approx(utilization)
    by_job = panel_series(stack, "Sending queue utilization")
    # Every exporter has a sending queue (the ClickHouse ones an in-memory one, empty by now).
    assert {s["metric"]["job"]: last(s) for s in by_job} == pytest.approx(
        {SIDECAR_OUTAGE: utilization, SIDECAR: 0, WRITER: 0, ALL_IN_ONE_JOB: 0, ALL_IN_ONE_OUTAGE: 0})

    latency = {t.ref_id: _series(stack.range(interpolate(t.expr, ".*")))
               for t in panel("Insert latency p50 / p95 / p99 by exporter")}
    for ref_id, series in latency.items():
        assert labels_of([s for s in series if _finite(s)], "job", "exporter") >= {
            (ALL_IN_ONE_JOB, "clickhouse"), (SIDECAR, "kafka")}, ref_id
    assert labels_of(panel_series(stack, "Batch processor: queued spans"), "job", "component") == {
        (ALL_IN_ONE_JOB, "batch")}
    # Group commit (the default): a request finding the exporter idle goes at once.
    assert ("idle",) in labels_of(panel_series(stack, "Batch processor: batches sent/s by trigger"), "trigger")


@pytest.mark.integration
def test_kafka_panels_show_the_writers_topic(stack: Stack) -> None:
    lag = panel_series(stack, "Consumer offset lag by topic / partition", job=WRITER)
    assert labels_of(lag, "job", "topic", "partition") == {(WRITER, stack.topic, "0"), (WRITER, stack.topic, "1")}
    assert all(last(s) == 0 for s in lag), "the writer caught up"
    assert last(panel_series(stack, "Max Kafka lag", job=WRITER)[0]) == 0
    outcomes = panel_series(stack, "Messages consumed/s by outcome")
    assert labels_of(outcomes, "job", "topic", "outcome") == {
        (WRITER, stack.topic, "accepted"), (WRITER, stack.topic, "dead_lettered")}
    dead = panel_series(stack, "Dead-letter messages/s by reason")
    assert labels_of(dead, "job", "topic", "reason") == {(WRITER, stack.topic, "decode_error")}
    assert stack.prometheus.scalar(
        f'sum(tracehouse_kafka_receiver_dead_letter_messages_total{{topic="{stack.topic}"}})', stack.end) == 1
    batches = panel_series(stack, "Kafka batch duration p95")
    assert any(_finite(s) for s in batches if s["metric"].get("job") == WRITER)


@pytest.mark.integration
def test_genai_enrichment_panels(stack: Stack) -> None:
    unpriced = panel_series(stack, "Unpriced spans/s by provider / model")
    assert ("openai", UNPRICED_MODEL) in labels_of(unpriced, "provider", "model")
    # Two processes enrich (all-in-one and writer), each saw the warm-up and the main request.
    assert stack.prometheus.scalar(
        f'sum(tracehouse_genai_unpriced_spans_total{{model="{UNPRICED_MODEL}"}})', stack.end) == 4
    for title in ("Token-estimated spans/s by direction", "Estimated tokens/s by direction"):
        assert labels_of(panel_series(stack, title), "direction") == {("input",), ("output",)}, title
    assert stack.prometheus.scalar('sum(tracehouse_genai_estimated_spans_total{direction="input"})', stack.end) == 4
    # The all-in-one and the sidecar mask the email (warm-up and main request); the writer
    # gets it masked through Kafka and finds nothing left to mask.
    redacted = panel_series(stack, "Redacted values/s by job / kind")
    assert labels_of(redacted, "job", "kind") == {(ALL_IN_ONE_JOB, "email"), (SIDECAR, "email")}
    assert stack.prometheus.scalar('sum(tracehouse_processor_redaction_masked_values_total{kind="email"})',
                                   stack.end) == 4
