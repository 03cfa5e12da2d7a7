"""The query API's own routes, one router per resource: `traces` (search, one trace),
`scores` (write, read and delete judgements),
`genai_metrics` (usage over time), `prompts` (the registry), `sessions`, `experiments`
(MLflow experiments and runs) and `health` (liveness,
readiness, Prometheus metrics). Each module has a factory taking what its routes read
(`traces_router(store, settings)`, ...); `tracehouse.query.app.create_app` includes them.
The Jaeger-compatible routes are in `tracehouse.query.jaeger`."""
