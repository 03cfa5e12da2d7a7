"""The `kafka` exporter: OTLP traces, logs and metrics from the sidecar to Kafka topics."""
