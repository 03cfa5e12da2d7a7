"""The `health_check` extension: /healthz, /readyz and /metrics for processes without the query API."""
