"""The declarative map: canonical GenAI field <- attribute names, per convention.

For each field the sources are tried in order and the first one present wins. The order
is the precedence rule:
  1. the current OpenTelemetry GenAI conventions,
  2. their deprecated names still in the wild (`gen_ai.system`, `gen_ai.usage.prompt_tokens`...),
  3. OpenInference (`llm.*`), 4. MLflow (`mlflow.*`, JSON-encoded values),
  5. OpenLLMetry / Traceloop, 6. Langfuse, 7. Vercel AI SDK (`ai.*`),
  8. Pydantic AI / Logfire, 9. LiteLLM, 10. POML (its MLflow backend's `poml` span).
A span that speaks two dialects (e.g. the Vercel AI SDK's `gen_ai.*` plus `ai.*`) is
read through the higher-ranked one; the lower one only fills what the higher left empty.
`docs/genai-conventions.md` is generated from this table (see tests/processors/test_genai_docs.py).
Extend it by adding a `Source` line; nothing else needs to change.
"""

from __future__ import annotations

from dataclasses import dataclass

OTEL = "OpenTelemetry GenAI"
OTEL_OLD = "OpenTelemetry GenAI (deprecated names)"
OPENINFERENCE = "OpenInference"
MLFLOW = "MLflow"
OPENLLMETRY = "OpenLLMetry / Traceloop"
LANGFUSE = "Langfuse"
VERCEL = "Vercel AI SDK"
LOGFIRE = "Pydantic AI / Logfire"
LITELLM = "LiteLLM"
POML = "POML"
GENERAL = "OpenTelemetry general"

CONVENTIONS = (OTEL, OTEL_OLD, OPENINFERENCE, MLFLOW, OPENLLMETRY, LANGFUSE, VERCEL, LOGFIRE, LITELLM, POML, GENERAL)


@dataclass(frozen=True, slots=True)
class Source:
    key: str
    convention: str
    path: tuple[str | int, ...] = ()  # inside a JSON (or JSON-encoded) value
    only_with: str = ""  # read only on spans that also carry this attribute
    only_value: str = ""  # ... and only when that attribute's value is this
    # Decoded only when the raw text contains this: a cheap test that spares parsing a big
    # JSON value (a span's outputs) that cannot hold the field.
    contains: str = ""
    python_repr: bool = False  # the value is a Python repr (LiteLLM's `metadata.*`), not JSON

    def describe(self) -> str:
        text = self.key + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in self.path)
        if self.python_repr:
            text += " (Python repr)"
        if self.only_value:
            return f"{text} (with {self.only_with} = {self.only_value})"
        return f"{text} (with {self.only_with})" if self.only_with else text


S = Source

STRING_FIELDS: dict[str, tuple[Source, ...]] = {
    "provider": (
        S("gen_ai.provider.name", OTEL), S("gen_ai.system", OTEL_OLD), S("llm.provider", OPENINFERENCE),
        S("llm.system", OPENINFERENCE), S("mlflow.llm.provider", MLFLOW), S("ai.model.provider", VERCEL),
    ),
    "request_model": (
        S("gen_ai.request.model", OTEL), S("llm.request.model_name", OPENINFERENCE),
        S("llm.invocation_parameters", OPENINFERENCE, ("model",)), S("model", MLFLOW, only_with="mlflow.spanType"),
        S("mlflow.spanInputs", MLFLOW, ("model",)), S("langfuse.observation.model.name", LANGFUSE),
        S("ai.model.id", VERCEL), S("llm.model_name", OPENINFERENCE),
    ),
    "response_model": (
        S("gen_ai.response.model", OTEL), S("llm.response.model_name", OPENINFERENCE),
        S("llm.model_name", OPENINFERENCE), S("mlflow.llm.model", MLFLOW), S("ai.response.model", VERCEL),
        S("raw_llm_response", LITELLM, ("model",), only_with="mlflow.spanType"),
    ),
    "session_id": (
        S("gen_ai.conversation.id", OTEL), S("session.id", OPENINFERENCE),
        S("traceloop.association.properties.session_id", OPENLLMETRY), S("langfuse.session.id", LANGFUSE),
        S("ai.telemetry.metadata.sessionId", VERCEL),
    ),
    "user_id": (
        S("user.id", OPENINFERENCE), S("traceloop.association.properties.user_id", OPENLLMETRY),
        S("langfuse.user.id", LANGFUSE), S("ai.telemetry.metadata.userId", VERCEL), S("llm.user", LITELLM),
        S("metadata.user_api_key_user_id", LITELLM), S("enduser.id", GENERAL),
    ),
    "prompt_name": (
        S("gen_ai.prompt.name", OTEL), S("prompt.id", OPENINFERENCE), S("mlflow.linkedPrompts", MLFLOW, (0, "name")),
        S("mlflow.traceTag.mlflow.linkedPrompts", MLFLOW, (0, "name")),
        S("traceloop.prompt.key", OPENLLMETRY), S("langfuse.observation.prompt.name", LANGFUSE),
        S("langfuse.prompt.name", LANGFUSE), S("ai.telemetry.metadata.langfusePrompt", VERCEL, ("name",)),
    ),
    "prompt_version": (
        S("llm.prompt_template.version", OPENINFERENCE), S("mlflow.linkedPrompts", MLFLOW, (0, "version")),
        S("mlflow.traceTag.mlflow.linkedPrompts", MLFLOW, (0, "version")),
        S("traceloop.prompt.version", OPENLLMETRY), S("langfuse.observation.prompt.version", LANGFUSE),
        S("langfuse.prompt.version", LANGFUSE), S("ai.telemetry.metadata.langfusePrompt", VERCEL, ("version",)),
    ),
    "prompt_template": (
        S("llm.prompt_template.template", OPENINFERENCE), S("traceloop.prompt.template", OPENLLMETRY),
        S("mlflow.spanInputs", POML, ("prompt",), only_with="mlflow.spanFunctionName", only_value="poml"),
    ),
    "prompt_variables": (
        S("llm.prompt_template.variables", OPENINFERENCE), S("traceloop.prompt.template_variables", OPENLLMETRY),
        S("mlflow.spanInputs", POML, ("context",), only_with="mlflow.spanFunctionName", only_value="poml"),
    ),
}

# Fields that make a prompt link; the convention of the first one present is the link's
# source. A template without a name is registered under a name derived from its content
# (`poml-<sha256[:12]>` for POML sources, `template-<sha256[:12]>` otherwise): without a
# name nothing says two templates are versions of one prompt. POML content is renamed by the
# prompt registry to the name MLflow's registry gave it, when that is known (sinks/clickhouse/
# prompts.py); LLM calls that sent a `poml` span's rendered messages share its link (rendered.py).
PROMPT_LINK_FIELDS = ("prompt_name", "prompt_template", "prompt_version")



def _openai_usage(detail: str) -> tuple[Source, ...]:
    """Where a library keeps only the provider's raw OpenAI-shaped `usage` object, the cached
    (`prompt_tokens_details.cached_tokens`) or reasoning (`completion_tokens_details.
    reasoning_tokens`) count is read from it: MLflow's span outputs (its `tokenUsage` has no
    reasoning count), LiteLLM's raw response under MLflow autolog, and the LiteLLM OTel
    callback's `metadata.usage_object` (a Python repr)."""
    where = "prompt_tokens_details" if detail == "cached_tokens" else "completion_tokens_details"
    return (
        S("mlflow.spanOutputs", MLFLOW, ("usage", where, detail), only_with="mlflow.chat.tokenUsage", contains=detail),
        S("raw_llm_response", LITELLM, ("usage", where, detail), only_with="mlflow.spanType", contains=detail),
        S("metadata.usage_object", LITELLM, (where, detail), contains=detail, python_repr=True),
    )


# Token counts, OTel semantics: input includes cached tokens, output includes reasoning.
COUNT_FIELDS: dict[str, tuple[Source, ...]] = {
    "input_tokens": (
        S("gen_ai.usage.input_tokens", OTEL), S("gen_ai.usage.prompt_tokens", OTEL_OLD),
        S("llm.token_count.prompt", OPENINFERENCE), S("mlflow.chat.tokenUsage", MLFLOW, ("input_tokens",)),
        S("ai.usage.inputTokens", VERCEL), S("ai.usage.promptTokens", VERCEL),
    ),
    "output_tokens": (
        S("gen_ai.usage.output_tokens", OTEL), S("gen_ai.usage.completion_tokens", OTEL_OLD),
        S("llm.token_count.completion", OPENINFERENCE), S("mlflow.chat.tokenUsage", MLFLOW, ("output_tokens",)),
        S("ai.usage.outputTokens", VERCEL), S("ai.usage.completionTokens", VERCEL),
    ),
    "cached_input_tokens": (
        S("gen_ai.usage.cache_read.input_tokens", OTEL), S("gen_ai.usage.cache_read_input_tokens", OPENLLMETRY),
        S("llm.token_count.prompt_details.cache_read", OPENINFERENCE),
        S("mlflow.chat.tokenUsage", MLFLOW, ("cache_read_input_tokens",)),
        S("ai.usage.cachedInputTokens", VERCEL), S("ai.usage.inputTokenDetails.cacheReadTokens", VERCEL),
        S("gen_ai.usage.details.cache_read_tokens", LOGFIRE),
        *_openai_usage("cached_tokens"),
    ),
    "reasoning_tokens": (
        S("gen_ai.usage.reasoning.output_tokens", OTEL), S("gen_ai.usage.reasoning_tokens", OPENLLMETRY),
        S("llm.usage.reasoning_tokens", OPENLLMETRY), S("llm.token_count.completion_details.reasoning", OPENINFERENCE),
        S("ai.usage.reasoningTokens", VERCEL), S("ai.usage.outputTokenDetails.reasoningTokens", VERCEL),
        S("gen_ai.usage.details.reasoning_tokens", LOGFIRE),
        *_openai_usage("reasoning_tokens"),
    ),
    "total_tokens": (
        S("gen_ai.usage.total_tokens", OPENLLMETRY), S("llm.usage.total_tokens", OPENLLMETRY),
        S("llm.token_count.total", OPENINFERENCE), S("mlflow.chat.tokenUsage", MLFLOW, ("total_tokens",)),
        S("ai.usage.totalTokens", VERCEL),
    ),
}

# Costs the client reported (USD). Any of them makes the span's cost "reported".
COST_FIELDS: dict[str, tuple[Source, ...]] = {
    "input_cost_usd": (
        S("llm.cost.prompt", OPENINFERENCE), S("mlflow.llm.cost", MLFLOW, ("input_cost",)),
        S("langfuse.observation.cost_details", LANGFUSE, ("input",)), S("gen_ai.cost.input_cost", LITELLM),
    ),
    "output_cost_usd": (
        S("llm.cost.completion", OPENINFERENCE), S("mlflow.llm.cost", MLFLOW, ("output_cost",)),
        S("langfuse.observation.cost_details", LANGFUSE, ("output",)), S("gen_ai.cost.output_cost", LITELLM),
    ),
    "total_cost_usd": (
        S("llm.cost.total", OPENINFERENCE), S("mlflow.llm.cost", MLFLOW, ("total_cost",)),
        S("langfuse.observation.cost_details", LANGFUSE, ("total",)), S("gen_ai.cost.total_cost", LITELLM),
        S("operation.cost", LOGFIRE), S("gen_ai.usage.cost", GENERAL),
        S("response_cost", LITELLM, only_with="mlflow.spanType"),  # LiteLLM under MLflow autolog
    ),
}

# Langfuse's usage object: Langfuse's own keys (input WITHOUT cached tokens, output WITHOUT
# reasoning tokens) or OpenAI's usage as the SDK's OpenAI integration passes it on; read in
# OTel semantics by langfuse.py.
LANGFUSE_USAGE = S("langfuse.observation.usage_details", LANGFUSE)

# Span kind, from whichever classifier the span carries (first present wins). Values
# are matched case-insensitively.
LLM, EMBEDDING, TOOL, AGENT, CHAIN, RETRIEVER, RERANKER = "llm", "embedding", "tool", "agent", "chain", "retriever", "reranker"
GUARDRAIL, EVALUATOR, WORKFLOW, TASK, PROMPT, MEMORY = "guardrail", "evaluator", "workflow", "task", "prompt", "memory"

SPAN_KIND_SOURCES: tuple[tuple[Source, dict[str, str]], ...] = (
    (S("gen_ai.operation.name", OTEL), {
        "chat": LLM, "text_completion": LLM, "generate_content": LLM, "response": LLM, "embeddings": EMBEDDING,
        "retrieval": RETRIEVER, "create_agent": AGENT, "invoke_agent": AGENT, "execute_tool": TOOL,
        "invoke_workflow": WORKFLOW, "plan": AGENT, "rerank": RERANKER, "search_memory": MEMORY,
        "create_memory": MEMORY, "update_memory": MEMORY, "upsert_memory": MEMORY, "delete_memory": MEMORY,
    }),
    (S("openinference.span.kind", OPENINFERENCE), {
        "llm": LLM, "embedding": EMBEDDING, "chain": CHAIN, "retriever": RETRIEVER, "reranker": RERANKER,
        "tool": TOOL, "agent": AGENT, "guardrail": GUARDRAIL, "evaluator": EVALUATOR, "prompt": PROMPT,
    }),
    (S("mlflow.spanType", MLFLOW), {
        "llm": LLM, "chat_model": LLM, "chain": CHAIN, "agent": AGENT, "tool": TOOL, "retriever": RETRIEVER,
        "embedding": EMBEDDING, "reranker": RERANKER, "memory": MEMORY, "parser": CHAIN, "workflow": WORKFLOW,
        "task": TASK, "guardrail": GUARDRAIL, "evaluator": EVALUATOR,
    }),
    (S("traceloop.span.kind", OPENLLMETRY), {"workflow": WORKFLOW, "task": TASK, "agent": AGENT, "tool": TOOL}),
    (S("llm.request.type", OPENLLMETRY), {
        "chat": LLM, "completion": LLM, "embedding": EMBEDDING, "rerank": RERANKER,
    }),
    (S("langfuse.observation.type", LANGFUSE), {
        "generation": LLM, "embedding": EMBEDDING, "agent": AGENT, "tool": TOOL, "chain": CHAIN,
        "retriever": RETRIEVER, "evaluator": EVALUATOR, "guardrail": GUARDRAIL, "span": CHAIN,
    }),
)

# gen_ai.operation.name for spans that do not carry it, from their span kind.
OPERATION_BY_KIND = {
    LLM: "chat", EMBEDDING: "embeddings", TOOL: "execute_tool", AGENT: "invoke_agent", RETRIEVER: "retrieval",
    RERANKER: "rerank", WORKFLOW: "invoke_workflow",
}
OPERATION_FROM_REQUEST_TYPE = {"chat": "chat", "completion": "text_completion", "embedding": "embeddings",
                               "rerank": "rerank"}

# Vercel AI SDK (legacy ai.* spans): the operation id tells calls from their wrappers.
# Wrappers (ai.generateText, ai.streamText, ...) repeat their calls' usage, so their
# token counts are not taken: summing them would count every token twice.
VERCEL_OPERATION_KEYS = (S("ai.operationId", VERCEL), S("operation.name", VERCEL))
VERCEL_KINDS = {
    "doGenerate": LLM, "doStream": LLM, "doEmbed": EMBEDDING,
    "generateText": CHAIN, "streamText": CHAIN, "generateObject": CHAIN, "streamObject": CHAIN,
    "embed": EMBEDDING, "embedMany": EMBEDDING, "toolCall": TOOL,
}

# Provider names as the OTel registry spells them.
PROVIDER_ALIASES = {
    "xai": "x_ai", "vertex_ai": "gcp.vertex_ai", "vertexai": "gcp.vertex_ai", "google": "gcp.gen_ai",
    "gemini": "gcp.gemini", "az.ai.openai": "azure.ai.openai", "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai", "az.ai.inference": "azure.ai.inference", "bedrock": "aws.bedrock",
    "aws": "aws.bedrock", "amazon": "aws.bedrock", "mistralai": "mistral_ai", "mistral": "mistral_ai",
    "togetherai": "together_ai", "huggingface": "hugging_face", "watsonx": "ibm.watsonx.ai",
    "alephalpha": "aleph_alpha", "moonshot": "moonshot_ai", "unknown": "",
    # LiteLLM's provider ids (its `gen_ai.system` and model-name prefixes).
    "azure_ai": "azure.ai.inference", "vertex_ai_beta": "gcp.vertex_ai", "cohere_chat": "cohere",
    "text-completion-openai": "openai", "mistral_ai": "mistral_ai",
}

# A model name `<provider>/<model>` (LiteLLM's and DSPy's `openai/gpt-4o-mini`,
# `anthropic/claude-...`, `bedrock/...`) names its provider in the prefix: it is split off
# when it is one of these (LiteLLM's provider ids), and normalized as above. Other
# slashes are part of the name (`meta-llama/Llama-3-8b`, `openrouter/openai/gpt-4o`).
MODEL_PREFIX_PROVIDERS = frozenset({
    "openai", "anthropic", "azure", "azure_ai", "bedrock", "vertex_ai", "vertex_ai_beta", "gemini", "google",
    "mistral", "groq", "cohere", "cohere_chat", "deepseek", "xai", "perplexity", "text-completion-openai",
})

_OTEL_DOTTED_PREFIXES = ("aws.", "gcp.", "azure.", "az.", "ibm.")


def normalize_provider(name: str) -> str:
    """A provider name as the OTel registry spells it (also used by the query API's filters,
    so a search by what the client sent finds it)."""
    name = name.strip().lower()
    if "." in name and not name.startswith(_OTEL_DOTTED_PREFIXES):
        name = name.split(".", 1)[0]  # Vercel's "openai.chat", "anthropic.messages"
    return PROVIDER_ALIASES.get(name, name)
