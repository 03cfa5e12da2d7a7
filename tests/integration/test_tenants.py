"""API keys and tenants on a running all-in-one (`deploy/config/all-in-one-secure.yaml`).

Two tenants send through the real OpenTelemetry SDK exporters (OTLP/HTTP and OTLP/gRPC)
with their keys; then every route of the query API, enumerated from `/openapi.json`, is
called with tenant A's key and asked for tenant B's data by every identifier B has (trace
id, service, prompt, session, user): nothing of B comes back. Keys without the right kind,
missing keys and unknown keys are refused on every listener, a tenant over its limit is
refused retryably while the other is not, and a spoofed tenant attribute is ignored.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

from allinone import CONFIGS, AllInOne
from tracehouse.extensions.bearertokenauth.keys import digest, new_key

pytestmark = pytest.mark.integration

SECURE = CONFIGS / "all-in-one-secure.yaml"


@dataclass(frozen=True)
class Tenant:
    name: str
    ingest: str
    read: str
    full: str

    @property
    def service(self) -> str:
        return f"{self.name}-app"

    @property
    def prompt(self) -> str:
        return f"{self.name}-prompt"

    @property
    def session(self) -> str:
        return f"{self.name}-session"

    @property
    def user(self) -> str:
        return f"{self.name}-user"


def _tenant(name: str) -> Tenant:
    return Tenant(name, new_key(), new_key(), new_key())


A, B, LIMITED = _tenant("alpha"), _tenant("bravo"), _tenant("limited")


def key_file(path: Path, tenants: list[Tenant], limits: dict[str, Any] | None = None) -> Path:
    keys = [{"name": f"{t.name}-{kind}", "tenant": t.name, "kind": kind, "sha256": digest(getattr(t, kind))}
            for t in tenants for kind in ("ingest", "read", "full")]
    path.write_text(json.dumps({"keys": keys, "tenants": limits or {}}))  # JSON is YAML
    return path


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def send(aio: AllInOne, tenant: Tenant, protocol: str, key: str | None = None) -> tuple[SpanExportResult, str]:
    """One GenAI trace of `tenant` through the SDK's exporter; (result, trace id)."""
    headers = bearer(key or tenant.ingest)
    if protocol == "http":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        exporter: Any = HttpExporter(endpoint=f"{aio.otlp_http}/v1/traces", headers=headers, timeout=10)
    else:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        exporter = GrpcExporter(endpoint=aio.otlp_grpc, insecure=True, headers=headers, timeout=10)
    results: list[SpanExportResult] = []

    class Recording(SimpleSpanProcessor):
        def on_end(self, span: Any) -> None:
            results.append(exporter.export([span]))

    # A client claiming another tenant in its resource must not become that tenant.
    provider = TracerProvider(resource=Resource.create({"service.name": tenant.service,
                                                        "tracehouse.tenant": B.name}))
    provider.add_span_processor(Recording(exporter))
    tracer = provider.get_tracer("tenants-test")
    with tracer.start_as_current_span(f"{tenant.name} chat") as span:
        span.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                             "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 10,
                             "gen_ai.usage.output_tokens": 5, "session.id": tenant.session,
                             "user.id": tenant.user, "traceloop.prompt.key": tenant.prompt,
                             "traceloop.prompt.template": f"You help {tenant.name}: {{q}}"})
        trace_id = format(span.get_span_context().trace_id, "032x")
    provider.shutdown()
    return results[0], trace_id


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AllInOne, dict[str, list[str]]]]:
    work = tmp_path_factory.mktemp("tenants")
    keys = key_file(work / "keys.yaml", [A, B, LIMITED],
                    {LIMITED.name: {"spans_per_second": 0.01}})  # one span, then 100 s of debt
    aio = AllInOne(work, config=SECURE, env={"TRACEHOUSE_API_KEYS_FILE": str(keys)}).start()
    try:
        traces: dict[str, list[str]] = {A.name: [], B.name: []}
        for tenant in (A, B):
            for protocol in ("http", "grpc"):
                result, trace_id = send(aio, tenant, protocol)
                assert result is SpanExportResult.SUCCESS, (tenant.name, protocol)
                traces[tenant.name].append(trace_id)
        yield aio, traces
    finally:
        aio.stop()


def _get(aio: AllInOne, path: str, key: str | None, **params: Any) -> httpx.Response:
    return httpx.get(f"{aio.query}{path}", params=params, headers=bearer(key) if key else {}, timeout=30)


def _wait_listed(aio: AllInOne, tenant: Tenant, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while True:
        rows = _get(aio, "/api/v1/traces", tenant.read, service=tenant.service).json()["traces"]
        if len(rows) >= count or time.monotonic() > deadline:
            return list(rows)
        time.sleep(0.2)


def test_each_tenant_reads_exactly_its_own_traces(secure: tuple[AllInOne, dict[str, list[str]]]) -> None:
    aio, traces = secure
    for tenant, other in ((A, B), (B, A)):
        listed = {r["trace_id"] for r in _wait_listed(aio, tenant, 2)}
        everything = {r["trace_id"] for r in _get(aio, "/api/v1/traces", tenant.read, limit=100).json()["traces"]}
        assert listed == everything and set(traces[tenant.name]) <= listed
        assert not listed & set(traces[other.name])
        for trace_id in traces[tenant.name]:
            assert _get(aio, f"/api/v1/traces/{trace_id}", tenant.full).status_code == 200
        for trace_id in traces[other.name]:
            response = _get(aio, f"/api/v1/traces/{trace_id}", tenant.read)
            assert response.status_code == 404, response.text  # not 403: another tenant's ids are not confirmed


def _fill(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{([a-z_]+)(?::path)?\}", lambda m: values[m[1]], path)


def test_no_route_shows_tenant_b_to_tenant_a(secure: tuple[AllInOne, dict[str, list[str]]]) -> None:
    aio, traces = secure
    _wait_listed(aio, A, 2)
    _wait_listed(aio, B, 2)
    spec = _get(aio, "/openapi.json", None).json()
    b_trace = traces[B.name][0]
    # B also logs through the MLflow endpoint: an experiment and a run.
    mlflow_b = {"authorization": f"Bearer {B.ingest}"}
    b_experiment = httpx.post(f"{aio.mlflow}/api/2.0/mlflow/experiments/create", headers=mlflow_b,
                              json={"name": f"{B.name}-experiment"}).json()["experiment_id"]
    b_run = httpx.post(f"{aio.mlflow}/api/2.0/mlflow/runs/create", headers=mlflow_b,
                       json={"experiment_id": b_experiment, "run_name": f"{B.name}-run"}).json()["run"]["info"]["run_id"]
    # ... and scores its trace, through the query API with its ingest key.
    b_score = {"trace_id": b_trace, "name": f"{B.name}-score", "value": f"{B.name}-verdict",
               "comment": f"{B.name}-comment", "score_id": f"{B.name}-score-1"}
    posted = httpx.post(f"{aio.query}/api/v1/scores", json=b_score, headers=bearer(B.ingest), timeout=30)
    assert posted.status_code == 201, posted.text
    b_markers = [B.name, B.service, B.prompt, B.session, B.user, *traces[B.name], b_run]
    path_values = {"trace_id": b_trace, "name": B.prompt, "service": B.service, "experiment_id": b_experiment,
                   "run_id": b_run}
    # Everything B could be asked for by: its ids and names, in every parameter that takes one.
    query_values = {"service": B.service, "session": B.session, "user": B.user, "prompt": B.prompt,
                    "traceID": b_trace, "q": B.name[:3], "start": "2000-01-01T00:00:00Z", "trace_id": b_trace,
                    "scores": "true", "score_name": b_score["name"],
                    # Jaeger API v3's search
                    "query.serviceName": B.service, "query.startTimeMin": "2000-01-01T00:00:00Z",
                    "query.startTimeMax": "2100-01-01T00:00:00Z"}
    checked = []
    for path, item in spec["paths"].items():
        if "get" not in item or path in ("/healthz", "/readyz", "/metrics", "/openapi.json") \
                or not path.startswith("/api/"):
            continue
        names = {p["name"] for p in item["get"].get("parameters", []) if p["in"] == "query"}
        params = {k: v for k, v in query_values.items() if k in names}
        if path.startswith("/api/traces") and "start" in params:  # Jaeger: microseconds
            params["start"] = "946684800000000"
        url = _fill(path, path_values)
        asked = [*params.values(), *(v for v in path_values.values() if v in url)]
        for key in (A.read, A.full):
            response = _get(aio, url, key, **params)
            assert response.status_code in (200, 404), (url, response.status_code, response.text)
            # What the request itself said may be echoed ("trace … not found"); B's data may not.
            text = response.text
            for value in sorted(asked, key=len, reverse=True):
                text = text.replace(value, "")
            leaked = [m for m in b_markers if m in text]
            assert not leaked, f"{url} with tenant A's key shows {leaked}: {response.text[:300]}"
        # the same route without a key is refused, naming the header to send
        refused = _get(aio, url, None, **params)
        assert refused.status_code == 401, (url, refused.text)
        assert "authorization" in refused.text.lower() and refused.headers["www-authenticate"].startswith("Bearer")
        checked.append(path)
    assert len(checked) >= 10, checked
    # and tenant B does see its own data through the same routes (the test above is not vacuous)
    assert B.service in _get(aio, "/api/services", B.read).text
    assert B.service in _get(aio, "/api/v3/services", B.read).text
    assert b_trace in _get(aio, f"/api/v3/traces/{b_trace}", B.read).text
    assert B.prompt in _get(aio, "/api/v1/prompts", B.read).text
    assert B.session in _get(aio, "/api/v1/sessions", B.read, start="2000-01-01T00:00:00Z").text
    assert f"{B.name}-experiment" in _get(aio, "/api/v1/experiments", B.read).text
    assert f"{B.name}-run" in _get(aio, f"/api/v1/runs/{b_run}", B.read).text
    assert f"{B.name}-comment" in _get(aio, "/api/v1/scores", B.read, trace_id=b_trace).text
    assert b_score["name"] in _get(aio, "/api/v1/metrics/genai", B.read, scores="true",
                                   start="2000-01-01T00:00:00Z", step="1d").text


def test_keys_are_refused_where_their_kind_does_not_allow_or_they_do_not_exist(
        secure: tuple[AllInOne, dict[str, list[str]]]) -> None:
    aio, _ = secure
    for protocol in ("http", "grpc"):
        for key in (A.read, new_key()):  # a read key cannot ingest; an unknown key is no key
            result, _ = send(aio, A, protocol, key=key)
            assert result is SpanExportResult.FAILURE
    # the exact answers, raw
    body = b""
    no_key = httpx.post(f"{aio.otlp_http}/v1/traces", content=body,
                        headers={"content-type": "application/x-protobuf"}, timeout=10)
    assert no_key.status_code == 401 and "Bearer" in no_key.text
    read_key = httpx.post(f"{aio.otlp_http}/v1/traces", content=body,
                          headers={"content-type": "application/x-protobuf", **bearer(A.read)}, timeout=10)
    assert read_key.status_code == 403 and "cannot ingest" in read_key.text
    with grpc.insecure_channel(aio.otlp_grpc) as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        with pytest.raises(grpc.RpcError) as denied:
            export(b"", timeout=10)
        assert denied.value.code() is grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as denied:
            export(b"", timeout=10, metadata=(("authorization", f"Bearer {A.read}"),))
        assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
        export(b"", timeout=10, metadata=(("authorization", f"Bearer {A.ingest}"),))  # accepted (empty)
    # an ingest key cannot read; health probes need no key
    assert _get(aio, "/api/v1/traces", A.ingest).status_code == 403
    assert _get(aio, "/readyz", None).status_code == 200
    assert _get(aio, "/metrics", None).status_code == 200  # metrics_auth is off by default


def test_a_tenant_over_its_limit_is_refused_retryably_and_others_are_not(
        secure: tuple[AllInOne, dict[str, list[str]]]) -> None:
    aio, _ = secure
    first, _ = send(aio, LIMITED, "http")
    assert first is SpanExportResult.SUCCESS  # a bucket starts with one second of its rate
    over = httpx.post(f"{aio.otlp_http}/v1/traces", content=_one_span_request(),
                      headers={"content-type": "application/x-protobuf", **bearer(LIMITED.ingest)}, timeout=10)
    assert over.status_code == 429 and int(over.headers["retry-after"]) >= 1
    assert "limited" in over.text and "spans/s" in over.text
    with grpc.insecure_channel(aio.otlp_grpc) as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        with pytest.raises(grpc.RpcError) as refused:
            export(_one_span_request(), timeout=10, metadata=(("authorization", f"Bearer {LIMITED.ingest}"),))
        assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    for protocol in ("http", "grpc"):  # the unlimited tenant is unaffected
        result, _ = send(aio, A, protocol)
        assert result is SpanExportResult.SUCCESS


def test_a_tenant_claimed_in_the_data_is_ignored(secure: tuple[AllInOne, dict[str, list[str]]]) -> None:
    aio, traces = secure
    # every span was sent with resource attribute tracehouse.tenant=bravo; A's stayed A's
    detail = _get(aio, f"/api/v1/traces/{traces[A.name][0]}", A.read).json()
    assert all("tracehouse.tenant" not in s["resource_attributes"] for s in detail["spans"])
    assert _get(aio, f"/api/v1/traces/{traces[A.name][0]}", B.read).status_code == 404


def _one_span_request() -> bytes:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = b"\x01" * 16, b"\x02" * 8, "limited"
    span.start_time_unix_nano = span.end_time_unix_nano = time.time_ns()
    return request.SerializeToString()


def test_the_explorer_asks_for_a_key_and_shows_only_that_tenant(
        secure: tuple[AllInOne, dict[str, list[str]]]) -> None:
    import shutil

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("no chromium on PATH (make test installs Debian's package)")
    from playwright.sync_api import sync_playwright

    aio, traces = secure
    _wait_listed(aio, A, 2)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            page = browser.new_page()
            page.goto(f"{aio.query}/?since=24h")
            page.wait_for_selector('[role="alert"]')
            assert "401" in page.inner_text('[role="alert"]')
            page.fill('input[name="api-key"]', A.read)
            page.click('form.api-key button[type="submit"]')
            page.wait_for_selector("table.traces tbody tr")
            listed = page.eval_on_selector_all("table.traces tbody tr", "rows => rows.map(r => r.dataset.traceId)")
            assert set(traces[A.name]) <= set(listed) and not set(traces[B.name]) & set(listed)
            assert A.read not in page.url  # the key never goes into a shareable link
            page.goto(f"{aio.query}/?trace={traces[B.name][0]}")  # B's trace, with A's key
            page.wait_for_selector('[role="alert"]')
            assert "404" in page.inner_text('[role="alert"]')
        finally:
            browser.close()


def test_scores_are_written_by_ingest_and_full_keys_for_their_own_tenant_only(
        secure: tuple[AllInOne, dict[str, list[str]]]) -> None:
    aio, traces = secure
    b_trace = traces[B.name][0]

    def post(key: str, **score: Any) -> httpx.Response:
        return httpx.post(f"{aio.query}/api/v1/scores", headers=bearer(key), timeout=30,
                          json={"trace_id": b_trace, "name": "keys", "value": 1, **score})

    assert post(B.read).status_code == 403  # read keys read
    assert post(B.full, score_id="b-full").status_code == 201
    # A's key writes A's score, under B's trace id: B never sees it, A cannot touch B's.
    assert post(A.ingest, score_id="a-on-b", comment="from A").status_code == 201
    assert "from A" not in _get(aio, "/api/v1/scores", B.read, trace_id=b_trace).text
    assert "b-full" not in _get(aio, "/api/v1/scores", A.read, trace_id=b_trace).text
    assert httpx.delete(f"{aio.query}/api/v1/scores/b-full", headers=bearer(A.full), timeout=30).status_code == 404
    assert httpx.delete(f"{aio.query}/api/v1/scores/b-full", headers=bearer(B.read), timeout=30).status_code == 403
    assert httpx.delete(f"{aio.query}/api/v1/scores/b-full", headers=bearer(B.ingest), timeout=30).status_code == 200


def test_only_a_full_key_deletes_and_only_its_own_tenant_s_trace(
        secure: tuple[AllInOne, dict[str, list[str]]]) -> None:
    aio, _ = secure
    result, b_trace = send(aio, B, "http")  # its own trace: the other tests' data stays as it is
    assert result is SpanExportResult.SUCCESS
    for _ in range(100):
        if _get(aio, f"/api/v1/traces/{b_trace}", B.read).status_code == 200:
            break
        time.sleep(0.1)

    def delete(trace_id: str, key: str) -> httpx.Response:
        return httpx.delete(f"{aio.query}/api/v1/traces/{trace_id}", headers=bearer(key), timeout=30)

    assert delete(b_trace, B.read).status_code == 403  # read keys read
    assert delete(b_trace, B.ingest).status_code == 403
    assert delete(b_trace, A.full).status_code == 404  # A cannot reach B's trace, even to delete it
    response = delete(b_trace, B.full)
    assert response.status_code == 200 and response.json()["deleted_spans"] == 1
    assert _get(aio, f"/api/v1/traces/{b_trace}", B.read).status_code == 404
