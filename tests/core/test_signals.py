"""Logs and metrics beside traces in the core: the batch types, pipelines per signal, the
shared receiver, and the generic stages (batch, memory_limiter, the exporter helper and its
disk queue) on log records and data points.

Payloads are what the OpenTelemetry Python SDK's log and metric exporters send
(tests/signals_sdk.py)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric

from otlp_fixtures import load_batch
from signals_sdk import sdk_logs_request, sdk_metrics_request
from test_exporterhelper import ScriptedSender, exporter, metric
from tracehouse.core.component import ComponentID, Kind, Settings, Signal, SignalConsumers
from tracehouse.core.config import load_config_dict
from tracehouse.core.errors import ConfigError, PermanentError, RetryableError
from tracehouse.core.exporterhelper import ExportRequest
from tracehouse.core.exporterhelper.codec import decode_batch, encode_batch
from tracehouse.core.pdata import LogBatch, MetricBatch, OtlpBatch, RecordRange, TraceBatch, metric_points
from tracehouse.core.service import Service
from tracehouse.core.testing import Sink, TestHost
from tracehouse.sinks.clickhouse.columns import batch_to_columns
from tracehouse.processors.batch.config import BatchConfig
from tracehouse.processors.batch.processor import BatchProcessor
from tracehouse.processors.memory_limiter.config import MemoryLimiterConfig
from tracehouse.processors.memory_limiter.processor import MemoryLimiterProcessor


def logs(n: int = 4, service: str = "svc") -> LogBatch:
    return LogBatch.from_bytes(sdk_logs_request(service, [f"line {i}" for i in range(n)]).SerializeToString())


def metrics(service: str = "svc") -> MetricBatch:
    return MetricBatch.from_bytes(sdk_metrics_request(service).SerializeToString())


def points(batch: MetricBatch) -> list[tuple[str, Any]]:
    return [(m.name, p) for rm in batch.request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
            for p in metric_points(m)]


# -- batch types ---------------------------------------------------------------------------

def test_logs_and_metrics_count_their_items_as_the_collector_does() -> None:
    assert logs(4).item_count == logs(4).record_count == 4
    batch = metrics()
    # gauge 1, counter 2 (two routes), up-down counter 1, histogram 1, exponential histogram 1
    assert batch.item_count == batch.point_count == len(points(batch)) == 6
    assert (batch.signal, logs().signal, TraceBatch.signal) == (Signal.METRICS, Signal.LOGS, Signal.TRACES)


def test_merge_clone_and_split_work_on_every_signal() -> None:
    a, b = logs(3), logs(2, "other")
    merged = LogBatch.merge([a, b])
    assert merged.item_count == 5 and merged.raw == a.raw + b.raw  # raw bytes concatenate
    assert LogBatch.from_bytes(merged.to_bytes()).request == merged.request

    copy = merged.clone()
    copy.request.resource_logs[0].scope_logs[0].log_records[0].body.string_value = "changed"
    assert merged.request.resource_logs[0].scope_logs[0].log_records[0].body.string_value == "line 0"

    first, second = merged.split()  # two resources: split by resource
    assert (first.item_count, second.item_count) == (3, 2)


def test_a_trace_merge_keeps_the_requests_it_was_given_instead_of_copying_their_spans() -> None:
    parts = [load_batch("openinference/http-protobuf.pb"), load_batch("otel-genai-openai-v2/grpc.pb"),
             load_batch("mlflow/http-protobuf.pb")]
    parts[1].request.resource_spans[0].scope_spans[0].spans[0].name = "renamed"  # a processor changed it
    parts[1].mark_mutated()
    merged = TraceBatch.merge(parts)
    # The same messages, walked in order: nothing copied, nothing re-serialized.
    assert all(got is part.request for got, part in zip(merged.requests, parts, strict=True))
    spans = [span for _, _, span in merged.iter_spans()]
    assert spans and spans == [span for p in parts for _, _, span in p.iter_spans()]
    assert len(spans) == merged.span_count
    # The exporter's rows come from the parts as they are, equal to a one-request merge's.
    names, columns = batch_to_columns(merged)
    assert merged.raw is None and len(merged.requests) == 3
    # Serialized requests concatenate: the bytes are the merge, with the change.
    assert TraceBatch.from_bytes(merged.to_bytes()).request == merged.request
    assert len(merged.requests) == 1  # `request` built the one message, once
    assert batch_to_columns(TraceBatch.from_request(merged.request)) == (names, columns)
    assert "renamed" in columns[names.index("SpanName")]


def test_a_metric_split_shares_its_points_out_and_keeps_its_name_kind_and_temporality() -> None:
    batch = metrics()
    sum_metric = next(m for rm in batch.request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
                      if m.name == "app.requests")
    # One resource, one scope: a split goes down to data points, here through the counter's two.
    request = batch.request_type()
    rm = request.resource_metrics.add()
    rm.resource.CopyFrom(batch.request.resource_metrics[0].resource)
    rm.scope_metrics.add().metrics.append(sum_metric)
    only = MetricBatch.from_request(request)
    left, right = only.split()
    assert (left.item_count, right.item_count) == (1, 1)
    for half in (left, right):
        (metric_,) = [m for rm in half.request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]
        assert isinstance(metric_, Metric) and metric_.name == "app.requests" and metric_.WhichOneof("data") == "sum"
        assert metric_.sum.is_monotonic and metric_.sum.aggregation_temporality == sum_metric.sum.aggregation_temporality
        assert half.request.resource_metrics[0].resource == rm.resource
    # Every point of the whole batch ends up in exactly one half, whatever the split.
    whole = [(n, p.SerializeToString()) for n, p in points(batch)]
    halves = [(n, p.SerializeToString()) for h in batch.split() for n, p in points(h)]
    assert sorted(halves) == sorted(whole)


def test_logs_and_metrics_round_trip_the_disk_queue_codec_with_tenant_and_origin() -> None:
    for batch in (logs(), metrics()):
        batch.tenant = "shop"
        batch.origin = RecordRange("otlp_x", 1, 5, 9)
        back = decode_batch(encode_batch(batch))
        assert type(back) is type(batch) and back.request == batch.request
        assert (back.tenant, back.origin, back.item_count) == ("shop", batch.origin, batch.item_count)
    # A plain traces entry (what the sidecar's queue always held) still reads as traces.
    assert isinstance(decode_batch(TraceBatch.from_request(TraceBatch.request_type()).to_bytes()), TraceBatch)


# -- config and wiring ---------------------------------------------------------------------

def config(**pipelines: Any) -> dict[str, Any]:
    return {"receivers": {"otlp": {"protocols": {"http": {"endpoint": "127.0.0.1:0"}}}},
            "processors": {"batch": {}, "memory_limiter": {}, "redaction": {}},
            "exporters": {"debug": {}},
            "service": {"pipelines": pipelines}}


PIPE = {"receivers": ["otlp"], "processors": ["memory_limiter", "batch"], "exporters": ["debug"]}


def test_one_receiver_serves_every_signal_and_each_pipeline_has_its_own_processors() -> None:
    service = Service(load_config_dict(config(traces=PIPE, logs=PIPE, **{"logs/archive": PIPE}, metrics=PIPE)))
    service.build()
    receivers = [n for n in service._nodes if n.kind is Kind.RECEIVER]
    assert len(receivers) == 1, "shared across signals, as the Collector's sharedcomponent"
    assert len([n for n in service._nodes if n.kind is Kind.EXPORTER]) == 1
    assert sorted(n.pipeline for n in service._nodes if n.id == ComponentID("batch")) == [  # type: ignore[type-var]
        "logs", "logs/archive", "metrics", "traces"]
    exports = receivers[0].component._servers[0].handler  # type: ignore[attr-defined]
    assert exports.signals == frozenset(Signal)


@pytest.mark.parametrize(("pipelines", "path", "words"), [
    ({"metrics": {**PIPE, "processors": ["redaction"]}}, "service::pipelines::metrics::processors",
     'processor "redaction" does not support metrics: it takes traces, logs only'),
    ({"metrics/": PIPE}, "service::pipelines::metrics/", "empty pipeline name"),
    ({"log": PIPE}, "service::pipelines::log", "unknown signal 'log'"),
])
def test_a_component_in_a_pipeline_of_a_signal_it_does_not_take_is_a_config_error(
        pipelines: dict[str, Any], path: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config_dict(config(**pipelines))
    assert err.value.path == path and words in err.value.reason


def test_the_mlflow_receiver_takes_traces_only() -> None:
    data = config(logs={**PIPE, "receivers": ["mlflow"]})
    data["receivers"]["mlflow"] = {}
    with pytest.raises(ConfigError, match='receiver "mlflow" does not support logs'):
        load_config_dict(data)


async def test_signal_consumers_route_by_signal_and_refuse_a_signal_without_a_pipeline() -> None:
    log_sink, metric_sink = Sink(), Sink()
    consumers = SignalConsumers({Signal.LOGS: log_sink, Signal.METRICS: metric_sink})
    await consumers.consume(logs())
    await consumers.consume(metrics())
    assert (log_sink.item_count, metric_sink.item_count) == (4, 6)
    with pytest.raises(PermanentError, match="no traces pipeline"):
        await consumers.consume(TraceBatch.from_request(TraceBatch.request_type()))


# -- generic stages ------------------------------------------------------------------------

async def test_batch_merges_log_batches_and_counts_records() -> None:
    sink = Sink()
    host = TestHost()
    proc = BatchProcessor(Settings(ComponentID("batch"), Kind.PROCESSOR, "logs"),
                          BatchConfig(send_batch_size=6, group_commit=False, timeout=5), sink)
    await proc.start(host)
    await asyncio.gather(proc.consume(logs(3)), proc.consume(logs(3)))  # the size trigger
    assert len(sink.batches) == 1 and isinstance(sink.batches[0], LogBatch) and sink.item_count == 6
    await proc.shutdown()


async def test_the_memory_limiter_refuses_data_points_retryably_and_counts_them_per_signal() -> None:
    sink = Sink()
    sink.block()
    host = TestHost()
    proc = MemoryLimiterProcessor(Settings(ComponentID("memory_limiter"), Kind.PROCESSOR, "metrics"),
                                  MemoryLimiterConfig(max_in_flight_spans=8), sink)
    await proc.start(host)
    held = asyncio.create_task(proc.consume(metrics()))  # 6 points in flight
    await asyncio.sleep(0.01)
    with pytest.raises(RetryableError, match="6 data points") as refused:
        await proc.consume(metrics())
    assert refused.value.overload and refused.value.retry_after
    labels = {"processor": "memory_limiter", "pipeline": "metrics"}
    assert host.telemetry.registry.get_sample_value("tracehouse_processor_refused_metric_points_total", labels) == 6
    assert not host.telemetry.registry.get_sample_value("tracehouse_processor_refused_spans_total", labels)
    sink.unblock()
    await held
    await proc.shutdown()


class PoisonPoint(ScriptedSender):
    """Refuses, permanently, any batch holding a data point with attribute route=/poison."""

    def request(self, batch: OtlpBatch[Any]) -> ExportRequest:
        sender = self

        class Attempt(ExportRequest):
            async def send(self) -> None:
                if any(kv.value.string_value == "/poison" for _, p in points(batch) for kv in p.attributes):  # type: ignore[arg-type]
                    raise PermanentError("a value cannot be stored")
                sender.delivered.append(batch)  # type: ignore[arg-type]

        return Attempt()


async def test_a_queued_metrics_batch_with_one_refused_point_loses_only_that_point(tmp_path: Path) -> None:
    sender = PoisonPoint()
    host, exp = TestHost(), exporter(sender, sending_queue={"storage": str(tmp_path)})
    await exp.start(host)
    batch = metrics()
    for _, point in points(batch):
        for kv in point.attributes:
            if kv.value.string_value == "/embed":
                kv.value.string_value = "/poison"
    batch.mark_mutated()
    await exp.consume(batch)  # acknowledged: on disk, as a metrics entry
    deadline = time.monotonic() + 5
    while exp.queued_items and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await exp.shutdown()
    assert all(isinstance(b, MetricBatch) for b in sender.delivered)
    assert sum(b.item_count for b in sender.delivered) == 5
    assert metric(host, "tracehouse_exporter_dropped_metric_points_total", reason="rejected") == 1
    assert metric(host, "tracehouse_exporter_sent_metric_points_total") == 5
    assert metric(host, "tracehouse_exporter_sent_spans_total") == 0
