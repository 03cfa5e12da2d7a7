"""The captured OTLP payloads in tests/fixtures/otlp (see its README.md)."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "otlp"


def fixture_payloads() -> list[Path]:
    """Every captured OTLP body: `*.pb` (protobuf) and `*.otlp.json` (OTLP/JSON)."""
    return sorted([*FIXTURES.glob("*/*.pb"), *FIXTURES.glob("*/*.otlp.json")])
