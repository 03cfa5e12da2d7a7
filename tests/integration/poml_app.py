"""The POML + MLflow seed example, as written, run as a child process against an OTLP endpoint.

`python poml_app.py` in a work directory is the app: `poml.set_trace("mlflow", ...)`,
`mlflow.openai.autolog()`, `poml.poml("explain_code.poml", ...)` then the OpenAI call with the
rendered messages. `run_poml_app()` starts it with the OTLP exporter pointed at `otlp_endpoint`
(OTLP/HTTP protobuf), the OpenAI client at a fake LLM (tests/fake_llm.py), and MLflow's tracking
store (where POML registers its prompt) at a throwaway sqlite file in the work directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# The seed's example files (shared/seeds: POML's MLflow integration page).
EXPLAIN_CODE_POML = """<poml>
  <task>You are a senior Python developer. Please explain the code.</task>
  <code inline="false">
    <document src="{{ code_path }}" parser="txt" />
  </code>
  <runtime temperature="0.7" max-tokens="256"/>
</poml>
"""
SAMPLE_PY = 'def greet(name):\n    print(f"Hello, {name}!")\n\ngreet("World")\n'
MODEL = "gpt-5"
# POML names the prompt after its trace file: `<4-digit call counter>.<source file stem>`.
POML_PROMPT_NAME = "0001.explain_code"


def run_poml_app(workdir: Path, otlp_endpoint: str, llm_base_url: str, timeout: float = 180.0) -> str:
    """Run the app in `workdir`; returns its stdout. Raises on a non-zero exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "explain_code.poml").write_text(EXPLAIN_CODE_POML)
    (workdir / "sample.py").write_text(SAMPLE_PY)
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{otlp_endpoint}/v1/traces",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        "OPENAI_BASE_URL": llm_base_url,
        "OPENAI_API_KEY": "test-key",
        "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}",
    }
    env.pop("POML_TRACE", None)
    done = subprocess.run([sys.executable, str(Path(__file__).resolve())], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"POML app failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return done.stdout


def main() -> None:
    import mlflow
    import mlflow.openai
    import poml
    from openai import OpenAI

    mlflow.set_experiment("poml_integration")
    poml.set_trace("mlflow", trace_dir="pomlruns")
    mlflow.openai.autolog()

    client = OpenAI()
    messages = poml.poml("explain_code.poml", context={"code_path": "sample.py"}, format="openai_chat")
    response = client.chat.completions.create(model=MODEL, **messages)
    print("answer:", response.choices[0].message.content)
    # MLflow's OTLP exporter sends the spans in batches; the last one is flushed at exit.

if __name__ == "__main__":
    main()
