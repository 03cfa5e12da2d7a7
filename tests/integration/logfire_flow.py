"""A small app on Pydantic Logfire (5.x), run as a subprocess by the tests.

Logfire keeps global configuration and export threads, so each run is its own process.
`logfire.configure(send_to_logfire=False)` sends nowhere but where the standard OTel
environment says: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (set by the caller to tracehouse's
`/v1/traces`, or to a capture server). The model call goes to FAKE_LLM_BASE_URL
(tests/fake_llm.py: usage 42 prompt / 17 completion tokens, 8 cached).

Scenario, one trace: a `logfire.span("plan outfit")` around one chat call through
`logfire.instrument_openai()` (gpt-4o-mini, system + user message, temperature 0.2,
max_tokens 64). Prints `{"trace_id": ...}` on stdout.
"""

from __future__ import annotations

import json
import os

import logfire
import openai

QUESTION = "What should I wear in Paris?"
SYSTEM = "You are a terse weather assistant."


def main() -> None:
    logfire.configure(send_to_logfire=False, service_name="logfire-app", console=False)
    client = openai.OpenAI(base_url=os.environ["FAKE_LLM_BASE_URL"], api_key="sk-test")
    logfire.instrument_openai(client)
    with logfire.span("plan outfit") as span:
        client.chat.completions.create(
            model="gpt-4o-mini", temperature=0.2, max_tokens=64,
            messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}])
        trace_id = format(span.get_span_context().trace_id, "032x")  # type: ignore[union-attr]
    logfire.force_flush()
    logfire.shutdown()
    print(json.dumps({"trace_id": trace_id}))


if __name__ == "__main__":
    main()
