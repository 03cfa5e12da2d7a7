"""The seed flows, driven by the real client libraries against tests/fake_llm.py.

Each flow is a small Python script run in a subprocess (MLflow and DSPy keep global state
and background threads), with the OpenAI base URL pointing at the fake model server and
the library's own OTLP exporter pointing at `otlp_endpoint` (`http://host:port/v1/traces`,
OTLP/HTTP protobuf). `OtlpSink` is a capture server for that endpoint: it answers 200 and
keeps every request body, which is how the fixtures in tests/fixtures/seed-flows/ were made.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from fake_llm import FakeLLM, serve_fake_llm
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tracehouse.core.pdata import TraceBatch

# The fixtures were captured with the fake server reporting this many reasoning tokens
# (of the 17 output tokens), so that a count read from the wrong place shows.
REASONING_TOKENS = 5

_OPENAI = """
import os
BASE, KEY = os.environ["OPENAI_BASE_URL"], os.environ["OPENAI_API_KEY"]
"""

_DSPY = _OPENAI + """
import mlflow, dspy
mlflow.dspy.autolog()
dspy.configure(lm=dspy.LM("openai/gpt-4o-mini", api_base=BASE, api_key=KEY, cache=False))
"""

FLOWS: dict[str, str] = {
    # DSPy module with two LM calls: the root CHAIN span carries their summed usage.
    "dspy-two-calls": _DSPY + """
class TwoSteps(dspy.Module):
    def __init__(self):
        super().__init__()
        self.draft = dspy.Predict("question -> answer")
        self.check = dspy.Predict("question, answer -> verdict")

    def forward(self, question):
        answer = self.draft(question=question).answer
        return self.check(question=question, answer=answer)

TwoSteps()(question="Capital of France?")
""",
    # One dspy.Predict call (the MLflow wire recording flow 4).
    "dspy-predict": _DSPY + """
dspy.Predict("question -> answer")(question="Capital of France?")
""",
    # LiteLLM under MLflow autolog.
    "mlflow-litellm": _OPENAI + """
import mlflow, litellm
mlflow.litellm.autolog()
litellm.completion(model="openai/gpt-4o-mini", api_base=BASE, api_key=KEY,
                   messages=[{"role": "user", "content": "Capital of France?"}])
""",
    # The OpenAI client under MLflow autolog (flow 1).
    "mlflow-openai": _OPENAI + """
import mlflow, openai
mlflow.openai.autolog()
openai.OpenAI().chat.completions.create(model="gpt-4o-mini",
                                        messages=[{"role": "user", "content": "Capital of France?"}])
""",
    # LiteLLM's own OTel callback (no MLflow).
    "litellm-otel": _OPENAI + """
import litellm
litellm.callbacks = ["otel"]
litellm.completion(model="openai/gpt-4o-mini", api_base=BASE, api_key=KEY,
                   messages=[{"role": "user", "content": "Capital of France?"}])
import time; time.sleep(0.5)
from opentelemetry import trace
trace.get_tracer_provider().force_flush()
""",
}


def flow_env(otlp_endpoint: str, llm_base_url: str, workdir: str) -> dict[str, str]:
    """Environment of a flow: the fake model server, and OTLP/HTTP protobuf to the endpoint."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MLFLOW_"))}
    env.update({
        "OPENAI_BASE_URL": llm_base_url, "OPENAI_API_KEY": "sk-test",
        # MLflow: spans go only to this endpoint, through the stock OTel exporter.
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": otlp_endpoint,
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        # LiteLLM's callback reads its own variables.
        "OTEL_EXPORTER": "otlp_http", "OTEL_ENDPOINT": otlp_endpoint,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no price map download
        "DSPY_CACHEDIR": f"{workdir}/dspy-cache",
        # LiteLLM's MLflow logger builds a tracking client; nothing is logged to it.
        "MLFLOW_TRACKING_URI": f"file://{workdir}/mlruns", "MLFLOW_ALLOW_FILE_STORE": "true",
    })
    return env


def run_flow(name: str, otlp_endpoint: str, llm_base_url: str, service: str = "", timeout: float = 120.0) -> None:
    """Run one flow to completion (its exporter flushes at exit); raises on failure.
    `service`: the resource's service.name (MLflow and LiteLLM both take OTEL_SERVICE_NAME)."""
    with tempfile.TemporaryDirectory(prefix="tracehouse-flow-") as workdir:
        env = flow_env(otlp_endpoint, llm_base_url, workdir)
        if service:
            env["OTEL_SERVICE_NAME"] = service
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(FLOWS[name])], cwd=workdir, env=env,
                              capture_output=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"flow {name} failed ({proc.returncode}):\n{proc.stderr.decode(errors='replace')[-4000:]}")


@dataclass
class OtlpSink:
    """Bodies of OTLP/HTTP requests, in arrival order; `requests` with their paths and headers."""

    bodies: list[bytes] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    port: int = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/traces"


@contextmanager
def otlp_sink() -> Iterator[OtlpSink]:
    sink = OtlpSink()
    ok = ExportTraceServiceResponse().SerializeToString()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            sink.bodies.append(body)
            sink.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(ok)))
            self.end_headers()
            self.wfile.write(ok)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    sink.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="otlp-sink", daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()


FIXTURES = Path(__file__).parent / "fixtures" / "seed-flows"


def capture(name: str, llm: FakeLLM | None = None) -> list[bytes]:
    """What the flow's library sends: every OTLP request body, in order."""
    with serve_fake_llm(llm) as server, otlp_sink() as sink:
        run_flow(name, sink.endpoint, server.base_url)
    return sink.bodies


def load_flow(name: str) -> list[TraceBatch]:
    """A captured flow's requests, decoded as the OTLP/HTTP receiver would."""
    return [TraceBatch.from_bytes(p.read_bytes()) for p in sorted((FIXTURES / name).glob("request-*.pb"))]


def main() -> None:
    """`python tests/client_flows.py [flow...]`: (re)capture the fixtures of these flows."""
    for name in sys.argv[1:] or FLOWS:
        folder = FIXTURES / name
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("request-*.pb"):
            old.unlink()
        bodies = capture(name, FakeLLM(reasoning_tokens=REASONING_TOKENS))
        for n, body in enumerate(bodies, 1):
            (folder / f"request-{n}.pb").write_bytes(body)
        print(f"{name}: {len(bodies)} request(s)")


if __name__ == "__main__":
    main()
