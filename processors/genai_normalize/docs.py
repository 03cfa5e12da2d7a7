"""Render docs/genai-conventions.md from the mapping table, so the page cannot drift.

    python -m tracehouse.processors.genai_normalize.docs > docs/genai-conventions.md
"""

from __future__ import annotations

from tracehouse.processors.genai_normalize import mapping as m

_TITLES = {
    "provider": "provider", "request_model": "request model", "response_model": "response model",
    "session_id": "session id", "user_id": "user id", "prompt_name": "prompt name",
    "prompt_version": "prompt version", "prompt_template": "prompt template",
    "prompt_variables": "prompt variables", "input_tokens": "input tokens (incl. cached)",
    "output_tokens": "output tokens (incl. reasoning)", "cached_input_tokens": "cached input tokens",
    "reasoning_tokens": "reasoning tokens", "total_tokens": "total tokens",
    "input_cost_usd": "reported input cost (USD)", "output_cost_usd": "reported output cost (USD)",
    "total_cost_usd": "reported total cost (USD)",
}


def _all_fields() -> dict[str, tuple[m.Source, ...]]:
    fields = {**m.STRING_FIELDS, **m.COUNT_FIELDS, **m.COST_FIELDS}
    fields["span kind"] = tuple(source for source, _ in m.SPAN_KIND_SOURCES) + m.VERCEL_OPERATION_KEYS
    return fields


def render() -> str:
    fields = _all_fields()
    lines = [
        "# GenAI conventions tracehouse understands",
        "",
        "Generated from `processors/genai_normalize/mapping.py` by",
        "`python -m tracehouse.processors.genai_normalize.docs`; a test fails when it is stale.",
        "",
        "The `genai_normalize` processor fills one canonical set of fields from whichever",
        "convention a span speaks. For each field the sources below are tried **in order**, and",
        "the first one present wins. That order is the precedence when a span mixes dialects.",
        "Original attributes are always kept.",
        "",
        "Libraries that emit the OpenTelemetry names (the official instrumentations, current",
        "OpenLLMetry, Pydantic AI and Logfire, LiteLLM, the Vercel AI SDK's `gen_ai.*` attributes) are",
        "read through the OpenTelemetry rows. The matrix marks the names that are specific to each",
        "convention. Langfuse's usage object is converted by a rule (below).",
        "",
        "## Which fields each convention fills",
        "",
        "| convention | " + " | ".join(_TITLES.get(f, f) for f in fields) + " |",
        "|---" * (len(fields) + 1) + "|",
    ]
    for convention in m.CONVENTIONS:
        cells = ["✓" if any(s.convention == convention for s in sources) else "" for sources in fields.values()]
        if any(cells):
            lines.append(f"| {convention} | " + " | ".join(cells) + " |")
    lines += ["", "## Sources per field, in precedence order", ""]
    for field, sources in fields.items():
        lines.append(f"### {_TITLES.get(field, field)}")
        lines.append("")
        for rank, source in enumerate(sources, 1):
            lines.append(f"{rank}. `{source.describe()}` ({source.convention})")
        lines.append("")
    lines += [
        "## Rules beyond the table",
        "",
        "- **Langfuse usage** (`langfuse.observation.usage_details`, a JSON object) is used only when no",
        "  other usage is present, in any of the shapes Langfuse SDKs send: Langfuse's own keys count input",
        "  without cached tokens and output without reasoning tokens, and are converted to OTel semantics",
        "  (`input` + `input_cached_tokens` or `input_cache_read` + `input_cache_creation`, `output` +",
        "  `output_reasoning_tokens`, `total`); OpenAI usage, which the SDK's OpenAI integration passes on",
        "  unchanged, is read as OpenAI counts it (`prompt_tokens` / `completion_tokens` / `total_tokens` with",
        "  `prompt_tokens_details.cached_tokens` and `completion_tokens_details.reasoning_tokens`, or the",
        "  Responses API's `input_tokens` / `output_tokens` / `*_tokens_details`).",
        "- **Total tokens**, when no source gives it, is input + output if both are known.",
        "- **Wrapper spans are not counted twice.** Vercel AI SDK `ai.generateText` / `ai.streamText` /",
        "  `ai.generateObject` / `ai.streamObject` repeat their `do*` calls' usage, so their counts are",
        "  not taken. Pydantic AI's `gen_ai.aggregated_usage.*` is never read.",
        "- **Span kind**: when no classifier is present, a span with a model and usage counts is an `llm` span.",
        "  A span typed as a model call (`llm`) that names neither a model nor a provider is a wrapper",
        "  (`chain`), not a request: DSPy's `Predict.forward` under MLflow is typed `LLM`.",
        "- **Usage reported above the calls.** A span that is not a model call (chain, agent, ...) yet",
        "  reports usage (DSPy's root span under MLflow carries its LM calls' total; the calls carry",
        "  none) is an aggregate of the calls below it, in the same request: its counts are kept",
        "  (`usage_scope` = `aggregate`), it is never a request, and the calls below it",
        "  (`in_aggregate`) are neither estimated nor counted as unpriced. When those calls all name one",
        "  provider and model, the aggregate is given them, so its usage is priced and grouped under",
        "  that model. When a call or wrapper below it reports usage of its own, the aggregate repeats",
        "  it: its counts and cost are left empty (`repeated`; the attributes keep them), so the",
        "  innermost report wins and every token is counted once. MLflow exports a trace's spans as",
        "  they end, so the calls may arrive in a request before their aggregate: an MLflow model call",
        "  without usage whose ancestors were sent apart is `in_aggregate` too (not estimated); one",
        "  whose whole trace came with it and found no aggregate above it is estimated as usual.",
        "- **Provider** values are mapped to the OTel registry's names (`xai` → `x_ai`, `bedrock` →",
        "  `aws.bedrock`, `az.ai.openai` → `azure.ai.openai`, Vercel's `openai.chat` → `openai`, ...). An",
        "  MLflow span without a provider takes it from `mlflow.message.format` when that names a vendor.",
        "- **Provider-prefixed model names** (LiteLLM's and DSPy's `openai/gpt-4o-mini`, `anthropic/...`,",
        "  `azure/...`, `bedrock/...`, `vertex_ai/...`, `gemini/...`): a prefix that is a provider id is",
        "  split off; the model is stored without it, and the prefix names the provider when no",
        "  attribute does. Other slashes stay in the name (`meta-llama/Llama-3-8b`).",
        "- **Provider filters** of the query API accept what the client sent (`google`, `bedrock`) as well",
        "  as the normalized name.",
        "- **Reported costs** mark the span's cost as `reported`, and the cost processor leaves it alone.",
        "- **Session and user ids** fall back to resource attributes when the span has none.",
        "- **Messages** (for token estimation) are read on `llm` spans whose usage is missing: `gen_ai.input/output.messages`",
        "  (+ `gen_ai.system_instructions`), `llm.input/output_messages.{i}.*`, `gen_ai.prompt/completion.{i}.*`,",
        "  `mlflow.spanInputs/spanOutputs`, `ai.prompt.messages` / `ai.response.text`,",
        "  `langfuse.observation.input/output` (the output as a list, one message object or text), and the",
        "  span's GenAI events: `gen_ai.client.inference.operation.details` and the deprecated",
        "  `gen_ai.*.message` / `gen_ai.choice`. The trace detail also reads these events from log records",
        "  (`otel_logs`) on the span, whichever signal arrived first.",
        "- **Prompts linked to a function** (MLflow's `mlflow.linkedPrompts` on the span of the function that",
        "  loaded the prompt): the model calls below it in the same batch that link no prompt of their own",
        "  take the nearest such link, so the prompt's requests, tokens and cost count the calls that sent it.",
        "- **POML prompts.** A `poml` span (POML's MLflow backend) links its POML source as a template. POML",
        "  registers it in MLflow's prompt registry as `<call counter>.<file stem>` (`0001.explain_code`),",
        "  but no span carries that name: the span is named by content, `poml-<sha256[:12]>`, and the",
        "  prompt registry renames it to the name the MLflow registry API registered that exact content",
        "  under, when that registration reached tracehouse (latest wins); otherwise the content name stays.",
        "- **LLM calls of a POML prompt.** An `llm` span that names no prompt gets the link of a `poml` span",
        "  of the same resource in the same batch whose rendered messages (speakers `human`/`ai`/`system`",
        "  read as `user`/`assistant`/`system`, text parts joined) equal its input messages, role and text",
        "  in order; the call then counts in the prompt's requests, tokens and cost. One of the call's own",
        "  trace wins, else the latest that started before it (with `mlflow.openai.autolog()` the call is",
        "  a trace of its own). Not linked: the two spans in different batches (OTLP requests, or writers",
        "  of different Kafka partitions), or a call that changed the rendered messages.",
        "- Values are decoded defensively: JSON-encoded strings (MLflow), JSON objects in strings, Python",
        "  reprs where marked (LiteLLM's `metadata.*`), and numbers as strings. An unreadable value is",
        "  ignored and never fails the span.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")
