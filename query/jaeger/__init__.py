"""Jaeger's HTTP query APIs over the spans table: what jaeger-query serves and what the Jaeger
UI and Grafana's built-in Jaeger datasource call (docs/jaeger.md: what is supported, how it
differs from Jaeger).

Routes (see query/README.md, "Jaeger-compatible API"):

- v2-compatible JSON API (Grafana's Jaeger datasource): `GET /api/services`,
  `GET /api/services/{service}/operations`, `GET /api/operations`, `GET /api/traces` (search;
  or `?traceID=...` repeated), `GET /api/traces/{traceID}` and `GET /api/dependencies`
  (calls between services, from parent/child spans of different services).
- API v3 (today's Jaeger UI, Jaeger's query service gateway): `GET /api/v3/services`,
  `GET /api/v3/operations`, `GET /api/v3/traces` (FindTraces) and
  `GET /api/v3/traces/{trace_id}` (GetTrace), traces as OTLP JSON in `{"result": ...}`.

Every v2 answer is Jaeger's envelope `{"data", "total", "limit", "offset", "errors"}`, errors
included (`data: null`, `errors: [{"code", "msg"}]`): a bad parameter is a 400 whose message
names it, an unknown trace a 404, ClickHouse failing a 503. v3 errors are the gateway's
`{"error": {"httpCode", "message"}}`. The rest of the query API keeps its own `{"error":
{"code", "message"}}` shape; `JaegerRoute` and `JaegerV3Route` catch everything a Jaeger route
raises, and the app's 404/405 handler and the read budget ask `is_jaeger_path` first.
Defaults are Jaeger's query service's: 100 traces, a 2-day lookback (24 h for dependencies).

v2 spans are shown as Jaeger's OTLP translator shows them (`span.kind`, `otel.status_code`,
`error`, `otel.scope.*`, `w3c.tracestate`, events as logs, links as FOLLOWS_FROM references),
attribute tags typed as the OTLP export types the stored text (query/otlp.py), plus the typed
GenAI columns as typed tags (`gen_ai.*` when the attribute is missing, `tracehouse.genai.*`
always when known). Rows are read into `SpanDetail` by the same `span_from_row` as
`/api/v1/traces/{trace_id}`; v3 traces are query/otlp.py's `traces_data`.

Modules: `errors` (the envelope, the v3 error, `JaegerError`, the route classes that answer
every error in their API's shape), `params` (parsing Jaeger's parameters: microseconds, Go
durations, lookback, limit, tags), `rows` (span rows -> Jaeger's trace JSON), `models` (the
JSON as pydantic models, for the OpenAPI document), `router` (`jaeger_router`: the v2 routes),
`v3_params` and `v3` (`jaeger_v3_router`: the API v3 routes).
"""
