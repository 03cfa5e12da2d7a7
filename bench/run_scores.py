"""What scores cost at a realistic volume: the score rollup, the trace search's score filter,
the trace list's per-trace scores, and writing scores, over a day of `--traces` agent traces
(`--spans-per-trace` spans each, three of them model calls linked to prompt versions) with
one whole-trace score on half the traces and an evaluation score on half the model calls.

The spans are inserted straight into the spans table of an embedded chDB (the exporter's
schema and views; the columns the rollups read), so the figure is the queries', not the
ingest path's; scores go through the one writer, some sent twice and some deleted, as they
would be. The API runs in-process (the query API app over `TraceStore`); each case runs
`--rounds` times after one warm-up.

    python -m tracehouse.bench.run_scores --traces 100000 --json-out bench-results-scores.json
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from tracehouse.bench.loadgen import report
from tracehouse.bench.run_all_in_one import cpu_model
from tracehouse.query.app import create_app
from tracehouse.query.config import QueryClickHouseConfig
from tracehouse.query.store import TraceStore
from tracehouse.sinks.clickhouse.client import open_client
from tracehouse.sinks.clickhouse.schema import migrate, schema_params
from tracehouse.sinks.clickhouse.scores import insert_scores, scores_table

DAY_S = 86_400
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "gemini-1.5-pro")
PROMPTS = [(f"prompt-{p}", str(v)) for p in range(5) for v in range(1, 4)]
LABELS = ("pass", "fail", "partial")
CHUNK = 200_000


class _Health:
    def healthy(self) -> bool:
        return True

    def ready(self) -> bool:
        return True

    def statuses(self) -> dict[str, tuple[str, str | None]]:
        return {}


def seed(endpoint: str, database: str, traces: int, spans_per_trace: int, start_s: int,
         rng: random.Random) -> dict[str, int]:
    client = open_client(endpoint)
    try:
        migrate(client, schema_params(database, "otel_traces", 0, 1000))
        columns = ["Timestamp", "TraceId", "SpanId", "ParentSpanId", "SpanName", "ServiceName", "Duration",
                   "StatusCode", "GenAIProvider", "GenAIRequestModel", "GenAIPromptName", "GenAIPromptVersion",
                   "GenAIInputTokens", "GenAIOutputTokens"]
        rows: list[list[Any]] = []
        scores: list[dict[str, Any]] = []
        calls = 0
        for t in range(traces):
            trace_id = f"{t + 1:032x}"
            t0 = start_s + rng.random() * DAY_S
            prompt, version = rng.choice(PROMPTS)
            for s in range(spans_per_trace):
                span_id = f"{t * spans_per_trace + s + 1:016x}"
                call = 1 <= s <= 3
                model = rng.choice(MODELS) if call else ""
                at = datetime.fromtimestamp(t0 + s * 0.1, UTC)
                rows.append([at, trace_id, span_id, "" if s == 0 else f"{t * spans_per_trace + 1:016x}",
                             "chat" if call else f"step {s}", "agent-app", 50_000_000, "Ok",
                             "openai" if call else "", model, prompt if call else "", version if call else "",
                             100 if call else None, 20 if call else None])
                if call:
                    calls += 1
                    if rng.random() < 0.5:
                        scores.append(_score(f"ev-{span_id}", trace_id, span_id, "relevance", rng.random(),
                                             rng.choice(LABELS), t0 + 5))
            if rng.random() < 0.5:
                scores.append(_score(f"h-{trace_id}", trace_id, "", "helpfulness", rng.random(), "", t0 + 60))
            if len(rows) >= CHUNK:
                client.insert(f"{database}.otel_traces", rows, column_names=columns)
                rows = []
        if rows:
            client.insert(f"{database}.otel_traces", rows, column_names=columns)
        table = scores_table(database, "otel_traces")
        for i in range(0, len(scores), CHUNK):
            insert_scores(client, table, "", scores[i:i + CHUNK])
        again = rng.sample(scores, len(scores) // 10)  # re-sent
        insert_scores(client, table, "", again)
        gone = rng.sample(scores, len(scores) // 50)  # deleted
        insert_scores(client, table, "", [{**s, "Deleted": 1} for s in gone])
        return {"spans": traces * spans_per_trace, "model_calls": calls, "score_rows_written":
                len(scores) + len(again) + len(gone), "live_scores": len(scores) - len({s["ScoreId"] for s in gone})}
    finally:
        client.close()


def _score(sid: str, trace_id: str, span_id: str, name: str, value: float, label: str, at_s: float) -> dict[str, Any]:
    return {"ScoreId": sid, "TraceId": trace_id, "SpanId": span_id, "Name": name, "DataType": "numeric",
            "NumericValue": value, "StringValue": label, "Source": "llm_judge" if span_id else "human",
            "Timestamp": datetime.fromtimestamp(at_s, UTC)}


def _ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_ms": round(statistics.median(ordered) * 1000, 1), "max_ms": round(ordered[-1] * 1000, 1)}


async def measure(endpoint: str, database: str, start_s: int, rounds: int) -> dict[str, Any]:
    store = TraceStore(QueryClickHouseConfig(endpoint=endpoint, database=database, timeout=300), max_workers=2)
    day = {"start": str(start_s), "end": str(start_s + DAY_S + 120)}
    cases: dict[str, tuple[str, str, dict[str, Any]]] = {
        "rollup_by_name": ("GET", "/api/v1/metrics/genai", {**day, "scores": "true", "step": "1h"}),
        "rollup_by_prompt_version": ("GET", "/api/v1/metrics/genai",
                                     {**day, "scores": "true", "step": "1h", "group_by": "prompt,prompt_version"}),
        "rollup_by_model_one_prompt": ("GET", "/api/v1/metrics/genai",
                                       {**day, "scores": "true", "step": "1d", "group_by": "model",
                                        "prompt": "prompt-1"}),
        "search_score_filter": ("GET", "/api/v1/traces", {**day, "score": "helpfulness>=0.9", "limit": 50}),
        "search_no_filter_with_list_scores": ("GET", "/api/v1/traces", {**day, "limit": 50}),
    }
    out: dict[str, Any] = {}
    try:
        app = create_app(store, _Health())  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench",
                                     timeout=300) as api:
            for name, (method, path, params) in cases.items():
                samples = []
                for i in range(rounds + 1):
                    t0 = time.perf_counter()
                    response = await api.request(method, path, params=params)
                    if i:
                        samples.append(time.perf_counter() - t0)
                    response.raise_for_status()
                out[name] = _ms(samples)
            samples = []
            for r in range(rounds):
                body = [{"trace_id": f"{i + 1:032x}", "name": "bench", "value": 0.5, "score_id": f"b-{r}-{i}"}
                        for i in range(100)]
                t0 = time.perf_counter()
                response = await api.post("/api/v1/scores", json=body)
                samples.append(time.perf_counter() - t0)
                response.raise_for_status()
            out["post_100_scores"] = _ms(samples)
    finally:
        await store.close()
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=int, default=100_000)
    parser.add_argument("--spans-per-trace", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json-out")
    args = parser.parse_args(argv)
    endpoint = f"chdb://{tempfile.mkdtemp(prefix='tracehouse-bench-scores-')}"
    start_s = int(time.time()) // 3600 * 3600 - DAY_S
    t0 = time.monotonic()
    figures: dict[str, Any] = seed(endpoint, "bench", args.traces, args.spans_per_trace, start_s,
                                   random.Random(args.seed))
    figures["seed_s"] = round(time.monotonic() - t0, 1)
    figures.update(asyncio.run(measure(endpoint, "bench", start_s, args.rounds)))
    figures.update({"rounds": args.rounds, "cpu": cpu_model()})
    report(figures, args.json_out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
