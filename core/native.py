"""The C module (core/_otlpwire.c), or None where the steps run in Python.

It is compiled at install (setup.py) where a C compiler is found; every step that uses it
keeps its Python walk, which is what runs without it. `TRACEHOUSE_NO_EXTENSIONS=1` turns
it off (read at import), as AIOHTTP_NO_EXTENSIONS does for aiohttp: to compare the two,
or to rule the module out when chasing a problem.
"""

from __future__ import annotations

import os
from types import ModuleType

NO_EXTENSIONS_ENV = "TRACEHOUSE_NO_EXTENSIONS"


def _load() -> ModuleType | None:
    if os.environ.get(NO_EXTENSIONS_ENV, "").strip().lower() not in ("", "0", "false", "no"):
        return None
    try:
        from tracehouse.core import _otlpwire
    except ImportError:  # pragma: no cover - built without a C compiler
        return None
    return _otlpwire


otlpwire = _load()
