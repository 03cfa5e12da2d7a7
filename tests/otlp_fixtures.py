"""The captured OTLP payloads in tests/fixtures/otlp (see its README.md)."""

from __future__ import annotations

from pathlib import Path

from tracehouse.core.pdata import TraceBatch
from tracehouse.ingest.otlp.encoding import decode_json

FIXTURES = Path(__file__).parent / "fixtures" / "otlp"


def fixture_payloads() -> list[Path]:
    """Every captured OTLP body: `*.pb` (protobuf) and `*.otlp.json` (OTLP/JSON)."""
    return sorted([*FIXTURES.glob("*/*.pb"), *FIXTURES.glob("*/*.otlp.json")])


def load_batch(relative: str) -> TraceBatch:
    """One captured body (path relative to FIXTURES) decoded as the receivers would."""
    body = (FIXTURES / relative).read_bytes()
    return TraceBatch.from_request(decode_json(body)) if relative.endswith(".json") else TraceBatch.from_bytes(body)
