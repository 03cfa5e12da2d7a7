"""The all-in-one with the ClickHouse exporter's persistent sending queue
(`TRACEHOUSE_QUEUE_DIR`): while ClickHouse cannot be reached it keeps acknowledging
clients into the fsynced queue, a SIGKILL loses nothing it acknowledged, and the queue
drains into ClickHouse, GenAI columns included, once ClickHouse is back.

"ClickHouse down" is the embedded engine failing to open its store: a plain file sits
where chDB's data directory should be, so every connection attempt fails for real until
the test removes it.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from allinone import ALL_IN_ONE, AllInOne
from genai_helpers import enrich_all
from otlp_fixtures import FIXTURES, fixture_payloads, load_batch
from tracehouse.core.pdata import TraceBatch

pytestmark = pytest.mark.integration


def _config(tmp_path: Path) -> Path:
    """The shipped all-in-one, with retries short enough for a test to watch the drain."""
    data = yaml.safe_load(ALL_IN_ONE.read_text())
    data["exporters"]["clickhouse"]["retry_on_failure"] = {
        "initial_interval": "100ms", "max_interval": "500ms", "max_elapsed_time": "2s"}
    path = tmp_path / "all-in-one.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _post(aio: AllInOne, batches: list[TraceBatch]) -> None:
    with httpx.Client(timeout=30) as http:
        for batch in batches:
            response = http.post(f"{aio.otlp_http}/v1/traces", content=batch.to_bytes(),
                                 headers={"content-type": "application/x-protobuf"})
            assert response.status_code == 200, f"{response.status_code}: {response.text}"


def _queued_files(queue: Path) -> list[Path]:
    return sorted(queue.glob("*.wal"))


def _spans_per_trace(batches: list[TraceBatch]) -> Counter[str]:
    return Counter(s.trace_id.hex() for b in batches for _, _, s in b.iter_spans())


def _stored_trace(aio: AllInOne, trace_id: str) -> dict[str, Any] | None:
    response = httpx.get(f"{aio.query}/api/v1/traces/{trace_id}", timeout=10)
    return response.json() if response.status_code == 200 else None


_GENAI = ("provider", "request_model", "response_model", "input_tokens", "output_tokens", "total_cost_usd",
          "cost_source", "tokens_estimated", "prompt_name", "session_id")


def _genai_view(fields: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(round(fields[k], 9) if k == "total_cost_usd" and fields[k] is not None else fields[k]
                 for k in _GENAI)


def _enriched_in_process(payloads: list[TraceBatch]) -> dict[tuple[str, str], tuple[Any, ...]]:
    """What the same GenAI processors compute for the payloads, without a queue in between."""
    out: dict[tuple[str, str], tuple[Any, ...]] = {}
    for batch in asyncio.run(enrich_all([b.clone() for b in payloads])):
        cols = batch.genai
        assert cols is not None
        for i, (_, _, span) in enumerate(batch.iter_spans()):
            cost = cols.total_cost_usd[i]
            out[(span.trace_id.hex(), span.span_id.hex())] = _genai_view({
                f: getattr(cols, f)[i] for f in _GENAI} | {"total_cost_usd": None if cost is None else float(cost)})
    return out


def test_with_clickhouse_down_acknowledged_spans_survive_sigkill_and_drain_when_it_returns(tmp_path: Path) -> None:
    store = tmp_path / "data" / "clickhouse"
    store.parent.mkdir()
    store.write_text("ClickHouse is down: chDB cannot open a data directory here\n")
    queue = tmp_path / "queue"
    env = {"TRACEHOUSE_CLICKHOUSE_DSN": f"chdb://{store}", "TRACEHOUSE_QUEUE_DIR": str(queue)}
    payloads = [load_batch(str(p.relative_to(FIXTURES))) for p in fixture_payloads()]
    before_kill, after_kill = payloads[::2], payloads[1::2]

    first = AllInOne(tmp_path, config=_config(tmp_path), env=env).start()
    try:
        _post(first, before_kill)  # every request acknowledged while ClickHouse is down
        assert len(_queued_files(queue)) == len(before_kill), "each acknowledged request is a file on disk"
        assert first.metric("tracehouse_exporter_queue_size") == sum(b.span_count for b in before_kill)
        assert first.metric("tracehouse_exporter_sent_spans_total") == 0
    finally:
        first.kill()  # no drain, no flush

    second = AllInOne(tmp_path, config=_config(tmp_path), env=env).start()
    try:
        assert len(_queued_files(queue)) == len(before_kill), "the queue outlived the SIGKILL"
        _post(second, after_kill)  # still down: still acknowledging
        assert len(_queued_files(queue)) == len(payloads)

        store.unlink()  # ClickHouse is back
        deadline = time.monotonic() + 60
        while _queued_files(queue) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _queued_files(queue), f"queue not drained:\n{second.log_tail()}"

        expected = _spans_per_trace(payloads)
        sent = sum(expected.values())
        assert second.metric("tracehouse_exporter_sent_spans_total") == sent
        assert second.metric("tracehouse_exporter_queue_size") == 0
        stored = {trace_id: _stored_trace(second, trace_id) for trace_id in expected}
        assert {t: len(d["spans"]) if d else 0 for t, d in stored.items()} == dict(expected), \
            "every acknowledged span is stored, once"
        got = {(s["trace_id"], s["span_id"]): _genai_view(s["genai"]) for d in stored.values() if d
               for s in d["spans"]}
        assert got == _enriched_in_process(payloads), "the GenAI columns travelled through the queue unchanged"
        assert any(v[2] and v[5] for v in got.values()), "with tokens and cost"
    finally:
        assert second.stop() == 0
