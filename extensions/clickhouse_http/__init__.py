"""The `clickhouse_http` extension: ClickHouse's HTTP interface over the embedded engine."""
