"""A small app on the real Langfuse Python SDK (v3+), run as a subprocess by the tests.

The SDK keeps a global client with an export thread, so each run is its own process. It
sends wherever LANGFUSE_HOST / LANGFUSE_BASE_URL point (tracehouse, or a capture server)
with LANGFUSE_PUBLIC_KEY / LANGFUSE_SECRET_KEY as Basic credentials; the model calls go to
FAKE_LLM_BASE_URL (tests/fake_llm.py: usage 42 prompt / 17 completion tokens).

Scenario, one trace, under `propagate_attributes(user_id="lf-user", session_id="lf-session")`:
- `@observe` span `answer_question` (input: the question, output: the answer), in it
  - a chat call through `langfuse.openai` (gpt-4o-mini, system + user message, temperature
    0.2, max_tokens 64): a generation with model, parameters, usage and messages, no cost;
  - a generation `priced-call` started by hand (model gpt-4o) that reports usage and cost
    (`cost_details`), as an app that prices its own calls does.
Prints `{"trace_id": ...}` on stdout.
"""

from __future__ import annotations

import json
import os

from langfuse import get_client, observe, propagate_attributes
from langfuse.openai import OpenAI

QUESTION = "What should I wear in Paris?"
SYSTEM = "You are a terse weather assistant."
PRICED_COST = {"input": 0.000105, "output": 0.00017, "total": 0.000275}
USER, SESSION = "lf-user", "lf-session"
TRACE_IDS: list[str] = []


@observe()
def answer_question(question: str) -> str:
    client = OpenAI(base_url=os.environ["FAKE_LLM_BASE_URL"], api_key="sk-test")
    response = client.chat.completions.create(
        model="gpt-4o-mini", temperature=0.2, max_tokens=64,
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}])
    langfuse = get_client()
    TRACE_IDS.append(langfuse.get_current_trace_id() or "")
    with langfuse.start_as_current_observation(
            as_type="generation", name="priced-call", model="gpt-4o",
            input=[{"role": "user", "content": "Summarize: " + question}]) as generation:
        generation.update(output={"role": "assistant", "content": "Layers."},
                          usage_details={"input": 42, "output": 17}, cost_details=PRICED_COST)
    return response.choices[0].message.content or ""


def main() -> None:
    with propagate_attributes(user_id=USER, session_id=SESSION):
        answer_question(QUESTION)
    langfuse = get_client()
    langfuse.flush()
    langfuse.shutdown()
    print(json.dumps({"trace_id": TRACE_IDS[0]}))


if __name__ == "__main__":
    main()
