"""The `genai_normalize` processor: one canonical GenAI view of every span.

Each span's attributes are read once into a dict, then every canonical field is looked
up through the declarative table in `mapping.py` (first source present wins). The dicts
are read in C from the request's wire form (core/_otlpwire.c `attribute_values`, plain
values) where the package was built with it, else from the upb messages (AnyValues);
`values.raw` takes either. Results
go into `GenAIColumns` on the batch; the span's own attributes are never changed, so the
original data is always kept. A span that speaks no known convention gets empty fields:
nothing is invented.

A token count no storage or rollup can sum (over 2**63 - 1: the columns are UInt64 and
input + output must still fit) is dropped, "not known", and logged: one absurd attribute
must not fail the insert of every span batched with it. A batch larger than
`_INLINE_BYTES` is normalized on a worker thread (its message JSON can take a while to
parse), so the event loop keeps serving meanwhile.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tracehouse.core.component import Host, Settings, TracesConsumer
from tracehouse.core.genai import GenAIColumns
from tracehouse.core.logs import LogThrottle
from tracehouse.core.native import otlpwire
from tracehouse.core.pdata import TraceBatch
from tracehouse.processors.genai_normalize import mapping as m
from tracehouse.processors.genai_normalize import messages
from tracehouse.processors.genai_normalize.config import GenAINormalizeConfig
from tracehouse.processors.genai_normalize.rendered import RenderedLinks
from tracehouse.processors.genai_normalize.langfuse import langfuse_usage
from tracehouse.processors.genai_normalize.values import (count, json_text, loads, path, python_literal, raw, text,
                                                          usd)

Attrs = Mapping[str, Any]  # AnyValues, or plain values read in C: read them through values.raw

# Without the C module (core/native.py) attributes are read through upb.
attribute_values: Callable[[bytes], list[dict[str, Any]]] | None = otlpwire.attribute_values if otlpwire else None

# The largest token count kept; see the module doc.
MAX_TOKEN_COUNT = 2**63 - 1
# Batches up to this many wire bytes are normalized on the event loop (a millisecond or two).
_INLINE_BYTES = 1 << 20

# MLflow's `mlflow.message.format` names the client library whose payload it recorded;
# for these values that is also the provider (used only when nothing else names one).
_MLFLOW_FORMAT_PROVIDERS = {"openai", "anthropic", "gemini", "bedrock", "mistral", "groq", "cohere", "deepseek"}


def _index(tables: tuple[dict[str, tuple[m.Source, ...]], ...]) -> dict[str, list[tuple[str, int, m.Source]]]:
    """attribute key -> [(field, rank, source)]: a span touches only the keys it has."""
    index: dict[str, list[tuple[str, int, m.Source]]] = {}
    for table in tables:
        for field_name, sources in table.items():
            for rank, source in enumerate(sources):
                index.setdefault(source.key, []).append((field_name, rank, source))
    return index


_INDEX = _index((m.STRING_FIELDS, m.COUNT_FIELDS, m.COST_FIELDS))
_DECODERS: dict[str, Callable[[Any], Any]] = {
    **{f: text for f in m.STRING_FIELDS}, **{f: count for f in m.COUNT_FIELDS}, **{f: usd for f in m.COST_FIELDS},
    "prompt_variables": json_text}


Plan = tuple[tuple[str, tuple[m.Source, ...], Callable[[Any], Any]], ...]
_PLANS: dict[tuple[str, ...], Plan] = {}
_MAX_PLANS = 4096


def plan_for(keys: tuple[str, ...]) -> Plan:
    """Which fields these attribute keys can fill, each with its present sources in rank order.

    Spans of one library carry the same keys in the same order, so plans are cached by the
    key tuple: a span then costs one dict lookup instead of an index walk and sorts."""
    plan = _PLANS.get(keys)
    if plan is None:
        candidates: dict[str, list[tuple[int, m.Source]]] = {}
        for key in set(keys) & _INDEX.keys():
            for field_name, rank, source in _INDEX[key]:
                candidates.setdefault(field_name, []).append((rank, source))
        plan = tuple((field_name, tuple(source for _, source in sorted(ranked, key=lambda item: item[0])),
                      _DECODERS[field_name]) for field_name, ranked in candidates.items())
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.clear()
        _PLANS[keys] = plan
    return plan


def span_attributes(batch: TraceBatch, request: Any) -> Iterator[dict[str, Any]]:
    """Each span's attributes of `request` in walk order, read in C from its wire form; empty
    (the caller reads them through upb) without the C module or for bytes it does not take."""
    if attribute_values is None:
        return iter(())
    try:
        return iter(attribute_values(batch.request_bytes(request)))
    except ValueError:
        return iter(())


def lookup(attrs: Attrs) -> dict[str, Any]:
    """Every canonical field the table can fill from these attributes (first source wins)."""
    found: dict[str, Any] = {}
    parsed: dict[str, Any] = {}  # JSON values several fields read (a raw response), parsed once
    for field_name, sources, decode in plan_for(tuple(attrs)):
        value = first_value(attrs, sources, decode, parsed)
        if value is not None:
            found[field_name] = value
    return found


def first_value(attrs: Attrs, sources: tuple[m.Source, ...], decode: Callable[[Any], Any],
                parsed: dict[str, Any] | None = None) -> Any:
    for source in sources:
        value = attrs.get(source.key)
        if value is None or (source.only_with and not _condition_holds(attrs, source)):
            continue
        whole = raw(value)
        if source.path:
            if source.contains and isinstance(whole, str) and source.contains not in whole:
                continue
            root = parsed.get(source.key, _UNPARSED) if parsed is not None else _UNPARSED
            if root is _UNPARSED:
                root = python_literal(whole) if source.python_repr else loads(whole)
                if parsed is not None:
                    parsed[source.key] = root
            decoded = decode(path(root, *source.path))
        else:
            decoded = decode(whole)
        if decoded is not None and decoded != "":
            return decoded
    return None


_UNPARSED = object()


def _condition_holds(attrs: Attrs, source: m.Source) -> bool:
    other = attrs.get(source.only_with)
    if other is None:
        return False
    return not source.only_value or text(raw(other)) == source.only_value


def prompt_source(attrs: Attrs) -> str:
    """The convention of the first prompt-link attribute present (the link's source)."""
    for field_name in m.PROMPT_LINK_FIELDS:
        for source in m.STRING_FIELDS[field_name]:
            if source.key in attrs and (not source.only_with or _condition_holds(attrs, source)):
                return source.convention
    return ""


def link_prompt(attrs: Attrs, cols: GenAIColumns, i: int) -> None:
    """Template hash, source and (for unnamed templates) a content-derived name."""
    name, template = cols.prompt_name[i], cols.prompt_template[i]
    if not (name or template or cols.prompt_version[i]):
        return
    source = prompt_source(attrs)
    cols.prompt_source[i] = source
    if template:
        digest = hashlib.sha256(template.encode()).hexdigest()
        cols.prompt_template_hash[i] = digest
        if not name:
            cols.prompt_name[i] = f"{'poml' if source == m.POML else 'template'}-{digest[:12]}"


normalize_provider = m.normalize_provider


def split_model_prefix(cols: GenAIColumns, i: int) -> str:
    """`openai/gpt-4o-mini` -> model `gpt-4o-mini`; returns the prefix's provider ("" if none)."""
    provider = ""
    for column in (cols.request_model, cols.response_model):
        model = column[i]
        if "/" in model:
            prefix, _, rest = model.partition("/")
            if rest and prefix.lower() in m.MODEL_PREFIX_PROVIDERS:
                column[i] = rest
                provider = provider or prefix
    return provider


def vercel_operation(attrs: Attrs) -> str:
    """`ai.generateText.doGenerate` -> "doGenerate"; "" when the span is not an ai.* span."""
    for source in m.VERCEL_OPERATION_KEYS:
        value = attrs.get(source.key)
        if value is not None:
            op = text(raw(value)).split(" ", 1)[0]
            if op.startswith("ai."):
                return op.rsplit(".", 1)[-1]
    return ""


def span_kind(attrs: Attrs, vercel_op: str) -> str:
    for source, kinds in m.SPAN_KIND_SOURCES:
        value = attrs.get(source.key)
        if value is not None:
            kind = kinds.get(text(raw(value)).lower())
            if kind:
                return kind
    return m.VERCEL_KINDS.get(vercel_op, "")


def operation(attrs: Attrs, kind: str) -> str:
    value = attrs.get("gen_ai.operation.name")
    if value is not None and (op := text(raw(value)).lower()):
        return op
    value = attrs.get("llm.request.type")
    if value is not None and (op := m.OPERATION_FROM_REQUEST_TYPE.get(text(raw(value)).lower(), "")):
        return op
    return m.OPERATION_BY_KIND.get(kind, "")


# Span kinds of a model call (a request).
CALL_KINDS = frozenset({m.LLM, m.EMBEDDING, m.RERANKER})
# Usage scopes (the `usage_scope` column).
AGGREGATE, IN_AGGREGATE, REPEATED = "aggregate", "in_aggregate", "repeated"
_TOKEN_AND_COST_FIELDS = ("input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens", "total_tokens",
                          "input_cost_usd", "output_cost_usd", "total_cost_usd")
_MAX_DEPTH = 256  # ancestors walked at most (parent links are the client's: they may loop)


def parent_indexes(batch: TraceBatch) -> list[int | None]:
    """Each span's parent as an index into the batch; None for roots and parents sent elsewhere."""
    keys: dict[tuple[bytes, bytes], int] = {}
    parent_keys: list[tuple[bytes, bytes] | None] = []
    for n, (_, _, span) in enumerate(batch.iter_spans()):
        keys[(span.trace_id, span.span_id)] = n
        parent_keys.append((span.trace_id, span.parent_span_id) if span.parent_span_id else None)
    return [keys.get(k) if k is not None else None for k in parent_keys]


_PROMPT_COLUMNS = ("prompt_name", "prompt_version", "prompt_template_hash", "prompt_source", "prompt_template",
                   "prompt_variables")


def inherit_prompt_links(parents: list[int | None], cols: GenAIColumns, linkers: list[int]) -> None:
    """Model calls below a span that links a prompt, and link none themselves, take its link.

    MLflow links a prompt to the trace (`mlflow.linkedPrompts` on the span of the function
    that loaded it), not to the call that sent it; so the prompt's requests, tokens and cost
    count that function's model calls. The nearest linking ancestor in the batch wins."""
    is_linker = set(linkers)
    for j in range(cols.size):
        if cols.prompt_name[j] or cols.span_kind[j] not in CALL_KINDS:
            continue
        p, hops = parents[j], 0
        while p is not None and p not in is_linker and hops < _MAX_DEPTH:
            p, hops = parents[p], hops + 1
        if p is None or p not in is_linker:
            continue
        for name in _PROMPT_COLUMNS:
            column = getattr(cols, name)
            column[j] = column[p]


def attribute_usage(parents: list[int | None], cols: GenAIColumns, wrappers: list[int]) -> None:
    """Where the usage of wrapper spans (not model calls, yet reporting usage) belongs.

    A wrapper's usage is the sum of the model calls below it (DSPy's root span under MLflow
    carries its LM calls' total; the calls carry none). Within the batch, for each wrapper:
    - a descendant call or wrapper reports usage of its own: the wrapper's repeats it, so
      its counts and cost are left empty (`repeated`; the attributes keep them);
    - else its usage is kept (`aggregate`): counted in trace totals and usage metrics, never
      as a request. The calls below it (`in_aggregate`) are not estimated, nor unpriced;
      when they all name one provider and model, the wrapper is given them, so its usage is
      priced and grouped under that model.
    Spans of the trace sent in another request are not seen: see the README."""
    is_wrapper = set(wrappers)
    covered: dict[int, list[int]] = {w: [] for w in wrappers}
    repeated: set[int] = set()
    kinds, inputs, outputs = cols.span_kind, cols.input_tokens, cols.output_tokens
    for j in range(cols.size):
        wrapper = j in is_wrapper
        if not wrapper and kinds[j] not in CALL_KINDS:
            continue
        p, hops = parents[j], 0
        while p is not None and p not in is_wrapper and hops < _MAX_DEPTH:
            p, hops = parents[p], hops + 1
        if p is None or p not in is_wrapper or p == j:
            continue
        if wrapper or inputs[j] is not None or outputs[j] is not None:
            repeated.add(p)
        else:
            covered[p].append(j)
    for w in wrappers:
        if w in repeated:
            for name in _TOKEN_AND_COST_FIELDS:
                getattr(cols, name)[w] = None
            cols.cost_source[w] = ""
            cols.usage_scope[w] = REPEATED
            continue
        cols.usage_scope[w] = AGGREGATE
        calls = covered[w]
        for j in calls:
            cols.usage_scope[j] = IN_AGGREGATE
        if calls and not (cols.request_model[w] or cols.response_model[w]):
            models = {(cols.provider[j], cols.request_model[j], cols.response_model[j]) for j in calls}
            if len(models) == 1:
                cols.provider[w], cols.request_model[w], cols.response_model[w] = models.pop()


# Set by MLflow's tracing on every span it makes.
MLFLOW_SPAN_TYPE = "mlflow.spanType"


def defer_to_unseen_aggregates(batch: TraceBatch, parents: list[int | None], cols: GenAIColumns,
                               calls: list[int]) -> None:
    """MLflow model calls without usage whose ancestors go on in another request count in
    an aggregate there (`in_aggregate`: never estimated).

    Under MLflow the usage of such calls is on a wrapper above them (DSPy's root span carries
    its LM calls' total), and MLflow exports a trace as its spans end: the calls may come
    in a request before the wrapper's. Estimating them would count their tokens a second
    time beside the aggregate. A call whose ancestors all arrived with it, none of them an
    aggregate, is estimated as usual."""
    spans = [span for _, _, span in batch.iter_spans()]
    for j in calls:
        if cols.usage_scope[j]:
            continue  # attribute_usage found its wrapper in this batch
        p, parent, hops = j, parents[j], 0
        while parent is not None and hops < _MAX_DEPTH:
            p, parent, hops = parent, parents[parent], hops + 1
        if spans[p].parent_span_id:  # the chain leaves the batch: the rest was sent apart
            cols.usage_scope[j] = IN_AGGREGATE


class NormalizeProcessor:
    mutates_data = True  # attaches the GenAI columns

    def __init__(self, settings: Settings, config: GenAINormalizeConfig, next_consumer: TracesConsumer):
        self._config = config
        self._next = next_consumer
        self._log = settings.logger
        self._throttle = LogThrottle(60.0)
        self._lock = threading.Lock()  # batches may be normalized on several threads at once
        self.normalized_spans = 0  # spans with at least one canonical field
        self.dropped_token_counts = 0  # counts over MAX_TOKEN_COUNT, left unknown
        self.offloaded_batches = 0
        self.rendered_prompt_links = 0  # LLM calls linked to the POML prompt they sent (rendered.py)

    async def start(self, host: Host) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def consume(self, batch: TraceBatch) -> None:
        if batch.nbytes > _INLINE_BYTES:
            with self._lock:
                self.offloaded_batches += 1
            await asyncio.to_thread(self.process, batch)
        else:
            self.process(batch)
        await self._next.consume(batch)

    def process(self, batch: TraceBatch) -> GenAIColumns:
        cols = GenAIColumns.empty(batch.span_count)
        i = normalized = 0
        dropped: list[str] = []
        rendered = RenderedLinks()  # POML renderings and the LLM calls that may have sent them
        wrappers: list[int] = []
        unreported: list[int] = []  # MLflow model calls without usage, below another span
        for request in batch.requests:
            read = span_attributes(batch, request)
            for rs in request.resource_spans:
                resource: dict[str, AnyValue] = (
                    {kv.key: kv.value for kv in rs.resource.attributes} if self._config.resource_fallback else {})
                origin = rs.resource.SerializeToString()  # the exporting process (as its resource says)
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        attrs = next(read, None)
                        if attrs is None:
                            attrs = {kv.key: kv.value for kv in span.attributes}
                        if self._normalize(attrs, resource, span, cols, i, dropped, wrappers, unreported):
                            normalized += 1
                        if cols.prompt_source[i] == m.POML:
                            rendered.add_rendering(origin, i, attrs, span)
                        elif cols.span_kind[i] == m.LLM and not cols.prompt_name[i]:
                            rendered.add_call(origin, i, attrs, span)
                        i += 1
        linked = rendered.link(cols)
        linkers = [j for j, name in enumerate(cols.prompt_name) if name]
        # Only where a span that is not a call links a prompt (MLflow's traced function).
        inherit = bool(linkers) and any(cols.span_kind[j] not in CALL_KINDS for j in linkers)
        if wrappers or unreported or inherit:  # rare: most batches pay nothing for this
            parents = parent_indexes(batch)  # once, for every walk up the batch's parents
            if wrappers:
                attribute_usage(parents, cols, wrappers)
            if unreported:
                defer_to_unseen_aggregates(batch, parents, cols, unreported)
            if inherit:
                inherit_prompt_links(parents, cols, linkers)
        batch.genai = cols
        with self._lock:
            self.normalized_spans += normalized
            self.dropped_token_counts += len(dropped)
            self.rendered_prompt_links += linked
        if dropped:
            held = self._throttle.allow("dropped")
            if held is not None:
                self._log.warning("token counts too large to store were dropped (stored as unknown)",
                                  fields=sorted(set(dropped)), counts=len(dropped), max=MAX_TOKEN_COUNT,
                                  suppressed=held)
        return cols

    def _normalize(self, attrs: Attrs, resource: Attrs, span: Any, cols: GenAIColumns, i: int,
                   dropped: list[str], wrappers: list[int], unreported: list[int]) -> bool:
        found = lookup(attrs)
        for name in m.STRING_FIELDS:
            value = found.get(name)
            if value is None and name in ("session_id", "user_id") and resource:
                value = first_value(resource, m.STRING_FIELDS[name], text)
            if value is not None:
                getattr(cols, name)[i] = value
        provider = cols.provider[i]
        prefix_provider = split_model_prefix(cols, i)
        # A provider attribute wins over the model's prefix (first present wins, as everywhere).
        provider = provider or prefix_provider
        if not provider and (fmt := attrs.get("mlflow.message.format")) is not None:
            provider = text(raw(fmt)).lower()
            provider = provider if provider in _MLFLOW_FORMAT_PROVIDERS else ""
        cols.provider[i] = normalize_provider(provider) if provider else ""
        link_prompt(attrs, cols, i)

        vercel_op = vercel_operation(attrs)
        kind = span_kind(attrs, vercel_op)
        has_model = bool(cols.request_model[i] or cols.response_model[i])

        # Wrapper spans of the Vercel AI SDK repeat their calls' usage: not counted twice.
        if m.VERCEL_KINDS.get(vercel_op) != m.CHAIN:
            self._tokens(attrs, found, cols, i, dropped)
        has_usage = cols.input_tokens[i] is not None or cols.output_tokens[i] is not None
        if not kind and has_model and has_usage:
            kind = m.LLM  # a model call that names no kind: model + usage is what defines one
        elif kind == m.LLM and not has_model and not cols.provider[i]:
            # Typed as a model call but naming neither model nor provider: a wrapper around
            # calls (DSPy's `Predict.forward` under MLflow is typed LLM), not a request.
            kind = m.CHAIN
        if has_usage and kind and kind not in CALL_KINDS:
            wrappers.append(i)  # its usage is its calls': see attribute_usage
        elif not has_usage and kind in CALL_KINDS and span.parent_span_id and MLFLOW_SPAN_TYPE in attrs:
            unreported.append(i)  # its usage may be an aggregate's: see defer_to_unseen_aggregates
        cols.span_kind[i] = kind
        cols.operation[i] = operation(attrs, kind)
        self._costs(found, cols, i)

        need_in = need_out = True
        if self._config.messages_only_without_usage:
            need_in, need_out = cols.input_tokens[i] is None, cols.output_tokens[i] is None
        if kind == m.LLM and self._config.extract_messages and (need_in or need_out):
            inputs = messages.first(messages.INPUT_EXTRACTORS, attrs) if need_in else None
            outputs = messages.first(messages.OUTPUT_EXTRACTORS, attrs) if need_out else None
            if ((need_in and inputs is None) or (need_out and outputs is None)) and span.events:
                ev_in, ev_out = messages.from_events(span.events)
                inputs = inputs or (ev_in if need_in else None)
                outputs = outputs or (ev_out if need_out else None)
            cols.input_messages[i], cols.output_messages[i] = inputs, outputs
        return bool(kind or has_model or cols.provider[i] or cols.prompt_name[i])

    @staticmethod
    def _tokens(attrs: Attrs, values: dict[str, Any], cols: GenAIColumns, i: int, dropped: list[str]) -> None:
        found = {name: values.get(name) for name in m.COUNT_FIELDS}
        if found["input_tokens"] is None and found["output_tokens"] is None:
            found.update({k: v for k, v in langfuse_usage(attrs).items() if v is not None})
        for name, value in found.items():
            if value is not None and value > MAX_TOKEN_COUNT:
                found[name] = None
                dropped.append(name)
        inp, out, total = found["input_tokens"], found["output_tokens"], found["total_tokens"]
        if total is None and inp is not None and out is not None:
            found["total_tokens"] = inp + out
        for name, value in found.items():
            getattr(cols, name)[i] = value

    @staticmethod
    def _costs(values: dict[str, Any], cols: GenAIColumns, i: int) -> None:
        found = {name: values.get(name) for name in m.COST_FIELDS}
        if all(v is None for v in found.values()):
            return
        if found["total_cost_usd"] is None and found["input_cost_usd"] is not None \
                and found["output_cost_usd"] is not None:
            found["total_cost_usd"] = found["input_cost_usd"] + found["output_cost_usd"]
        for name, value in found.items():
            getattr(cols, name)[i] = value
        cols.cost_source[i] = "reported"
