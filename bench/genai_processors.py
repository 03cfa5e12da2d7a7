"""GenAI processors alone, against the OTLP decode of the same requests.

The GenAI issue's target: enrichment (`genai_normalize → genai_tokens → genai_cost`) must
cost less per span than the OTLP decode that precedes it. This measures both in-process,
on one thread, on the serialized request bodies the receiver gets:

- `decode_protobuf`: what both OTLP receivers do per request before the pipeline:
  `TraceBatch.from_bytes` (upb parse, span count) plus `drop_invalid_spans` (id checks);
- `decode_json`: the OTLP/HTTP JSON path on the JSON form of the same request
  (`decode_json` → `TraceBatch.from_request` → `drop_invalid_spans`), for reference;
- `normalize`, `tokens`, `cost`: each processor alone, run in pipeline order on each
  freshly decoded batch and timed separately (decode is never inside a processor's time);
- `genai_chain`: the three back to back on a freshly decoded batch, as `consume()` chains
  them (minus the `await`s);
- `redaction`, `redaction_drop`: the `redaction` processor in its shipped setting
  (`genai.content: mask`, every detector, `mask_attributes`) and with `content: drop`,
  each on a freshly decoded batch that normalize and tokens have enriched, as the
  all-in-one places it (after `genai_tokens`: it re-reads the GenAI columns of the spans it
  changes). Not part of `genai_chain`, whose target predates it;
- `batch_merge`, `exporter_columns`, `insert_block`: the exporter's side. Requests that
  went through the processors and redaction (untimed) are merged 8,192 spans at a time, as
  the batch processor does (`TraceBatch.merge`), the merged batch becomes the ClickHouse
  insert's columns (`batch_to_columns`), and the columns the bytes of the insert into the
  embedded engine (`native_block`, in C; without the C module, clickhouse-connect's
  serialization, which the exporter then uses);
- `read_keys`: reading only every span's attribute keys on a freshly decoded batch: the
  floor of any pure-Python stage that looks at attributes at all;
- `read_attributes`: reading every span's attributes into a `{key: AnyValue}` dict on a
  freshly decoded batch and nothing else, for reference. upb parses in C and creates the
  Python objects of a message only when it is read, so these two are what a Python stage
  pays on top of the decode merely to look at attributes.

Traffic shapes:

- `bench`: the seeded GenAI agent traffic of `make bench` (`traffic.py`), usage reported;
- `bench_no_usage`: the same requests with every `gen_ai.usage.*` attribute removed, so
  `genai_tokens` estimates input and output tokens of each chat span from its messages;
- `bench_secrets`: the `bench` requests with secrets planted in about one chat span in ten
  (an email and an OpenAI key in the user message, a card number in the tool response),
  so that `redaction` has something to mask;
- `openinference`: the captured OpenInference payload (tests/fixtures/otlp), repeated;
- `fixtures`: all captured payloads (OTel GenAI, OpenInference, MLflow, Vercel-style JSON)
  repeated in turn.

Each shape gets one warm-up round, then `--repeats` timed rounds; the median (and best)
round is reported, in wall-clock (`time.perf_counter`) and CPU (`time.process_time`) µs per
span. GC stays on, as in the server.

    python -m tracehouse.bench.genai_processors [--spans N] [--repeats R] [--json-out F]

One module on purpose (over 400 lines): a figure means exactly what `_round` times on
which bodies, so the traffic shapes, the timed round, the check that the processors did
their work, and the report are kept together, as one script.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.transform import NativeTransform
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracehouse.bench.run_all_in_one import cpu_model
from tracehouse.bench.traffic import pregenerate
from tracehouse.core.component import ComponentID, Kind, Settings
from tracehouse.core.genai import GenAIColumns
from tracehouse.core.logs import configure_logging
from tracehouse.core.pdata import TraceBatch, count_spans
from tracehouse.core.testing import TestHost, TracesSink
from tracehouse.ingest.otlp.encoding import decode_json, encode_json
from tracehouse.ingest.otlp.validate import drop_invalid_spans
from tracehouse.processors.genai_cost.config import GenAICostConfig
from tracehouse.processors.genai_cost.processor import CostProcessor
from tracehouse.processors.genai_normalize.config import GenAINormalizeConfig
from tracehouse.processors.genai_normalize.processor import NormalizeProcessor
from tracehouse.processors.genai_tokens.config import GenAITokensConfig
from tracehouse.processors.genai_tokens.processor import TokensProcessor, is_llm_call
from tracehouse.processors.redaction.config import RedactionConfig
from tracehouse.processors.redaction.processor import RedactionProcessor
from tracehouse.sinks.clickhouse import columns
from tracehouse.sinks.clickhouse.columns import NATIVE_TYPES, batch_to_columns

__all__ = [
    "STAGES",
    "Shape",
    "build_shapes",
    "main",
    "markdown_table",
    "measure",
    "measure_shape",
]

# Fixed "now" for the generated traffic, so a seed reproduces the exact bytes run to run.
NOW_NS = 1_795_392_000_000_000_000  # 2026-11-23T00:00:00Z
DEFAULT_FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "otlp"
SHAPE_NAMES = ("bench", "bench_no_usage", "bench_secrets", "openinference", "fixtures")
STAGES = ("decode_protobuf", "decode_json", "read_keys", "read_attributes", "normalize", "tokens", "cost",
          "genai_chain", "redaction", "redaction_drop", "batch_merge", "exporter_columns", "insert_block")
BATCH_SPANS = 8192  # the batch processor's send_batch_size in the shipped configs
PROCESSOR_STAGES = ("normalize", "tokens", "cost")
USAGE_PREFIX = "gen_ai.usage."
# Planted by `plant_secrets` (bench_secrets): what a user pastes into a chat, and a tool echoes.
SECRET_USER_TEXT = " My email is jane.doe@example.com and my key is sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z."
SECRET_TOOL_TEXT = " Card on file: 4111 1111 1111 1111."
SECRET_EVERY = 10  # one chat span in ten


@dataclass(frozen=True, slots=True)
class Shape:
    """One traffic shape: serialized OTLP protobuf bodies and their OTLP/JSON form."""

    name: str
    description: str
    bodies: tuple[bytes, ...]
    json_bodies: tuple[bytes, ...]
    spans: int

    @property
    def wire_bytes(self) -> int:
        return sum(len(b) for b in self.bodies)


# ---------------------------------------------------------------------------------------
# Traffic
# ---------------------------------------------------------------------------------------


def _shape(name: str, description: str, bodies: list[bytes]) -> Shape:
    spans = 0
    json_bodies = []
    for body in bodies:
        request = ExportTraceServiceRequest.FromString(body)
        spans += count_spans(request)
        json_bodies.append(encode_json(request))
    return Shape(name, description, tuple(bodies), tuple(json_bodies), spans)


def strip_usage(body: bytes) -> bytes:
    """The same request without any `gen_ai.usage.*` span attribute."""
    request = ExportTraceServiceRequest.FromString(body)
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                keep = [kv for kv in span.attributes if not kv.key.startswith(USAGE_PREFIX)]
                if len(keep) != len(span.attributes):
                    del span.attributes[:]
                    span.attributes.extend(keep)
    return request.SerializeToString()


def plant_secrets(body: bytes, every: int = SECRET_EVERY) -> bytes:
    """The same request with secrets in every `every`-th chat span's messages: an email and an
    API key in the user message, a card number in the tool response (when there is one)."""
    request = ExportTraceServiceRequest.FromString(body)
    chats = 0
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                for kv in span.attributes:
                    if kv.key != "gen_ai.input.messages":
                        continue
                    chats += 1
                    if chats % every:
                        continue
                    messages = json.loads(kv.value.string_value)
                    for message in messages:
                        for part in message.get("parts", ()):
                            if message["role"] == "user" and part.get("type") == "text":
                                part["content"] += SECRET_USER_TEXT
                            elif part.get("type") == "tool_call_response":
                                part["response"] += SECRET_TOOL_TEXT
                    kv.value.string_value = json.dumps(messages, separators=(",", ":"))
    return request.SerializeToString()


def fixture_units(fixtures_dir: Path) -> dict[str, bytes]:
    """One protobuf body per captured library (folder name -> body); JSON captures are re-encoded."""
    units: dict[str, bytes] = {}
    for folder in sorted(p for p in fixtures_dir.iterdir() if p.is_dir()):
        pb = sorted(folder.glob("*.pb"))
        if pb:
            units[folder.name] = pb[0].read_bytes()  # grpc.pb and http-protobuf.pb hold the same spans
            continue
        js = sorted(folder.glob("*.otlp.json"))
        if js:
            units[folder.name] = decode_json(js[0].read_bytes()).SerializeToString()
    return units


def repeat_units(units: Sequence[bytes], spans: int, spans_per_request: int) -> list[bytes]:
    """Requests of about `spans_per_request` spans made by concatenating the units in turn
    (serialized requests concatenate into the union of their resource_spans), until at least
    `spans` spans. Ids repeat across copies; nothing measured here looks at uniqueness."""
    sizes = [count_spans(ExportTraceServiceRequest.FromString(u)) for u in units]
    if not units or min(sizes) < 1:
        raise ValueError("every fixture unit must hold at least one span")
    bodies: list[bytes] = []
    produced = 0
    k = 0
    while produced < spans:
        parts: list[bytes] = []
        in_request = 0
        while in_request < min(spans_per_request, spans - produced) or not parts:
            parts.append(units[k % len(units)])
            in_request += sizes[k % len(units)]
            k += 1
        bodies.append(b"".join(parts))
        produced += in_request
    return bodies


def build_shapes(
    spans: int,
    spans_per_request: int = 500,
    seed: int = 1,
    fixtures_dir: Path | None = DEFAULT_FIXTURES,
    names: Sequence[str] = SHAPE_NAMES,
) -> list[Shape]:
    """The traffic shapes named in `names` (fixture shapes are skipped without `fixtures_dir`)."""
    unknown = set(names) - set(SHAPE_NAMES)
    if unknown:
        raise ValueError(f"unknown shapes {sorted(unknown)}; choose from {', '.join(SHAPE_NAMES)}")
    shapes: list[Shape] = []
    bench: list[bytes] = []
    if "bench" in names or "bench_no_usage" in names or "bench_secrets" in names:
        bench = [p.body for p in pregenerate(seed, spans, spans_per_request, now_ns=NOW_NS)]
    if "bench" in names:
        shapes.append(_shape("bench", "make-bench traffic, usage reported", bench))
    if "bench_no_usage" in names:
        shapes.append(_shape("bench_no_usage", "make-bench traffic without gen_ai.usage.* (tokens estimated)",
                             [strip_usage(b) for b in bench]))
    if "bench_secrets" in names:
        shapes.append(_shape("bench_secrets", f"make-bench traffic, secrets in 1 chat span of {SECRET_EVERY}",
                             [plant_secrets(b) for b in bench]))
    units = fixture_units(fixtures_dir) if fixtures_dir is not None and fixtures_dir.is_dir() else {}
    if "openinference" in names and "openinference" in units:
        shapes.append(_shape("openinference", "captured OpenInference payload, repeated",
                             repeat_units([units["openinference"]], spans, spans_per_request)))
    if "fixtures" in names and units:
        shapes.append(_shape("fixtures", f"all captured payloads in turn ({', '.join(units)})",
                             repeat_units(list(units.values()), spans, spans_per_request)))
    return shapes


# ---------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------


class Processors:
    """The three GenAI processors with their default configs, and `redaction` as the
    all-in-one configures it (and with `content: drop`), started as the service starts them."""

    def __init__(self) -> None:
        sink = TracesSink()
        self.redaction = RedactionProcessor(Settings(ComponentID("redaction"), Kind.PROCESSOR, "traces"),
                                            RedactionConfig.model_validate({"genai": {"content": "mask"}}), sink)
        self.redaction_drop = RedactionProcessor(Settings(ComponentID("redaction/drop"), Kind.PROCESSOR, "traces"),
                                                 RedactionConfig.model_validate({"genai": {"content": "drop"}}), sink)
        self.cost = CostProcessor(Settings(ComponentID("genai_cost"), Kind.PROCESSOR, "traces"),
                                  GenAICostConfig(), sink)
        self.tokens = TokensProcessor(Settings(ComponentID("genai_tokens"), Kind.PROCESSOR, "traces"),
                                      GenAITokensConfig(), self.cost)
        self.normalize = NormalizeProcessor(Settings(ComponentID("genai_normalize"), Kind.PROCESSOR, "traces"),
                                            GenAINormalizeConfig(), self.tokens)

    def start(self) -> None:
        async def _start() -> None:
            host = TestHost()
            for component in (self.cost, self.tokens, self.normalize, self.redaction, self.redaction_drop):
                await component.start(host)

        asyncio.run(_start())  # loads the price table and the BPE tables before any timing

    def run_cost(self, batch: TraceBatch) -> None:
        cols = batch.genai  # what CostProcessor.consume does
        if cols is not None:
            self.cost.price(batch, cols)

    def chain(self, batch: TraceBatch) -> None:
        """normalize → tokens → cost, as their consume() methods chain them."""
        self.normalize.process(batch)
        self.tokens.process(batch)
        self.run_cost(batch)


def insert_bytes(names: list[str], data: list[list[Any]]) -> bytes:
    """What the exporter sends the embedded engine for these columns (sinks/clickhouse/exporter.py)."""
    if columns.native is not None:
        return columns.native_block(names, data)
    # Without the C module: clickhouse-connect's Native serialization, as its insert runs it.
    from clickhouse_connect.datatypes.registry import get_from_name
    from clickhouse_connect.driver.insert import InsertContext

    types = [get_from_name(NATIVE_TYPES[name][0]) for name in names]
    context = InsertContext("spans", names, types, data, column_oriented=True)
    return b"".join(NativeTransform().build_insert(context))


def decode_protobuf(body: bytes) -> TraceBatch:
    """The receivers' per-request work before `consume()`: parse, count, validate ids."""
    batch = TraceBatch.from_bytes(body)
    drop_invalid_spans(batch)
    return batch


def decode_otlp_json(body: bytes) -> TraceBatch:
    """The OTLP/HTTP JSON path before `consume()`."""
    batch = TraceBatch.from_request(decode_json(body))
    drop_invalid_spans(batch)
    return batch


def read_attributes(batch: TraceBatch) -> int:
    """Every span's attributes as a dict, as genai_normalize starts; returns the attribute count."""
    n = 0
    for rs in batch.resources():
        for ss in rs.scope_spans:
            for span in ss.spans:
                attrs = {kv.key: kv.value for kv in span.attributes}
                n += len(attrs)
    return n


def read_keys(batch: TraceBatch) -> int:
    """Only every span's attribute *keys*, nothing else: the floor of any Python stage that
    looks at attributes at all (each key crosses from upb into a Python str)."""
    n = 0
    for rs in batch.resources():
        for ss in rs.scope_spans:
            for span in ss.spans:
                n += len([kv.key for kv in span.attributes])
    return n


_Clock = tuple[float, float]


def _now() -> _Clock:
    return time.perf_counter(), time.process_time()


def _round(shape: Shape, procs: Processors) -> dict[str, _Clock]:
    """One pass over the shape; (wall s, CPU s) per stage."""
    totals = {stage: [0.0, 0.0] for stage in STAGES}

    def add(stage: str, start: _Clock, end: _Clock) -> None:
        totals[stage][0] += end[0] - start[0]
        totals[stage][1] += end[1] - start[1]

    steps: tuple[tuple[str, Callable[[TraceBatch], Any]], ...] = (
        ("normalize", procs.normalize.process), ("tokens", procs.tokens.process), ("cost", procs.run_cost))
    gc.collect()
    for body in shape.bodies:
        t0 = _now()
        batch = decode_protobuf(body)
        t1 = _now()
        add("decode_protobuf", t0, t1)
        for stage, step in steps:
            t0 = _now()
            step(batch)
            t1 = _now()
            add(stage, t0, t1)
    del batch
    gc.collect()
    for body in shape.bodies:
        batch = decode_protobuf(body)
        t0 = _now()
        procs.chain(batch)
        t1 = _now()
        add("genai_chain", t0, t1)
    del batch
    gc.collect()
    for stage, redaction in (("redaction", procs.redaction), ("redaction_drop", procs.redaction_drop)):
        for body in shape.bodies:
            batch = decode_protobuf(body)
            procs.normalize.process(batch)  # where the all-in-one runs it: after genai_tokens
            procs.tokens.process(batch)
            t0 = _now()
            redaction.process(batch)
            t1 = _now()
            add(stage, t0, t1)
        del batch
        gc.collect()
    # The exporter's side, on what the batch processor hands it: requests that went through
    # the processors (untimed), merged BATCH_SPANS at a time, then turned into the insert's
    # columns (sinks/clickhouse/columns.py).
    pending: list[TraceBatch] = []
    pending_spans = 0
    for i, body in enumerate(shape.bodies):
        batch = decode_protobuf(body)
        procs.chain(batch)
        procs.redaction.process(batch)
        pending.append(batch)
        pending_spans += batch.span_count
        if pending_spans >= BATCH_SPANS or i == len(shape.bodies) - 1:
            t0 = _now()
            merged = TraceBatch.merge(pending)
            t1 = _now()
            names, data = batch_to_columns(merged, {}, [])
            t2 = _now()
            insert_bytes(names, data)
            t3 = _now()
            add("batch_merge", t0, t1)
            add("exporter_columns", t1, t2)
            add("insert_block", t2, t3)
            pending, pending_spans = [], 0
    del batch, merged
    gc.collect()
    for stage, reader in (("read_attributes", read_attributes), ("read_keys", read_keys)):
        for body in shape.bodies:
            batch = decode_protobuf(body)
            t0 = _now()
            reader(batch)
            t1 = _now()
            add(stage, t0, t1)
        del batch
        gc.collect()
    gc.collect()
    for body in shape.json_bodies:
        t0 = _now()
        decode_otlp_json(body)
        t1 = _now()
        add("decode_json", t0, t1)
    return {stage: (wall, cpu) for stage, (wall, cpu) in totals.items()}


def _figures(rounds: list[dict[str, _Clock]], spans: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for stage in STAGES:
        walls = [r[stage][0] for r in rounds]
        cpus = [r[stage][1] for r in rounds]
        wall = statistics.median(walls)
        out[stage] = {
            "us_per_span": wall / spans * 1e6,
            "us_per_span_best": min(walls) / spans * 1e6,
            "cpu_us_per_span": statistics.median(cpus) / spans * 1e6,
            "spans_per_s": spans / wall if wall > 0 else float("inf"),
        }
    return out


def _check(shape: Shape, procs: Processors) -> dict[str, int]:
    """What the chain produced on the shape (untimed): proof the processors did their work."""
    counts = dict.fromkeys(
        ("spans", "llm_spans", "with_provider", "llm_with_model", "llm_with_tokens", "tokens_estimated",
         "cost_computed", "cost_reported", "input_tokens_sum", "redacted_spans", "masked_values",
         "secrets_left"), 0)
    for body in shape.bodies:
        batch = decode_protobuf(body)
        procs.chain(batch)
        cols = batch.genai
        if not isinstance(cols, GenAIColumns):
            raise RuntimeError(f"{shape.name}: genai_normalize attached no GenAI columns")
        counts["spans"] += cols.size
        for i in range(cols.size):
            counts["with_provider"] += bool(cols.provider[i])
            counts["tokens_estimated"] += cols.tokens_estimated[i]
            counts["cost_computed"] += cols.cost_source[i] == "computed"
            counts["cost_reported"] += cols.cost_source[i] == "reported"
            if is_llm_call(cols.span_kind[i], cols.operation[i]):
                counts["llm_spans"] += 1
                counts["llm_with_model"] += bool(cols.request_model[i] or cols.response_model[i])
                counts["llm_with_tokens"] += cols.input_tokens[i] is not None and cols.output_tokens[i] is not None
                counts["input_tokens_sum"] += cols.input_tokens[i] or 0
        before = sum(procs.redaction.masked_values.values())
        counts["redacted_spans"] += procs.redaction.process(batch)
        counts["masked_values"] += sum(procs.redaction.masked_values.values()) - before
        wire = batch.to_bytes()
        counts["secrets_left"] += sum(wire.count(s.encode()) for s in (
            "jane.doe@example.com", "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z", "4111 1111 1111 1111"))
    return counts


def _attributes_per_span(shape: Shape) -> float:
    total = 0
    for body in shape.bodies[:4]:  # a sample is enough: shapes repeat
        request = ExportTraceServiceRequest.FromString(body)
        total += sum(len(sp.attributes) for rs in request.resource_spans for ss in rs.scope_spans for sp in ss.spans)
    sampled = sum(count_spans(ExportTraceServiceRequest.FromString(b)) for b in shape.bodies[:4])
    return total / sampled if sampled else 0.0


def measure_shape(shape: Shape, procs: Processors, repeats: int = 5, warmup: int = 1) -> dict[str, Any]:
    """Warm-up rounds, then `repeats` timed rounds; the figures and the chain's output counts."""
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    for _ in range(warmup):
        _round(shape, procs)
    rounds = [_round(shape, procs) for _ in range(repeats)]
    stages = _figures(rounds, shape.spans)
    chain = stages["genai_chain"]["us_per_span"]
    decode = stages["decode_protobuf"]["us_per_span"]
    return {
        "description": shape.description,
        "spans": shape.spans,
        "requests": len(shape.bodies),
        "bytes_per_span": shape.wire_bytes / shape.spans,
        "attributes_per_span": _attributes_per_span(shape),
        "stages": stages,
        "ratio_chain_to_decode": chain / decode,
        "ratio_chain_to_decode_cpu": (stages["genai_chain"]["cpu_us_per_span"]
                                      / stages["decode_protobuf"]["cpu_us_per_span"]),
        "target_met": chain < decode,
        "check": _check(shape, procs),
    }


def measure(
    spans: int = 10_000,
    spans_per_request: int = 500,
    repeats: int = 5,
    warmup: int = 1,
    seed: int = 1,
    fixtures_dir: Path | None = DEFAULT_FIXTURES,
    shapes: Sequence[str] = SHAPE_NAMES,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Build the shapes and measure each; returns every figure (the `--json-out` document)."""
    started = time.perf_counter()
    procs = Processors()
    procs.start()
    built = build_shapes(spans, spans_per_request, seed, fixtures_dir, shapes)
    results: dict[str, Any] = {}
    for shape in built:
        if progress:
            progress(f"{shape.name}: {shape.spans} spans in {len(shape.bodies)} requests")
        results[shape.name] = measure_shape(shape, procs, repeats, warmup)
    return {
        "date": dt.date.today().isoformat(),
        "python": platform.python_version(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "params": {"spans": spans, "spans_per_request": spans_per_request, "repeats": repeats, "warmup": warmup,
                   "seed": seed},
        "shapes": results,
        "duration_s": time.perf_counter() - started,
    }


# ---------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------

_LABELS = {
    "decode_protobuf": "OTLP protobuf decode + id checks",
    "decode_json": "OTLP/JSON decode + id checks (reference)",
    "read_keys": "read span attribute keys only (floor of any Python stage)",
    "read_attributes": "read span attributes into dicts (reference)",
    "normalize": "genai_normalize",
    "tokens": "genai_tokens",
    "cost": "genai_cost",
    "genai_chain": "**GenAI processors, chained**",
    "redaction": "redaction (`content: mask`, the shipped setting)",
    "redaction_drop": "redaction (`content: drop`)",
    "batch_merge": "batch processor: merging requests (after the processors)",
    "exporter_columns": "ClickHouse exporter: spans → insert columns",
    "insert_block": "ClickHouse exporter: columns → the insert's bytes (Native)",
}


def markdown_table(result: dict[str, Any]) -> str:
    """A stage × traffic table (median µs/span and spans/s), then the ratio per traffic shape.
    Best rounds and CPU times are in the JSON."""
    shapes: dict[str, Any] = result["shapes"]
    lines = ["| stage (µs/span · spans/s) | " + " | ".join(shapes) + " |",
             "|---|" + "---|" * len(shapes)]
    for stage in STAGES:
        cells = []
        for shape in shapes.values():
            f = shape["stages"][stage]
            cell = f"{f['us_per_span']:.1f} · {f['spans_per_s'] / 1000:,.0f}k"
            cells.append(f"**{cell}**" if stage == "genai_chain" else cell)
        lines.append(f"| {_LABELS[stage]} | " + " | ".join(cells) + " |")
    lines += ["", "| traffic | spans | attrs/span | bytes/span | GenAI processors / OTLP protobuf decode | "
                  "(CPU time) | target met |",
              "|---|---|---|---|---|---|---|"]
    for name, shape in shapes.items():
        lines.append(f"| {name} | {shape['spans']:,} | {shape['attributes_per_span']:.1f} | "
                     f"{shape['bytes_per_span']:,.0f} | {shape['ratio_chain_to_decode']:.1f}× | "
                     f"{shape['ratio_chain_to_decode_cpu']:.1f}× | {'yes' if shape['target_met'] else 'no'} |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tracehouse.bench.genai_processors",
        description="Spans/s of the GenAI processors alone, against the OTLP decode of the same requests.",
    )
    p.add_argument("--spans", type=int, default=10_000, help="spans per traffic shape")
    p.add_argument("--spans-per-request", type=int, default=500)
    p.add_argument("--repeats", type=int, default=5, help="timed rounds per shape (median and best reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds per shape first")
    p.add_argument("--seed", type=int, default=1, help="seed of the generated traffic")
    p.add_argument("--shapes", default=",".join(SHAPE_NAMES), help="comma-separated traffic shapes")
    p.add_argument("--fixtures", type=Path, default=DEFAULT_FIXTURES,
                   help="folder of captured OTLP payloads (tests/fixtures/otlp)")
    p.add_argument("--json-out", default=None, help="write all figures as JSON here")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging("warning", "console")  # stdout carries the table only
    if args.spans < 1 or args.spans_per_request < 1:
        print("error: --spans and --spans-per-request must be >= 1", file=sys.stderr)
        return 2
    names = [s.strip() for s in args.shapes.split(",") if s.strip()]
    try:
        result = measure(args.spans, args.spans_per_request, args.repeats, args.warmup, args.seed, args.fixtures,
                         names, progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    missing = [n for n in names if n not in result["shapes"]]
    if missing:
        print(f"note: skipped {', '.join(missing)} (no fixtures at {args.fixtures})", file=sys.stderr)
    print(markdown_table(result))
    print(f"\n{result['cpu_model']}, {result['cpu_count']} CPUs, Python {result['python']}, "
          f"{result['duration_s']:.0f} s", file=sys.stderr)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
