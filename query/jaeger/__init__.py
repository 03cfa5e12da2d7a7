"""Jaeger's HTTP query API over the spans table: what jaeger-query serves and what
Grafana's built-in Jaeger datasource and the Jaeger UI call.

Routes (see query/README.md, "Jaeger-compatible API"):

- `GET /api/services`, `GET /api/services/{service}/operations`, `GET /api/operations`
- `GET /api/traces` (search; or `?traceID=...` repeated) and `GET /api/traces/{traceID}`

Every answer is Jaeger's envelope `{"data", "total", "limit", "offset", "errors"}`, errors
included (`data: null`, `errors: [{"code", "msg"}]`): a bad parameter is a 400 whose message
names it, an unknown trace a 404, ClickHouse failing a 503. The rest of the query API keeps
its own `{"error": {...}}` shape; `JaegerRoute` catches everything a Jaeger route raises,
and the app's 404/405 handler asks `is_jaeger_path` first.

Spans are shown as Jaeger's OTLP translator shows them (`span.kind`, `otel.status_code`,
`error`, `otel.scope.*`, `w3c.tracestate`, events as logs, links as FOLLOWS_FROM references),
plus the typed GenAI columns as typed tags (`gen_ai.*` when the attribute is missing,
`tracehouse.genai.*` always when known). Rows are read into `SpanDetail` by the same
`span_from_row` as `/api/v1/traces/{trace_id}`.

Modules: `errors` (the envelope, `JaegerError`, the route class that answers every error in
the envelope), `params` (parsing Jaeger's parameters: microseconds, Go durations, lookback,
limit, tags), `rows` (span rows -> Jaeger's trace JSON), `models` (the same JSON as pydantic
models, for the OpenAPI document) and `router` (`jaeger_router`: the routes).
"""
