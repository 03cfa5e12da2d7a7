"""MLflow clients against tracehouse's MLflow endpoint, unchanged: each seed flow runs as
written (only `MLFLOW_TRACKING_URI` and the model server differ) with the real `mlflow`,
`openai`, `poml`, `dspy`, `instructor` and `litellm` against the all-in-one. What it then holds,
read back through the MLflow client (tests/integration/mlflow_flows/snapshot.py), must be what
a real `mlflow server` (sqlite) holds after the same flows: recorded with the installed mlflow
(`make mlflow-snapshot`), or run side by side when that recording is of another version: experiments,
runs with params, tags and metric history, parent/child runs, trace names, token usage and
linked prompts, prompt versions and templates, assessments. tracehouse's own API must show
the same data: prompts, experiments, runs, scores, and exact GenAI numbers.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf.json_format import ParseDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from allinone import CONFIGS, AllInOne
from fake_llm import CACHED_TOKENS, COMPLETION_TOKENS, PROMPT_TOKENS, FakeLLM, serve_fake_llm
from poml_app import EXPLAIN_CODE_POML, SAMPLE_PY
from ports import free_port
from tracehouse.extensions.bearertokenauth.keys import digest, new_key

pytestmark = pytest.mark.integration

FLOWS_DIR = Path(__file__).parent / "mlflow_flows"
FLOWS = ["flow1_openai.py", "flow2_prompt.py", "flow3_poml.py", "runs_dspy.py", "instructor_flow.py",
         "instructor_anthropic_flow.py", "litellm_flow.py", "feedback_flow.py", "dspy_eval_flow.py"]
WIRE = Path(__file__).resolve().parents[1] / "fixtures" / "mlflow-wire"
# Instructor's forced tool calls (its EmailSubject and llm_validator's Validator) and the tool call
# of the LiteLLM flow all get these arguments; each model ignores the fields it lacks.
TOOL_ARGUMENTS = {"recipient": "users", "subject": "Follow MLflow on GitHub", "is_valid": True, "reason": None,
                  "location": "Paris"}


@dataclass
class World:
    tracehouse: AllInOne
    ours: dict[str, Any]  # snapshot of what tracehouse holds
    theirs: dict[str, Any] | None  # ... and what a real MLflow server holds
    outputs: dict[str, str]
    workdir: Path


def run_flow(flow: str, tracking_uri: str, llm: FakeLLM, workdir: Path, extra: dict[str, str] | None = None) -> str:
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "OPENAI_BASE_URL": llm.base_url,
           "OPENAI_API_KEY": "sk-test", "ANTHROPIC_BASE_URL": llm.anthropic_base_url,
           "ANTHROPIC_API_KEY": "sk-ant-test", "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no price download
           **(extra or {})}
    for key in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        env.pop(key, None)
    done = subprocess.run([sys.executable, str(FLOWS_DIR / flow)], env=env, cwd=workdir, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, f"{flow} against {tracking_uri} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    # "No warnings": what the client logs at WARNING or above when talking to this server.
    warnings = [line for line in done.stderr.splitlines() if " WARNING " in line or " ERROR " in line]
    assert not warnings, f"{flow} logged warnings against {tracking_uri}:\n" + "\n".join(warnings)
    return done.stdout


def snapshot(tracking_uri: str, workdir: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, str(FLOWS_DIR / "snapshot.py")], cwd=workdir, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri})
    assert done.returncode == 0, done.stderr[-4000:]
    return dict(json.loads(done.stdout))


def start_mlflow_server(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}", "--default-artifact-root",
         str(workdir / "artifacts")], cwd=workdir, stdout=(workdir / "mlflow.log").open("wb"),
        stderr=subprocess.STDOUT)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{uri}/health", timeout=2).status_code == 200:
                return proc, uri
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, (workdir / "mlflow.log").read_text()[-3000:]
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError("mlflow server did not start")


# What MLflow's own server holds after the flows, recorded with the mlflow installed here
# (`make mlflow-snapshot`): running the flows against it too doubled this module's ~60 s of
# client work. With another mlflow installed, or TRACEHOUSE_MLFLOW_SERVER=live, the flows run
# against a live `mlflow server` instead; =record also rewrites the recording.
RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "mlflow-server-snapshot.json"


def recorded_snapshot() -> dict[str, Any] | None:
    """MLflow's server's snapshot as recorded, or None: record or compare live."""
    if os.environ.get("TRACEHOUSE_MLFLOW_SERVER") in ("live", "record") or not RECORDED.exists():
        return None
    recorded = json.loads(RECORDED.read_text())
    return dict(recorded["snapshot"]) if recorded["mlflow"] == version("mlflow") else None


# The flows in two streams at once: an experiment's flows, and the prompt versions flow2 and
# POML's flow register, stay in one stream, in order.
STREAMS = [FLOWS[:3] + FLOWS[4:6], [FLOWS[3], *FLOWS[6:]]]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    ours_dir, theirs_dir = tmp_path_factory.mktemp("tracehouse"), tmp_path_factory.mktemp("mlflow")
    for d in (ours_dir, theirs_dir):
        (d / "explain_code.poml").write_text(EXPLAIN_CODE_POML)
        (d / "sample.py").write_text(SAMPLE_PY)
    aio = AllInOne(ours_dir).start()
    recorded = recorded_snapshot()
    results: dict[str, Any] = {} if recorded is None else {"theirs": recorded}

    def against_mlflow(llm: FakeLLM) -> None:
        # The same flows against MLflow's own server, concurrently (it takes ~15 s to start).
        try:
            proc, uri = start_mlflow_server(theirs_dir)
        except Exception as exc:  # compared only where MLflow's server runs
            results["theirs_error"] = repr(exc)
            return
        try:
            for flow in FLOWS:
                run_flow(flow, uri, llm, theirs_dir)
            results["theirs"] = snapshot(uri, theirs_dir)
        except BaseException as exc:
            results["theirs_error"] = repr(exc)
        finally:
            proc.terminate()
            proc.wait(30)

    try:
        with serve_fake_llm(FakeLLM(tool_arguments=TOOL_ARGUMENTS)) as llm:
            other = threading.Thread(target=against_mlflow, args=(llm,))
            if recorded is None:
                other.start()
            with ThreadPoolExecutor(len(STREAMS)) as pool:
                streams = pool.map(lambda flows: {f: run_flow(f, aio.mlflow, llm, ours_dir) for f in flows}, STREAMS)
                outputs = {flow: out for stream in streams for flow, out in stream.items()}
            ours = snapshot(aio.mlflow, ours_dir)
            if recorded is None:
                other.join(300)
        assert "theirs_error" not in results or "did not start" in results["theirs_error"], results["theirs_error"]
        if os.environ.get("TRACEHOUSE_MLFLOW_SERVER") == "record" and "theirs" in results:
            RECORDED.write_text(json.dumps({"mlflow": version("mlflow"), "snapshot": results["theirs"]},
                                           indent=1, sort_keys=True) + "\n")
        yield World(aio, ours, results.get("theirs"), outputs, ours_dir)
    finally:
        code = aio.stop()
    assert code == 0, aio.log_tail()


def test_every_seed_flow_leaves_what_mlflows_own_server_holds(world: World) -> None:
    if world.theirs is None:
        pytest.skip("mlflow server could not start here; nothing to compare with")
    ours = json.loads(json.dumps(world.ours))
    # The one difference: DSPy's evaluation logs each example's metric as feedback on its
    # trace while async logging has not yet sent the trace's info. MLflow's server refuses
    # feedback on a trace it does not know yet, and DSPy drops the error silently; tracehouse
    # keeps it. (With MLFLOW_ENABLE_ASYNC_TRACE_LOGGING=false both hold the same.)
    for trace in ours["experiments"]["skill-creation-eval"]["traces"]:
        assert trace.pop("assessments") == [["your_metric", True]]
    for trace in world.theirs["experiments"]["skill-creation-eval"]["traces"]:
        trace.pop("assessments")
    assert ours == world.theirs


def test_the_snapshot_holds_the_flows_runs_prompts_and_traces(world: World) -> None:
    exps = world.ours["experiments"]
    assert set(exps) >= {"x", "skill-creation", "poml_integration", "mlflow-instructor", "mlflow-instructor-anthropic",
                         "litellm", "feedback"}
    [anthropic_call] = [s for t in exps["mlflow-instructor-anthropic"]["traces"] for s in t["spans"]
                        if s[0] == "Messages.create"]
    assert anthropic_call[1] == "CHAT_MODEL" and anthropic_call[3]["model"] == "claude-3-sonnet-20240229"
    runs = exps["skill-creation"]["runs"]
    assert runs["understanding"]["parent"] == runs["validation"]["parent"] == "skill_creation_job-1"
    assert runs["skill_creation_job-1"]["params"] == {"max_tokens": "4096", "temperature": "0.7"}
    assert runs["skill_creation_job-1"]["tags"]["job_id"] == "job-1"
    assert runs["validation"]["metrics"]["quality_score"] == [[0, 0.85], [1, 0.9]]
    assert [t["source_run"] for t in exps["skill-creation"]["traces"]] == ["understanding"]
    first, explain = exps["x"]["traces"]
    assert first["token_usage"] == {"input_tokens": PROMPT_TOKENS, "output_tokens": COMPLETION_TOKENS,
                                    "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
                                    "cache_read_input_tokens": CACHED_TOKENS}
    assert explain["linked_prompts"] == [{"name": "0001.explain_code", "version": "1"}]
    versions = world.ours["prompts"]["0001.explain_code"]["versions"]
    assert versions["1"]["template"] == "Explain this {{language}} code:\n{{code}}"
    assert versions["2"]["template"] == "Explain this {{language}} code briefly:\n{{code}}"
    assert versions["3"]["template"] == EXPLAIN_CODE_POML.strip() or "<poml>" in versions["3"]["template"]
    evaluation = exps["skill-creation-eval"]["runs"]["eval"]
    assert evaluation["metrics"] == {"eval": [[0, 100.0]]}
    assert evaluation["params"]["Predict.signature.instructions"].startswith("Given the fields")
    assert [t["source_run"] for t in exps["skill-creation-eval"]["traces"]] == ["eval", "eval"]
    feedback = exps["feedback"]["traces"][0]["assessments"]
    assert feedback == [["expected_answer", "Paris"], ["helpfulness", True], ["non_empty", True], ["relevance", 0.75]]


def api(world: World, path: str, **params: Any) -> Any:
    resp = httpx.get(f"{world.tracehouse.query}{path}", params=params, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_tracehouse_registry_shows_the_mlflow_and_poml_prompt_versions(world: World) -> None:
    prompt = api(world, "/api/v1/prompts/0001.explain_code")
    by_version = {v["version"]: v for v in prompt["versions"]}
    assert by_version["1"]["template"] == "Explain this {{language}} code:\n{{code}}"
    assert "<poml>" in by_version["3"]["template"]  # POML registered its source as version 3
    # The traced call that loaded version 1 counts for it; the POML call for version 3.
    assert by_version["1"]["usage"]["requests"] >= 1
    assert by_version["3"]["usage"]["requests"] == 1
    assert by_version["3"]["usage"]["input_tokens"] == PROMPT_TOKENS


def test_experiments_runs_and_scores_read_through_tracehouses_api(world: World) -> None:
    experiments = {e["name"]: e for e in api(world, "/api/v1/experiments")["experiments"]}
    skill = api(world, f"/api/v1/experiments/{experiments['skill-creation']['experiment_id']}")
    runs = {r["run_name"]: r for r in skill["runs"]}
    parent = api(world, f"/api/v1/runs/{runs['skill_creation_job-1']['run_id']}")["run"]
    assert {c["run_name"] for c in parent["children"]} == {"understanding", "validation"}
    assert parent["params"] == {"max_tokens": "4096", "temperature": "0.7"}
    validation = api(world, f"/api/v1/runs/{runs['validation']['run_id']}")["run"]
    assert [(m["step"], m["value"]) for m in validation["metrics"]["quality_score"]] == [(0, 0.85), (1, 0.9)]
    understanding = api(world, f"/api/v1/runs/{runs['understanding']['run_id']}")["run"]
    [trace] = understanding["traces"]
    # DSPy's one LM call: the usage it reported, once (the root's aggregate, not an estimate besides).
    assert (trace["input_tokens"], trace["output_tokens"]) == (PROMPT_TOKENS, COMPLETION_TOKENS)
    feedback = api(world, f"/api/v1/experiments/{experiments['feedback']['experiment_id']}")
    [scored] = feedback["traces"]
    detail = api(world, f"/api/v1/traces/{scored['trace_id']}")
    scores = {s["name"]: s for s in detail["scores"]}
    assert scores["helpfulness"]["value"] is True and scores["helpfulness"]["source"] == "human"
    assert scores["helpfulness"]["author"] == "alice@example.com"
    assert scores["relevance"]["value"] == 0.75 and scores["relevance"]["source"] == "llm_judge"
    assert scores["expected_answer"]["value"] == "Paris"
    # Logged while the trace was active, it arrived inside the trace's info: a score too.
    assert (scores["non_empty"]["value"], scores["non_empty"]["source"], scores["non_empty"]["author"]) == (
        True, "code", "length-check")


def test_genai_metrics_equal_the_usage_the_libraries_reported(world: World) -> None:
    traces = api(world, "/api/v1/traces", limit=100)["traces"]
    # Every flow's model calls report 42/17; whatever the library, nothing is estimated or doubled.
    for t in traces:
        assert t["input_tokens"] is None or t["input_tokens"] % PROMPT_TOKENS == 0, t
        assert t["output_tokens"] is None or t["output_tokens"] % COMPLETION_TOKENS == 0, t
    calls = len(world_requests := [t for t in traces if t["input_tokens"]])
    assert calls >= 7, world_requests
    totals = api(world, "/api/v1/traces", limit=100)["totals"]
    assert totals["input_tokens"] * COMPLETION_TOKENS == totals["output_tokens"] * PROMPT_TOKENS


def _wire(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (WIRE / name).read_text().splitlines() if line.strip()]


def _otlp_bytes(recorded: dict[str, Any]) -> bytes:
    return bytes(ParseDict(recorded["_otlp"], ExportTraceServiceRequest()).SerializeToString())


@pytest.mark.parametrize("order", ["otlp-first", "upload-first"])
def test_spans_sent_by_otlp_and_uploaded_as_traces_json_are_stored_once(world: World, order: str) -> None:
    """mlflow-tracing 3.5.1's traffic (recorded against a real MLflow server): OTLP spans, then
    the same spans as a traces.json artifact; in either order, one span is stored."""
    records = _wire("rec-flow1-t35.jsonl")
    otlp = next(r for r in records if r["path"] == "/v1/traces")
    start = next(r for r in records if r["path"] == "/api/3.0/mlflow/traces")
    upload = next(r for r in records if r["path"].endswith("traces.json"))
    # A fresh trace id per run, so the two orders do not see each other's spans.
    old = base64.b64decode(upload["req_body"]["spans"][0]["trace_id"])
    new = os.urandom(16)
    swap = lambda text: text.replace(base64.b64encode(old).decode(), base64.b64encode(new).decode()) \
        .replace(old.hex(), new.hex())  # noqa: E731
    experiment = httpx.post(f"{world.tracehouse.mlflow}/api/2.0/mlflow/experiments/create",
                            json={"name": f"replay-{order}"}).json()["experiment_id"]
    send_otlp = lambda: httpx.post(  # noqa: E731
        f"{world.tracehouse.mlflow}/v1/traces", content=_otlp_bytes(json.loads(swap(json.dumps(otlp["req_body"])))),
        headers={"content-type": "application/x-protobuf", "x-mlflow-experiment-id": experiment})
    send_upload = lambda: httpx.put(  # noqa: E731
        f"{world.tracehouse.mlflow}/api/2.0/mlflow-artifacts/artifacts/{experiment}/traces/tr-{new.hex()}"
        "/artifacts/traces.json", content=swap(json.dumps(upload["req_body"])), headers={"content-type": "text/plain"})
    started = httpx.post(f"{world.tracehouse.mlflow}/api/3.0/mlflow/traces",
                         json=json.loads(swap(json.dumps(start["req_body"]).replace('"1"', json.dumps(experiment)))))
    assert started.status_code == 200, started.text
    # The server says it keeps the spans, so a current client never uploads them.
    assert started.json()["trace"]["trace_info"]["tags"]["mlflow.trace.spansLocation"] == "TRACKING_STORE"
    for send in ((send_otlp, send_upload) if order == "otlp-first" else (send_upload, send_otlp)):
        resp = send()
        assert resp.status_code == 200, resp.text
    detail = api(world, f"/api/v1/traces/{new.hex()}")
    assert len(detail["spans"]) == 1
    [span] = detail["spans"]
    assert (span["genai"]["input_tokens"], span["genai"]["output_tokens"]) == (PROMPT_TOKENS, COMPLETION_TOKENS)
    assert span["resource_attributes"]["mlflow.experimentId"] == experiment
    assert detail["mlflow"]["experiment_id"] == experiment


def test_mlflow_errors_have_mlflows_shape(world: World) -> None:
    base = world.tracehouse.mlflow
    missing = httpx.get(f"{base}/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "nope"})
    assert missing.status_code == 404
    assert missing.json() == {"error_code": "RESOURCE_DOES_NOT_EXIST",
                              "message": "Could not find experiment with name 'nope'"}
    unknown = httpx.post(f"{base}/api/3.0/mlflow/gateway/secrets/create", json={})
    assert unknown.status_code == 404 and unknown.json()["error_code"] == "ENDPOINT_NOT_FOUND"
    assert "docs/mlflow.md" in unknown.json()["message"]
    bad = httpx.post(f"{base}/api/2.0/mlflow/experiments/create", content=b"{not json",
                     headers={"content-type": "application/json"})
    assert bad.status_code == 400 and bad.json()["error_code"] == "MALFORMED_REQUEST"
    dup = httpx.post(f"{base}/api/2.0/mlflow/experiments/create", json={"name": "x"})
    assert dup.status_code == 400 and dup.json()["error_code"] == "RESOURCE_ALREADY_EXISTS"
    bad_filter = httpx.post(f"{base}/api/2.0/mlflow/runs/search", json={"experiment_ids": ["1"], "filter": "tags.x ~ 1"})
    assert bad_filter.status_code == 400 and "invalid filter clause" in bad_filter.json()["message"]
    assert httpx.get(f"{base}/version").text == "3.17.2"


def test_mlflow_clients_with_keys_see_only_their_tenants_experiments(tmp_path: Path) -> None:
    keys = {"alpha": new_key(), "bravo": new_key()}
    key_file = tmp_path / "keys.json"
    key_file.write_text(json.dumps({"keys": [{"name": f"{t}-ingest", "tenant": t, "kind": "ingest",
                                              "sha256": digest(k)} for t, k in keys.items()]}))
    aio = AllInOne(tmp_path, config=CONFIGS / "all-in-one-secure.yaml",
                   env={"TRACEHOUSE_API_KEYS_FILE": str(key_file)}).start()
    try:
        with serve_fake_llm() as llm:
            run_flow("flow1_openai.py", aio.mlflow, llm, tmp_path, {"MLFLOW_TRACKING_TOKEN": keys["alpha"]})
        alpha = httpx.get(f"{aio.mlflow}/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "x"},
                          headers={"authorization": f"Bearer {keys['alpha']}"})
        assert alpha.status_code == 200
        bravo = httpx.get(f"{aio.mlflow}/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "x"},
                          headers={"authorization": f"Bearer {keys['bravo']}"})
        assert bravo.status_code == 404
        # MLflow's username/password settings send Basic auth: the password is the key.
        basic = base64.b64encode(f"anyone:{keys['bravo']}".encode()).decode()
        assert httpx.get(f"{aio.mlflow}/api/2.0/mlflow/experiments/search",
                         headers={"authorization": f"Basic {basic}"}).json()["experiments"][0]["name"] == "Default"
        anonymous = httpx.get(f"{aio.mlflow}/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "x"})
        assert anonymous.status_code == 401 and anonymous.json()["error_code"] == "UNAUTHENTICATED"
        spans = httpx.post(f"{aio.mlflow}/v1/traces", content=b"", headers={"content-type": "application/x-protobuf"})
        assert spans.status_code == 401
    finally:
        assert aio.stop() == 0, aio.log_tail()


def with_mlflow_through_kafka(data: dict[str, Any]) -> None:
    """The writer, plus the mlflow receiver in a pipeline of its own that ends in the Kafka
    exporter (the sidecar's): MLflow spans take the Kafka route to the writers, and the
    tracking store is the writers' ClickHouse (the writer's process: chDB has one per process)."""
    import yaml

    sidecar = yaml.safe_load((CONFIGS / "sidecar.yaml").read_text())
    data["exporters"]["kafka"] = {**sidecar["exporters"]["kafka"],
                                  "sending_queue": {"enabled": False}}
    data["receivers"]["mlflow"] = {
        "endpoint": "${env:TRACEHOUSE_BIND:-localhost}:${env:TRACEHOUSE_MLFLOW_PORT:-5000}",
        "clickhouse": {"endpoint": "${env:TRACEHOUSE_CLICKHOUSE_DSN}", "database": "tracehouse"}}
    data["service"]["pipelines"]["traces/mlflow"] = {"receivers": ["mlflow"], "processors": [],
                                                     "exporters": ["kafka"]}


def test_in_the_kafka_shape_mlflow_spans_go_through_kafka_to_the_writers(tmp_path: Path,
                                                                         kafka_bootstrap: str) -> None:
    from kafka_stack import derived_config, kafka_env, with_query_api, writer

    topic = f"mlflow-{os.urandom(4).hex()}"
    env = kafka_env(kafka_bootstrap, topic, group=f"writers-{topic}")

    def edit(data: dict[str, Any]) -> None:
        with_query_api(data)
        with_mlflow_through_kafka(data)

    store = writer(tmp_path / "writer", env, derived_config(tmp_path, "writer", edit), probe="query").start()
    try:
        with serve_fake_llm() as llm:
            run_flow("flow1_openai.py", store.mlflow, llm, tmp_path)
        deadline = time.monotonic() + 60
        while not (traces := httpx.get(f"{store.query}/api/v1/traces", timeout=10).json()["traces"]):
            assert time.monotonic() < deadline, store.log_tail()
            time.sleep(0.5)
        [trace] = traces
        assert (trace["input_tokens"], trace["output_tokens"]) == (PROMPT_TOKENS, COMPLETION_TOKENS)
        assert store.metric("tracehouse_exporter_sent_spans_total") >= 2  # once to Kafka, once into ClickHouse
        experiments = httpx.get(f"{store.query}/api/v1/experiments", timeout=10).json()["experiments"]
        assert "x" in {e["name"] for e in experiments}
    finally:
        assert store.stop() == 0, store.log_tail()
