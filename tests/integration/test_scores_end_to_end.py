"""Scores end to end, in a real all-in-one: the real MLflow client's feedback flow (feedback,
an expectation, and a check logged while the trace was active, which the client sends inside
the trace's info), an OpenTelemetry SDK span carrying a `gen_ai.evaluation.result` event, and
a `POST /api/v1/scores`: each shows on its trace, is found by the trace search's score filter
and counted in the score rollup by model.

And the issue's "done when", as a user meets it: an app run with zero code under
`opentelemetry-instrument` (the OpenTelemetry distro's default settings: traces, logs and metrics
exporters all on) and the official OpenAI instrumentation with content capture, pointed at
the all-in-one over gRPC (the Python distro's default protocol) and over HTTP: all three
signals are accepted, the prompt and completion arrive as log events and show on the chat
span, and the app's evaluation event and a `POST /api/v1/scores` show on the trace, in the
prompt version's scores and in a search sorted by cost and filtered by score.

(The side-by-side comparison with MLflow's own server, tests/integration/test_mlflow_endpoint.py,
runs the same feedback flow among the others.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from allinone import AllInOne
from fake_llm import FakeLLM, serve_fake_llm
from test_mlflow_endpoint import run_flow

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def aio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AllInOne]:
    server = AllInOne(tmp_path_factory.mktemp("scores")).start()
    try:
        yield server
    finally:
        assert server.stop() == 0, server.log_tail()


def get(aio: AllInOne, path: str, **params: Any) -> Any:
    response = httpx.get(f"{aio.query}{path}", params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def eventually(check: Any, timeout: float = 30.0) -> Any:
    """The spans pass the batch processor before they are stored."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_mlflow_feedback_logged_in_and_after_the_trace_is_scores(aio: AllInOne, tmp_path: Path) -> None:
    with serve_fake_llm(FakeLLM()) as llm:
        trace_request_id = run_flow("feedback_flow.py", aio.mlflow, llm, tmp_path).strip().splitlines()[-1]
    trace_id = trace_request_id.removeprefix("tr-")

    def scores() -> dict[str, Any]:
        found = {s["name"]: s for s in get(aio, "/api/v1/scores", trace_id=trace_id)["scores"]}
        assert {"non_empty", "helpfulness", "relevance", "expected_answer"} <= found.keys(), found
        return found

    found = eventually(scores)
    assert (found["non_empty"]["value"], found["non_empty"]["source"], found["non_empty"]["author"]) == (
        True, "code", "length-check"), "sent inside the trace's info"
    assert (found["helpfulness"]["value"], found["relevance"]["value"]) == (True, 0.75)
    assert found["expected_answer"]["kind"] == "expectation"
    listed = eventually(lambda: _searched(aio, "non_empty=true", trace_id))
    assert listed["scores"] and {s["name"] for s in listed["scores"]} >= {"non_empty", "relevance"}
    now = time.time()
    rollup = get(aio, "/api/v1/metrics/genai", scores="true", group_by="model", score_name="relevance",
                 start=f"{now - 3600:.0f}", end=f"{now + 60:.0f}")["scores"]
    assert {s["group"]["model"] for s in rollup["series"]} == {"gpt-4o-mini"}, "the traced call's model"


def _searched(aio: AllInOne, score: str, trace_id: str) -> dict[str, Any]:
    rows = get(aio, "/api/v1/traces", score=score, limit=100)["traces"]
    [row] = [r for r in rows if r["trace_id"] == trace_id]
    return row


def test_an_evaluation_event_and_an_api_score_show_on_the_trace_and_filter_the_search(aio: AllInOne) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "judged-app"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{aio.otlp_http}/v1/traces")))
    with provider.get_tracer("scores-e2e").start_as_current_span("chat gpt-4o") as span:
        span.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                             "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 12,
                             "gen_ai.usage.output_tokens": 3})
        # An evaluator's result, named as the GenAI semantic conventions say (no SDK emits it).
        span.add_event("gen_ai.evaluation.result", {"gen_ai.evaluation.name": "groundedness",
                                                    "gen_ai.evaluation.score.value": 0.25,
                                                    "gen_ai.evaluation.score.label": "ungrounded"})
        trace_id = format(span.get_span_context().trace_id, "032x")
    provider.shutdown()
    response = httpx.post(f"{aio.query}/api/v1/scores", timeout=30, json={
        "trace_id": trace_id, "name": "helpfulness", "value": 1, "source": "human", "author": "ana"})
    assert response.status_code == 201, response.text

    def detail() -> dict[str, Any]:
        body = httpx.get(f"{aio.query}/api/v1/traces/{trace_id}", timeout=30)
        assert body.status_code == 200, body.text
        names = {s["name"]: s for s in body.json()["scores"]}
        assert {"groundedness", "helpfulness"} <= names.keys(), names
        return names

    names = eventually(detail)
    assert (names["groundedness"]["value"], names["groundedness"]["label"]) == (0.25, "ungrounded")
    assert names["helpfulness"]["author"] == "ana"
    row = eventually(lambda: _searched(aio, "groundedness<0.5", trace_id))
    assert {s["name"] for s in row["scores"]} == {"groundedness", "helpfulness"}
    assert trace_id not in [r["trace_id"] for r in get(aio, "/api/v1/traces", score="groundedness>=0.5")["traces"]]


APP = Path(__file__).parent / "genai_events_app.py"


def run_zero_code_app(aio: AllInOne, llm: FakeLLM, protocol: str) -> str:
    """The app under `opentelemetry-instrument`, configured only by the environment a user sets."""
    endpoint = f"http://{aio.otlp_grpc}" if protocol == "grpc" else aio.otlp_http
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
               OTEL_SERVICE_NAME=f"capital-app-{protocol.split('/')[0]}",
               OTEL_SEMCONV_STABILITY_OPT_IN="gen_ai_latest_experimental",
               OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="EVENT_ONLY",
               OPENAI_BASE_URL=llm.base_url, OPENAI_API_KEY="sk-test")
    done = subprocess.run([str(Path(sys.executable).parent / "opentelemetry-instrument"), sys.executable, str(APP)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    # An exporter that got anything but success logs it (404 for an unserved signal, 503...).
    assert "export" not in done.stderr.lower(), done.stderr[-3000:]
    return done.stdout.strip()


def test_an_app_with_default_sdk_settings_gets_its_signals_content_and_scores_through(aio: AllInOne) -> None:
    accepted = {name: aio.metric(f"tracehouse_receiver_accepted_{name}_total")
                for name in ("spans", "log_records", "metric_points")}
    with serve_fake_llm(FakeLLM(answer="Paris.")) as llm:
        trace_ids = [run_zero_code_app(aio, llm, protocol) for protocol in ("grpc", "http/protobuf")]
    for name, before in accepted.items():
        assert aio.metric(f"tracehouse_receiver_accepted_{name}_total") > before, f"no {name} accepted"
    for trace_id in trace_ids:
        response = httpx.post(f"{aio.query}/api/v1/scores", timeout=30, json={
            "trace_id": trace_id, "name": "correct", "value": True, "source": "human", "author": "ana"})
        assert response.status_code == 201, response.text

    def detail(trace_id: str) -> dict[str, Any]:
        trace = get(aio, f"/api/v1/traces/{trace_id}")
        assert {s["name"] for s in trace["scores"]} == {"relevance", "correct"}, trace["scores"]
        return dict(trace)

    for trace_id in trace_ids:
        trace = eventually(lambda: detail(trace_id))  # noqa: B023 (called at once)
        [chat] = [s for s in trace["spans"] if s["genai"]["operation"] == "chat"]
        assert [m["content"] for m in chat["input_messages"]] == ["You answer in one sentence.",
                                                                  "What is the capital of France?"]
        assert [m["content"] for m in chat["output_messages"]] == ["Paris."]
        assert chat["genai"]["input_tokens"] == 42 and chat["genai"]["total_cost_usd"] > 0

    now = time.time()
    window = {"start": f"{now - 3600:.0f}", "end": f"{now + 60:.0f}"}
    rollup = get(aio, "/api/v1/metrics/genai", scores="true", group_by="prompt_version", score_name="relevance",
                 prompt="capital-question", **window)["scores"]
    [series] = rollup["series"]
    assert series["group"]["prompt_version"] == "2"
    assert (series["totals"]["scores"], series["totals"]["mean"]) == (2, 0.9), "both runs' evaluations"
    assert series["totals"]["categories"] == {"relevant": 2}
    found = get(aio, "/api/v1/traces", sort="cost", score="relevance>=0.5", limit=100, **window)["traces"]
    assert set(trace_ids) <= {r["trace_id"] for r in found}
    costs = [r["total_cost_usd"] or 0 for r in found]
    assert costs == sorted(costs, reverse=True), "costliest first"
    assert not set(trace_ids) & {r["trace_id"] for r in get(aio, "/api/v1/traces", score="relevance<0.5",
                                                              limit=100, **window)["traces"]}
