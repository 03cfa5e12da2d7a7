"""Shared fixtures.

chDB hosts one engine (one data directory) per process, so every in-process ClickHouse
test shares one session-wide directory and isolates itself with its own database.
Tests that need their own directory run the service as a subprocess.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def chdb_endpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"chdb://{tmp_path_factory.mktemp('chdb')}"


@pytest.fixture
def database() -> Iterator[str]:
    """A database name no other test uses."""
    yield f"t_{uuid.uuid4().hex[:12]}"
