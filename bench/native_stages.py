"""Python CPU per span of each stage, with the C module (core/_otlpwire.c) and without it.

Issue 17's item 4 counts the Python CPU a stored span costs in decode, enrichment, columns
and serialization. This runs the bench traffic through exactly those stages, in one process,
with the C paths on and off in alternating rounds (the same switches `TRACEHOUSE_NO_EXTENSIONS`
sets at import), and reports each stage's least CPU over the rounds: on a VM whose speed
drifts from minute to minute, alternating rounds and the least of them compare the two on
the same machine state.

Stages, per request of `--spans-per-request` spans: decode (`TraceBatch.from_bytes` and the
receivers' id and time checks), genai_normalize, genai_tokens, genai_cost, redaction (the
shipped `content: mask`); then, `BATCH_REQUESTS` requests at a time: the batch merge, the
spans table's columns, and the insert's bytes (the Native block the exporter sends chDB).

    python -m tracehouse.bench.native_stages [--spans N] [--rounds R] [--json-out F]
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from tracehouse.bench import genai_processors as gp
from tracehouse.bench.traffic import pregenerate
from tracehouse.core.logs import configure_logging
from tracehouse.core.native import otlpwire
from tracehouse.core.pdata import TraceBatch
from tracehouse.ingest.otlp import validate
from tracehouse.processors.genai_normalize import processor as normalize
from tracehouse.sinks.clickhouse import columns

STAGES = ("decode", "normalize", "tokens", "cost", "redaction", "merge", "columns", "insert_bytes")
BATCH_REQUESTS = 16  # 8,192 spans at 512 a request: the batch processor's send_batch_size


def use_native(procs: gp.Processors, on: bool, gate: bool) -> None:
    """Every C path on or off, as TRACEHOUSE_NO_EXTENSIONS would have them at import (`gate`:
    whether redaction's configuration lets its request gate apply)."""
    wire = otlpwire if on else None
    columns.native = wire
    normalize.attribute_values = wire.attribute_values if wire else None
    validate.spans_valid = wire.spans_valid if wire else None
    procs.redaction._gate_requests = on and gate


def one_round(procs: gp.Processors, bodies: list[bytes], spans: int) -> dict[str, float]:
    """CPU µs per span of each stage over all `bodies`."""
    cpu = dict.fromkeys(STAGES, 0.0)
    clock = time.process_time

    def timed(stage: str, step: Any, *args: Any) -> Any:
        t0 = clock()
        out = step(*args)
        cpu[stage] += clock() - t0
        return out

    gc.collect()
    batches = []
    for body in bodies:
        batch = timed("decode", gp.decode_protobuf, body)
        timed("normalize", procs.normalize.process, batch)
        timed("tokens", procs.tokens.process, batch)
        timed("cost", procs.run_cost, batch)
        timed("redaction", procs.redaction.process, batch)
        batches.append(batch)
    for i in range(0, len(batches), BATCH_REQUESTS):
        merged = timed("merge", TraceBatch.merge, batches[i:i + BATCH_REQUESTS])
        names, data = timed("columns", columns.batch_to_columns, merged, {}, [])
        timed("insert_bytes", gp.insert_bytes, names, data)
    return {stage: seconds / spans * 1e6 for stage, seconds in cpu.items()}


def measure(spans: int, spans_per_request: int, rounds: int, seed: int = 1) -> dict[str, Any]:
    if otlpwire is None:
        raise SystemExit("the C module is not built (or TRACEHOUSE_NO_EXTENSIONS is set): nothing to compare")
    procs = gp.Processors()
    procs.start()
    gate = procs.redaction._gate_requests
    bodies = [p.body for p in pregenerate(seed, spans, spans_per_request, now_ns=gp.NOW_NS)]
    total = sum(TraceBatch.from_bytes(b).item_count for b in bodies)
    best: dict[bool, dict[str, float]] = {}
    try:
        for _ in range(rounds):
            for on in (True, False):
                use_native(procs, on, gate)
                figures = one_round(procs, bodies, total)
                best[on] = {s: min(best[on][s], v) for s, v in figures.items()} if on in best else figures
    finally:
        use_native(procs, True, gate)
    return {
        "params": {"spans": total, "spans_per_request": spans_per_request, "rounds": rounds, "seed": seed},
        "cpu_us_per_span": {"native": best[True], "python": best[False]},
        "total": {"native": sum(best[True].values()), "python": sum(best[False].values())},
    }


def markdown_table(result: dict[str, Any]) -> str:
    by = result["cpu_us_per_span"]
    lines = ["| stage (CPU µs / span, least of the rounds) | with the C module | Python only |", "|---|---|---|"]
    lines += [f"| {stage} | {by['native'][stage]:.1f} | {by['python'][stage]:.1f} |" for stage in STAGES]
    lines.append(f"| **total** | **{result['total']['native']:.1f}** | **{result['total']['python']:.1f}** |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tracehouse.bench.native_stages", description=__doc__.split("\n")[0])
    parser.add_argument("--spans", type=int, default=16384)
    parser.add_argument("--spans-per-request", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of each setting")
    parser.add_argument("--json-out", help="write the figures as JSON here")
    args = parser.parse_args(argv)
    configure_logging("warning")
    result = measure(args.spans, args.spans_per_request, args.rounds)
    print(f"{result['params']['spans']:,} bench spans, {args.rounds} alternating rounds, {gp.cpu_model()}\n")
    print(markdown_table(result))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
