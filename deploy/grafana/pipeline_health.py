"""The "Pipeline health" dashboard: tracehouse's own Prometheus metrics (core/telemetry.py).

Every tracehouse process (all-in-one, sidecar, writer) serves them on `/metrics`; Prometheus
scrapes each under its own `job`. Rows follow a span through the pipeline: received or
refused at a receiver, held by the memory limiter and the batch processor, queued and sent
by an exporter, consumed from Kafka by the writer, enriched by the GenAI processors.

Every query filters `job=~"$job"` (multi-value, All = `.*`) and rates use Grafana's
`$__rate_interval`. In the Kafka shape a span is counted twice on purpose: accepted by the
sidecar's OTLP receiver, then by the writer's Kafka receiver, and exported by both; the
panels keep `job`, `receiver`/`transport` and `exporter` apart so nothing is summed across
those hops, except the top row's "Received" which counts only spans coming in from
applications (OTLP gRPC and HTTP).

Counters are `<name>_total`, histograms `<name>_bucket|_sum|_count`; the dashboard test
(tests/grafana/test_pipeline_health_dashboard.py) checks every name and label against
core/telemetry.py and runs every query against a real Prometheus scraping real processes.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.models.common import (
    BigValueColorMode,
    BigValueGraphMode,
    LegendDisplayMode,
    LegendPlacement,
    SortOrder,
    TooltipDisplayMode,
)
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    Threshold,
    ThresholdsMode,
    VariableOption,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import QueryEditorMode

from tracehouse.grafana.common import (
    OVERVIEW_UID,
    PIPELINE_UID,
    PROMETHEUS,
    PROMETHEUS_UID,
    PROMPTS_UID,
    dashboard_link,
    datasource_variable,
)

TITLE = "tracehouse / Pipeline health"
TAGS = ["tracehouse", "pipeline", "prometheus"]

# The `job` variable lists the jobs that expose any tracehouse series: every process has
# some (a sidecar has no Kafka receiver, a writer no OTLP receiver, so no single metric is
# in all of them).
JOB_QUERY = 'label_values({__name__=~"tracehouse_.+"}, job)'
JOB = 'job=~"$job"'

Panel = stat.Panel | timeseries.Panel
RATE = "$__rate_interval"

# Metric names as Prometheus exposes them (core/telemetry.py declares them without the
# `_total` / `_bucket` suffixes prometheus_client adds).
ACCEPTED = "tracehouse_receiver_accepted_spans_total"
REFUSED = "tracehouse_receiver_refused_spans_total"
REQUESTS = "tracehouse_receiver_requests_total"
REQUEST_DURATION = "tracehouse_receiver_request_duration_seconds_bucket"
PROCESSOR_REFUSED = "tracehouse_processor_refused_spans_total"
IN_FLIGHT_SPANS = "tracehouse_memory_limiter_in_flight_spans"
IN_FLIGHT_BYTES = "tracehouse_memory_limiter_in_flight_bytes"
BATCH_TRIGGER = "tracehouse_processor_batch_send_trigger_total"
QUEUED = "tracehouse_queued_spans"
SENT = "tracehouse_exporter_sent_spans_total"
SEND_FAILED = "tracehouse_exporter_send_failed_spans_total"
DUPLICATE = "tracehouse_exporter_duplicate_spans_total"
RETRIES = "tracehouse_exporter_send_retries_total"
SEND_DURATION = "tracehouse_exporter_send_duration_seconds_bucket"
QUEUE_SIZE = "tracehouse_exporter_queue_size"
QUEUE_CAPACITY = "tracehouse_exporter_queue_capacity"
ENQUEUE_FAILED = "tracehouse_exporter_enqueue_failed_spans_total"
DROPPED = "tracehouse_exporter_dropped_spans_total"
KAFKA_MESSAGES = "tracehouse_kafka_receiver_messages_total"
DEAD_LETTERS = "tracehouse_kafka_receiver_dead_letter_messages_total"
OFFSET_LAG = "tracehouse_kafka_receiver_offset_lag"
KAFKA_BATCH_DURATION = "tracehouse_kafka_receiver_batch_duration_seconds_bucket"
UNPRICED = "tracehouse_genai_unpriced_spans_total"
ESTIMATED_SPANS = "tracehouse_genai_estimated_spans_total"
ESTIMATED_TOKENS = "tracehouse_genai_estimated_tokens_total"
REDACTED = "tracehouse_processor_redaction_masked_values_total"


# ------------------------------------------------------------------------------ PromQL


def series(metric: str, *matchers: str) -> str:
    """`metric{job=~"$job", ...}`: every selector of the dashboard is filtered by `$job`."""
    return f"{metric}{{{', '.join([JOB, *matchers])}}}"


def rate(metric: str, *matchers: str) -> str:
    return f"rate({series(metric, *matchers)}[{RATE}])"


def sum_rate(by: str, metric: str, *matchers: str) -> str:
    return f"sum by ({by}) ({rate(metric, *matchers)})"


def quantile(q: float, by: str, bucket_metric: str) -> str:
    return f"histogram_quantile({q:g}, sum by ({by}, le) ({rate(bucket_metric)}))"


def query(expr: str, legend: str, ref_id: str = "A") -> prometheus.Dataquery:
    return (prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref_id).range()
            .editor_mode(QueryEditorMode.CODE).datasource(PROMETHEUS))


# Application-facing receivers only (the writer's Kafka receiver re-counts the same spans).
FROM_APPS = 'transport!="kafka"'
_ACCEPTED_APPS = f"sum({rate(ACCEPTED, FROM_APPS)})"
_REFUSED_APPS = f"sum({rate(REFUSED, FROM_APPS)})"
# A process that never refused has no refused series at all: count it as 0 (and a process
# that refused everything as 0 accepted) instead of letting the division come out empty.
_REFUSED_OR_0 = f"({_REFUSED_APPS} or {_ACCEPTED_APPS} * 0)"
_ACCEPTED_OR_0 = f"({_ACCEPTED_APPS} or {_REFUSED_APPS} * 0)"
REFUSED_PERCENT = f"100 * {_REFUSED_OR_0} / clamp_min({_ACCEPTED_OR_0} + {_REFUSED_OR_0}, 1e-9)"
QUEUE_UTILIZATION = f"100 * {series(QUEUE_SIZE)} / {series(QUEUE_CAPACITY)}"


# ------------------------------------------------------------------------------ panels


def _thresholds(*steps: tuple[float | None, str]) -> dash.ThresholdsConfig:
    return (dash.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE)
            .steps([Threshold(value=value, color=color) for value, color in steps]))


def stat_panel(title: str, description: str, unit: str, target: prometheus.Dataquery, *,
               width: int, thresholds: dash.ThresholdsConfig | None = None) -> stat.Panel:
    panel = (stat.Panel().title(title).description(description).datasource(PROMETHEUS)
             .with_target(target).unit(unit).height(4).span(width)
             .graph_mode(BigValueGraphMode.AREA).color_mode(BigValueColorMode.VALUE)
             .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False)))
    if thresholds is not None:
        panel = panel.thresholds(thresholds)
    return panel


def ts_panel(title: str, description: str, unit: str, *targets: prometheus.Dataquery,
             width: int = 8, height: int = 8, max_value: float | None = None) -> timeseries.Panel:
    panel = (timeseries.Panel().title(title).description(description).datasource(PROMETHEUS)
             .unit(unit).min(0).height(height).span(width).fill_opacity(10).line_width(1)
             .legend(common_builders.VizLegendOptions().display_mode(LegendDisplayMode.TABLE)
                     .placement(LegendPlacement.BOTTOM).show_legend(True).calcs(["mean", "max", "lastNotNull"]))
             .tooltip(common_builders.VizTooltipOptions().mode(TooltipDisplayMode.MULTI).sort(SortOrder.DESCENDING)))
    for ref, target in zip("ABCDEFGH", targets, strict=False):
        panel = panel.with_target(target.ref_id(ref))
    if max_value is not None:
        panel = panel.max(max_value)
    return panel


def overview_row() -> list[Panel]:
    return [
        stat_panel("Received spans/s", "Spans accepted from applications (OTLP gRPC and HTTP receivers).",
                   "ops", query(_ACCEPTED_APPS, "received"), width=5),
        stat_panel("Exported spans/s", "Spans durably written, per exporter (kafka: the sidecar's hand-off; "
                   "clickhouse: stored).", "ops", query(f"sum by (exporter) ({rate(SENT)})", "{{exporter}}"),
                   width=5),
        stat_panel("Refused %", "Share of application spans refused with an error (clients retry retryable "
                   "refusals): refused / (accepted + refused).", "percent", query(REFUSED_PERCENT, "refused"),
                   width=5, thresholds=_thresholds((None, "green"), (1, "orange"), (5, "red"))),
        stat_panel("Max Kafka lag", "Largest consumer lag (messages) of any writer partition.", "short",
                   query(f"max({series(OFFSET_LAG)})", "lag"), width=5,
                   thresholds=_thresholds((None, "green"), (10_000, "orange"), (100_000, "red"))),
        stat_panel("Queue utilization", "Fullest exporter sending queue (spans queued / capacity); at 100% "
                   "clients are refused with a retryable error.", "percent",
                   query(f"max({QUEUE_UTILIZATION})", "utilization"), width=4,
                   thresholds=_thresholds((None, "green"), (50, "orange"), (80, "red"))),
    ]


def ingest_row() -> list[Panel]:
    return [
        ts_panel("Received spans/s by receiver & transport",
                 "Spans accepted and durably handed on, per receiver and transport (grpc, http; kafka in the writer).",
                 "ops", query(sum_rate("job, receiver, transport", ACCEPTED), "{{job}} {{receiver}}/{{transport}}")),
        ts_panel("Refused spans/s by reason",
                 "Spans refused with an error to the client. invalid: bad trace/span ids (partial success); "
                 "overload: memory limiter or full sending queue (429); unavailable: the exporter failed (503); "
                 "too_large / permanent / bad_request: not retryable.",
                 "ops", query(sum_rate("job, receiver, transport, reason", REFUSED),
                              "{{reason}} {{job}} {{receiver}}/{{transport}}")),
        ts_panel("Export requests/s by status",
                 "OTLP requests by response status (HTTP code, or gRPC status name).",
                 "reqps", query(sum_rate("job, transport, status", REQUESTS), "{{status}} {{job}} {{transport}}")),
        ts_panel("Receiver request latency p95",
                 "Time from request to response (includes waiting for the durable hand-off).",
                 "s", query(quantile(0.95, "job, receiver, transport", REQUEST_DURATION),
                            "p95 {{job}} {{receiver}}/{{transport}}"), width=12),
        ts_panel("Processor back-pressure: refused spans/s",
                 "Spans a processor refused (the memory limiter above its in-flight limits); the receiver "
                 "reports them as reason overload.",
                 "ops", query(sum_rate("job, processor, pipeline", PROCESSOR_REFUSED),
                              "{{job}} {{processor}} ({{pipeline}})"), width=12),
    ]


def export_row() -> list[Panel]:
    return [
        ts_panel("Exported spans/s by exporter", "Spans the exporter durably wrote (Kafka acked, or ClickHouse "
                 "inserted).", "ops", query(sum_rate("job, exporter", SENT), "{{job}} {{exporter}}"), width=12),
        ts_panel("Failed, dropped and duplicate spans/s",
                 "failed: export failed after retries (the client was told, or the queued batch was dropped); "
                 "dropped: given up after accepting (reason rejected or corrupt_queue_entry); duplicate: "
                 "already stored (client retries), not written again.", "ops",
                 query(sum_rate("job, exporter", SEND_FAILED), "failed {{job}} {{exporter}}"),
                 query(sum_rate("job, exporter, reason", DROPPED), "dropped: {{reason}} {{job}} {{exporter}}"),
                 query(sum_rate("job, exporter", DUPLICATE), "duplicate {{job}} {{exporter}}"), width=12),
        ts_panel("Export attempts retried/s", "Export attempts that failed and were retried.", "ops",
                 query(sum_rate("job, exporter", RETRIES), "{{job}} {{exporter}}")),
        ts_panel("Enqueue failed (queue full) spans/s",
                 "Spans refused because the exporter's sending queue was full (clients get a retryable 429).",
                 "ops", query(sum_rate("job, exporter", ENQUEUE_FAILED), "{{job}} {{exporter}}")),
        ts_panel("Insert latency p50 / p95 / p99 by exporter",
                 "Duration of one export attempt (a ClickHouse insert, or a Kafka send until acked).", "s",
                 query(quantile(0.5, "job, exporter", SEND_DURATION), "p50 {{job}} {{exporter}}"),
                 query(quantile(0.95, "job, exporter", SEND_DURATION), "p95 {{job}} {{exporter}}"),
                 query(quantile(0.99, "job, exporter", SEND_DURATION), "p99 {{job}} {{exporter}}")),
    ]


def queues_row() -> list[Panel]:
    return [
        ts_panel("Exporter sending queue: size vs capacity",
                 "Spans in the exporter's sending queue (memory: being sent; disk: waiting to be sent) against "
                 "its capacity, summed over the job's instances.", "short",
                 query(f"sum by (job, exporter) ({series(QUEUE_SIZE)})", "queued {{job}} {{exporter}}"),
                 query(f"sum by (job, exporter) ({series(QUEUE_CAPACITY)})", "capacity {{job}} {{exporter}}")),
        ts_panel("Sending queue utilization", "Fullest instance's sending queue, in percent of its capacity.",
                 "percent", query(f"max by (job, exporter) ({QUEUE_UTILIZATION})", "{{job}} {{exporter}}"),
                 max_value=100),
        ts_panel("Batch processor: queued spans", "Spans waiting in the batch processor's buffer.", "short",
                 query(f"sum by (job, component) ({series(QUEUED)})", "{{job}} {{component}}")),
        ts_panel("Batch processor: batches sent/s by trigger", "Why batches were sent: idle (group commit: the exporter was free), size, max_size, timeout or shutdown.",
                 "ops", query(sum_rate("job, processor, trigger", BATCH_TRIGGER), "{{trigger}} {{job}} {{processor}}")),
        ts_panel("Memory limiter: in-flight spans", "Spans admitted and not yet handed on.", "short",
                 query(f"sum by (job, processor, pipeline) ({series(IN_FLIGHT_SPANS)})",
                       "{{job}} {{processor}} ({{pipeline}})")),
        ts_panel("Memory limiter: in-flight bytes", "Wire bytes admitted and not yet handed on.", "bytes",
                 query(f"sum by (job, processor, pipeline) ({series(IN_FLIGHT_BYTES)})",
                       "{{job}} {{processor}} ({{pipeline}})")),
    ]


def kafka_row() -> list[Panel]:
    return [
        ts_panel("Consumer offset lag by topic / partition",
                 "Messages between a partition's high watermark and the writer's committed offset.", "short",
                 query(f"max by (job, topic, partition) ({series(OFFSET_LAG)})", "{{topic}}/{{partition}} {{job}}"),
                 width=12),
        ts_panel("Messages consumed/s by outcome", "accepted, dead_lettered, or skipped (the dead-letter topic "
                 "was not reachable or not configured).", "ops",
                 query(sum_rate("job, topic, outcome", KAFKA_MESSAGES), "{{outcome}} {{job}} {{topic}}"), width=12),
        ts_panel("Dead-letter messages/s by reason", "Messages sent to the dead-letter topic: decode_error "
                 "(not an OTLP request) or permanent_error (the pipeline refused it for good).", "ops",
                 query(sum_rate("job, topic, reason", DEAD_LETTERS), "{{reason}} {{job}} {{topic}}"), width=12),
        ts_panel("Kafka batch duration p95", "Time from cutting a partition batch to committing its offsets "
                 "(decode, enrich, insert).", "s",
                 query(quantile(0.95, "job, receiver", KAFKA_BATCH_DURATION), "p95 {{job}} {{receiver}}"), width=12),
    ]


def genai_row() -> list[Panel]:
    return [
        ts_panel("Unpriced spans/s by provider / model", "GenAI spans with token counts whose model has no price "
                 "in the shipped table: cost is left empty, never guessed.", "ops",
                 query(sum_rate("provider, model", UNPRICED), "{{provider}} {{model}}")),
        ts_panel("Token-estimated spans/s by direction", "LLM spans without reported usage whose tokens were "
                 "counted offline from their messages.", "ops",
                 query(sum_rate("direction", ESTIMATED_SPANS), "{{direction}}")),
        ts_panel("Estimated tokens/s by direction", "Tokens counted offline for spans that reported no usage.",
                 "short", query(sum_rate("direction", ESTIMATED_TOKENS), "{{direction}}")),
        ts_panel("Redacted values/s by job / kind", "Values the redaction processor masked before anything was "
                 "stored or queued: secrets and PII its detectors found (email, openai_api_key...), blocked_key, "
                 "blocked_value, and content (message text removed by genai.content: drop).", "ops",
                 query(sum_rate("job, kind", REDACTED), "{{job}} {{kind}}"), width=24),
    ]


def job_variable() -> dash.QueryVariable:
    return (dash.QueryVariable("job").label("Job")
            .datasource(PROMETHEUS)
            .query(JOB_QUERY)
            .multi(True).include_all(True).all_value(".*")
            .current(VariableOption(text="All", value="$__all"))
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC))


def build() -> dash.Dashboard:
    board = (dash.Dashboard(TITLE).uid(PIPELINE_UID).tags(TAGS)
             .description("tracehouse's own metrics: receivers, queues, exporters, Kafka and GenAI enrichment.")
             .time("now-1h", "now").refresh("30s").tooltip(DashboardCursorSync.CROSSHAIR)
             .variables([datasource_variable("prometheus", "Prometheus", "prometheus", PROMETHEUS_UID),
                         job_variable()])
             .link(dashboard_link("GenAI overview", OVERVIEW_UID, include_vars=False))
             .link(dashboard_link("Prompts", PROMPTS_UID, include_vars=False)))
    rows: list[tuple[str, list[Panel]]] = [
        ("Overview", overview_row()),
        ("Ingest", ingest_row()),
        ("Export", export_row()),
        ("Queues and memory", queues_row()),
        ("Kafka (writer)", kafka_row()),
        ("GenAI enrichment", genai_row()),
    ]
    panel_id = 0
    for title, panels in rows:
        panel_id += 1
        board = board.with_row(dash.Row(title).id(panel_id))
        for panel in panels:
            panel_id += 1
            board = board.with_panel(panel.id(panel_id))
    return board
