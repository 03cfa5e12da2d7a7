"""An app instrumented with zero code: run as `opentelemetry-instrument python genai_events_app.py`.

The OpenTelemetry distro configures the SDK from the environment (traces, metrics and logs
exporters all OTLP, its defaults), and the official OpenAI instrumentation
(`opentelemetry-instrumentation-openai-v2`) records each chat call: a span, the
`gen_ai.client.token.usage` and `gen_ai.client.operation.duration` metrics and, with
`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`, the prompt and completion as log events
(`gen_ai.client.inference.operation.details`, or per-message `gen_ai.*.message` /
`gen_ai.choice` events in the instrumentation's releases before 2.2). The span itself carries no
content. The app's own span around the call names the prompt version it used. The app then records an evaluation of the answer as a `gen_ai.evaluation.result`
event through the OpenTelemetry Logs API, as the GenAI semantic conventions define it: no SDK
emits that event yet.

It prints the trace id of the chat call. The model server is `OPENAI_BASE_URL`.
"""

from __future__ import annotations

import openai
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber, get_logger

try:  # the Logs API's record type: the SDK's before 1.39, the API's since
    from opentelemetry._logs import LogRecord
except ImportError:  # pragma: no cover - older SDKs
    from opentelemetry.sdk._logs import LogRecord  # type: ignore[attr-defined,no-redef]

tracer = trace.get_tracer("genai_events_app")
client = openai.OpenAI()

# The app's own span names the prompt version it used (OpenLLMetry's attributes), so
# evaluations of its answers count for that version.
PROMPT = {"traceloop.prompt.key": "capital-question", "traceloop.prompt.version": 2,
          "traceloop.prompt.template": "What is the capital of {country}?"}

with tracer.start_as_current_span("answer question", attributes=PROMPT) as root:
    response = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "You answer in one sentence."},
                  {"role": "user", "content": "What is the capital of France?"}])
    answer = response.choices[0].message.content
    # The evaluation is parented to the span it judges (here the app's root span, which holds
    # the chat call), per the semantic conventions, and names the response it judged.
    context = root.get_span_context()
    record = {"trace_id": context.trace_id, "span_id": context.span_id, "trace_flags": context.trace_flags,
              "severity_number": SeverityNumber.INFO,
              "attributes": {"gen_ai.evaluation.name": "relevance", "gen_ai.evaluation.score.value": 0.9,
                             "gen_ai.evaluation.score.label": "relevant",
                             "gen_ai.evaluation.explanation": "The answer names the capital.",
                             "gen_ai.response.id": response.id}}
    try:
        evaluation = LogRecord(event_name="gen_ai.evaluation.result", **record)
    except TypeError:  # SDKs before 1.35 have no event_name: the older `event.name` attribute
        record["attributes"]["event.name"] = "gen_ai.evaluation.result"
        evaluation = LogRecord(**record)
    get_logger("genai_events_app.evaluator").emit(evaluation)
    print(format(context.trace_id, "032x"))
