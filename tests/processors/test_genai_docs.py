"""docs/genai-conventions.md is the rendering of the mapping table, not a copy that drifts."""

from __future__ import annotations

from pathlib import Path

from tracehouse.processors.genai_normalize.docs import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "genai-conventions.md"


def test_conventions_page_matches_the_mapping_table() -> None:
    assert DOC.read_text() == render(), (
        "docs/genai-conventions.md is stale: run "
        "`python -m tracehouse.processors.genai_normalize.docs > docs/genai-conventions.md`")
