from __future__ import annotations

from typing import Any

from tracehouse.core.component import Kind, Settings, SimpleFactory
from tracehouse.extensions.bearertokenauth.config import BearerTokenAuthConfig
from tracehouse.extensions.bearertokenauth.extension import BearerTokenAuthExtension


def _create(settings: Settings, config: BearerTokenAuthConfig, _next: Any) -> BearerTokenAuthExtension:
    return BearerTokenAuthExtension(settings, config)


factory: SimpleFactory[BearerTokenAuthConfig] = SimpleFactory(
    "bearertokenauth", Kind.EXTENSION, BearerTokenAuthConfig, _create)
