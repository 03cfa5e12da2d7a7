"""The `kafka` exporter: OTLP traces from the sidecar to a Kafka topic."""
