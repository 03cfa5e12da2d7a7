"""The pipeline's own metrics, exposed as Prometheus text on the query service's /metrics.

Declared in one place (like the Collector's metadata.yaml) so names stay consistent:
`tracehouse_<kind>_<what>_<unit>` with component ids as labels. Each Service owns its
registry, so several services in one process (tests) never share counters.

What a receiver accepts or refuses and what an exporter sends, fails or drops is counted
per signal, in the signal's unit, as the Collector does (`..._spans`, `..._log_records`,
`..._metric_points`); `of(signal)` gives a signal's set. Gauges of what a component holds
(queues, in-flight data) count items of whatever signal the component carries.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest

from tracehouse.core.component import Signal

# `*_created` series double every counter and no dashboard of ours reads them.
disable_created_metrics()

_SIZE_BUCKETS = (10, 50, 100, 250, 500, 1000, 2000, 5000, 10000, 20000, 50000)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass(frozen=True, slots=True)
class SignalCounters:
    """One signal's counters (labels as the traces ones); names end in the signal's unit, as
    the Collector's do: `_spans`, `_log_records`, `_metric_points`."""

    receiver_accepted: Counter
    receiver_refused: Counter
    processor_refused: Counter
    exporter_sent: Counter
    exporter_send_failed: Counter
    exporter_duplicate: Counter
    exporter_enqueue_failed: Counter
    exporter_dropped: Counter


class Telemetry:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self._counters: dict[str, Counter] | None = None
        self.receiver_accepted_spans = Counter(
            "tracehouse_receiver_accepted_spans", "Spans accepted and durably handed on.",
            ["receiver", "transport"], registry=r)
        self.receiver_refused_spans = Counter(
            "tracehouse_receiver_refused_spans", "Spans refused with an error to the client.",
            ["receiver", "transport", "reason"], registry=r)
        self.receiver_requests = Counter(
            "tracehouse_receiver_requests", "Export requests by response status.",
            ["receiver", "transport", "status"], registry=r)
        self.receiver_request_duration = Histogram(
            "tracehouse_receiver_request_duration_seconds", "Time from request to response.",
            ["receiver", "transport"], buckets=_LATENCY_BUCKETS, registry=r)
        self.processor_refused_spans = Counter(
            "tracehouse_processor_refused_spans", "Spans a processor refused (back-pressure).",
            ["processor", "pipeline"], registry=r)
        self.processor_dropped_spans = Counter(
            "tracehouse_processor_dropped_spans", "Spans a processor dropped on purpose.",
            ["processor", "pipeline"], registry=r)
        self.memory_limiter_in_flight_spans = Gauge(
            "tracehouse_memory_limiter_in_flight_spans",
            "Items (spans, log records or data points, by the pipeline's signal) admitted and not yet handed on.",
            ["processor", "pipeline"], registry=r)
        self.memory_limiter_in_flight_bytes = Gauge(
            "tracehouse_memory_limiter_in_flight_bytes", "Wire bytes admitted and not yet handed on.",
            ["processor", "pipeline"], registry=r)
        self.batch_send_size = Histogram(
            "tracehouse_processor_batch_send_size_spans",
            "Items (spans, log records or data points, by the pipeline's signal) per batch sent downstream.",
            ["processor", "pipeline"], buckets=_SIZE_BUCKETS, registry=r)
        self.batch_send_trigger = Counter(
            "tracehouse_processor_batch_send_trigger", "Why a batch was sent (size, timeout, shutdown).",
            ["processor", "pipeline", "trigger"], registry=r)
        self.queued_spans = Gauge(
            "tracehouse_queued_spans", "Items (spans, log records, data points) waiting in a component's buffer.",
            ["component"], registry=r)
        self.genai_unpriced_spans = Counter(
            "tracehouse_genai_unpriced_spans",
            "GenAI spans with token counts whose model has no price (cost left empty, never guessed).",
            ["provider", "model"], registry=r)
        self.genai_estimated_spans = Counter(
            "tracehouse_genai_estimated_spans", "LLM spans whose token count was estimated offline (usage missing).",
            ["direction"], registry=r)
        self.genai_estimated_tokens = Counter(
            "tracehouse_genai_estimated_tokens", "Tokens counted offline for spans that reported no usage.",
            ["direction"], registry=r)
        self.redaction_masked_values = Counter(
            "tracehouse_processor_redaction_masked_values",
            "Values the redaction processor masked, by kind: a detector (email, openai_api_key...), "
            "blocked_key, blocked_value, or content (message content removed by genai.content: drop).",
            ["processor", "pipeline", "kind"], registry=r)
        self.redaction_redacted_keys = Counter(
            "tracehouse_processor_redaction_redacted_keys",
            "Attributes the redaction processor removed (not in allowed_keys).",
            ["processor", "pipeline"], registry=r)
        self.redaction_spans = Counter(
            "tracehouse_processor_redaction_spans", "Spans with at least one value masked or removed.",
            ["processor", "pipeline"], registry=r)
        self.redaction_log_records = Counter(
            "tracehouse_processor_redaction_log_records", "Log records with at least one value masked or removed.",
            ["processor", "pipeline"], registry=r)
        self.exporter_sent_spans = Counter(
            "tracehouse_exporter_sent_spans", "Spans the exporter durably wrote.",
            ["exporter"], registry=r)
        self.exporter_send_failed_spans = Counter(
            "tracehouse_exporter_send_failed_spans", "Spans whose export failed after retries.",
            ["exporter"], registry=r)
        self.exporter_duplicate_spans = Counter(
            "tracehouse_exporter_duplicate_spans", "Spans already stored (client retries), not written again.",
            ["exporter"], registry=r)
        self.exporter_send_retries = Counter(
            "tracehouse_exporter_send_retries", "Export attempts that failed and were retried.",
            ["exporter"], registry=r)
        self.exporter_send_duration = Histogram(
            "tracehouse_exporter_send_duration_seconds", "Duration of one export attempt.",
            ["exporter"], buckets=_LATENCY_BUCKETS, registry=r)

        # Kafka exporter and its sending queue.
        self.exporter_queue_size = Gauge(
            "tracehouse_exporter_queue_size",
            "Items (spans, log records, data points) in the exporter's sending queue (memory or disk).",
            ["exporter"], registry=r)
        self.exporter_queue_capacity = Gauge(
            "tracehouse_exporter_queue_capacity", "Capacity of the exporter's sending queue, in items.",
            ["exporter"], registry=r)
        self.exporter_enqueue_failed_spans = Counter(
            "tracehouse_exporter_enqueue_failed_spans", "Spans refused because the sending queue was full.",
            ["exporter"], registry=r)
        self.exporter_dropped_spans = Counter(
            "tracehouse_exporter_dropped_spans",
            "Spans an exporter gave up on after accepting them (e.g. a queued batch Kafka rejects permanently).",
            ["exporter", "reason"], registry=r)
        # Kafka receiver.
        self.kafka_receiver_messages = Counter(
            "tracehouse_kafka_receiver_messages", "Kafka messages consumed, by outcome.",
            ["receiver", "topic", "outcome"], registry=r)
        self.kafka_receiver_dead_letters = Counter(
            "tracehouse_kafka_receiver_dead_letter_messages", "Messages sent to the dead-letter topic, by reason.",
            ["receiver", "topic", "reason"], registry=r)
        self.kafka_receiver_offset_lag = Gauge(
            "tracehouse_kafka_receiver_offset_lag", "Messages between the partition's high watermark and our position.",
            ["receiver", "topic", "partition"], registry=r)
        self.kafka_receiver_batch_duration = Histogram(
            "tracehouse_kafka_receiver_batch_duration_seconds",
            "Time from cutting a partition batch to committing its offsets.",
            ["receiver"], buckets=_LATENCY_BUCKETS, registry=r)

        self._signals = {Signal.TRACES: SignalCounters(
            self.receiver_accepted_spans, self.receiver_refused_spans, self.processor_refused_spans,
            self.exporter_sent_spans, self.exporter_send_failed_spans, self.exporter_duplicate_spans,
            self.exporter_enqueue_failed_spans, self.exporter_dropped_spans)}
        # Logs and metrics: the same counters in their units, named as literally as the rest
        # (the dashboards' tests read the names from this file).
        self._signals[Signal.LOGS] = SignalCounters(
            Counter("tracehouse_receiver_accepted_log_records", "Log records accepted and durably handed on.",
                    ["receiver", "transport"], registry=r),
            Counter("tracehouse_receiver_refused_log_records", "Log records refused with an error to the client.",
                    ["receiver", "transport", "reason"], registry=r),
            Counter("tracehouse_processor_refused_log_records", "Log records a processor refused (back-pressure).",
                    ["processor", "pipeline"], registry=r),
            Counter("tracehouse_exporter_sent_log_records", "Log records the exporter durably wrote.",
                    ["exporter"], registry=r),
            Counter("tracehouse_exporter_send_failed_log_records", "Log records whose export failed after retries.",
                    ["exporter"], registry=r),
            Counter("tracehouse_exporter_duplicate_log_records",
                    "Log records already stored (client retries), not written again.", ["exporter"], registry=r),
            Counter("tracehouse_exporter_enqueue_failed_log_records",
                    "Log records refused because the sending queue was full.", ["exporter"], registry=r),
            Counter("tracehouse_exporter_dropped_log_records", "Log records an exporter gave up on after accepting them.",
                    ["exporter", "reason"], registry=r))
        self._signals[Signal.METRICS] = SignalCounters(
            Counter("tracehouse_receiver_accepted_metric_points", "Metric data points accepted and durably handed on.",
                    ["receiver", "transport"], registry=r),
            Counter("tracehouse_receiver_refused_metric_points",
                    "Metric data points refused with an error to the client.",
                    ["receiver", "transport", "reason"], registry=r),
            Counter("tracehouse_processor_refused_metric_points",
                    "Metric data points a processor refused (back-pressure).", ["processor", "pipeline"], registry=r),
            Counter("tracehouse_exporter_sent_metric_points", "Metric data points the exporter durably wrote.",
                    ["exporter"], registry=r),
            Counter("tracehouse_exporter_send_failed_metric_points",
                    "Metric data points whose export failed after retries.", ["exporter"], registry=r),
            Counter("tracehouse_exporter_duplicate_metric_points",
                    "Metric data points already stored (client retries), not written again.", ["exporter"], registry=r),
            Counter("tracehouse_exporter_enqueue_failed_metric_points",
                    "Metric data points refused because the sending queue was full.", ["exporter"], registry=r),
            Counter("tracehouse_exporter_dropped_metric_points",
                    "Metric data points an exporter gave up on after accepting them.", ["exporter", "reason"],
                    registry=r))

    def of(self, signal: Signal) -> SignalCounters:
        """The counters of `signal`'s items."""
        return self._signals[signal]

    def counters_by_name(self) -> dict[str, Counter]:
        """Every counter, by its metric name (processor workers add theirs to these)."""
        if self._counters is None:
            self._counters = {c._name: c for c in vars(self).values() if isinstance(c, Counter)}
            for counters in self._signals.values():
                for f in fields(counters):
                    counter = getattr(counters, f.name)
                    self._counters[counter._name] = counter
        return self._counters

    def render(self) -> bytes:
        return generate_latest(self.registry)
