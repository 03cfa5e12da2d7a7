from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from allinone import AllInOne


@pytest.fixture(scope="module")
def all_in_one(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AllInOne]:
    """One all-in-one process shared by a test module (start-up costs seconds)."""
    server = AllInOne(Path(tmp_path_factory.mktemp("allinone"))).start()
    yield server
    code = server.stop()
    assert code == 0, f"tracehouse exited with {code}:\n{server.log_tail()}"
