from __future__ import annotations

from typing import Any

from tracehouse.core.component import Kind, Settings, SimpleFactory
from tracehouse.extensions.health_check.config import HealthCheckConfig
from tracehouse.extensions.health_check.extension import HealthCheckExtension


def _create(settings: Settings, config: HealthCheckConfig, _next: Any) -> HealthCheckExtension:
    return HealthCheckExtension(settings, config)


factory: SimpleFactory[HealthCheckConfig] = SimpleFactory("health_check", Kind.EXTENSION, HealthCheckConfig, _create)
