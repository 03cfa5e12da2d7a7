#!/bin/sh
# Creates the topics the tracehouse sidecar and writer use, once Kafka answers. Run by the
# compose stack's one-shot `kafka-init` service (the apache/kafka image); idempotent, so it is
# safe on every `up`. The broker's auto-creation is off: topics get their partition count here.
#
#   otlp_spans      one message per trace (keyed by trace id); partitions bound how many
#                   writers share the load
#   otlp_logs       log records, one message per resource (keyed by its attributes)
#   otlp_metrics    metric points, likewise
#   otlp_spans_dlq  messages of any of them the writer could not decode, kept for inspection
set -eu

BOOTSTRAP="${KAFKA_BOOTSTRAP:-kafka:9092}"
KAFKA_BIN="${KAFKA_BIN:-/opt/kafka/bin}"
SPANS_TOPIC="${TRACEHOUSE_KAFKA_TOPIC:-otlp_spans}"
LOGS_TOPIC="${TRACEHOUSE_KAFKA_LOGS_TOPIC:-otlp_logs}"
METRICS_TOPIC="${TRACEHOUSE_KAFKA_METRICS_TOPIC:-otlp_metrics}"
DLQ_TOPIC="${TRACEHOUSE_KAFKA_DLQ_TOPIC:-otlp_spans_dlq}"
SPANS_PARTITIONS="${SPANS_PARTITIONS:-6}"
SIGNALS_PARTITIONS="${SIGNALS_PARTITIONS:-3}"

create() {  # topic partitions retention_ms
    "$KAFKA_BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists \
        --topic "$1" --partitions "$2" --replication-factor 1 --config "retention.ms=$3"
}

create "$SPANS_TOPIC" "$SPANS_PARTITIONS" 86400000   # 1 day: the writer drains it within seconds
create "$LOGS_TOPIC" "$SIGNALS_PARTITIONS" 86400000
create "$METRICS_TOPIC" "$SIGNALS_PARTITIONS" 86400000
create "$DLQ_TOPIC" 1 604800000                      # 7 days
"$KAFKA_BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --describe --topic "$SPANS_TOPIC"
