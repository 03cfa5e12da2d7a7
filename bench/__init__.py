"""All-in-one ingestion benchmark: GenAI OTLP traffic generator, load generator, orchestration (see README.md)."""
