"""Component READMEs document every config key the code accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from tracehouse.core.component import Kind
from tracehouse.core.registry import get_factory

REPO = Path(__file__).resolve().parents[1]
DOCUMENTED = {
    (Kind.RECEIVER, "otlp"): "ingest/otlp/README.md",
    (Kind.RECEIVER, "kafka"): "ingest/kafka/README.md",
    (Kind.RECEIVER, "mlflow"): "ingest/mlflow/README.md",
    (Kind.PROCESSOR, "batch"): "processors/batch/README.md",
    (Kind.PROCESSOR, "memory_limiter"): "processors/memory_limiter/README.md",
    (Kind.EXPORTER, "clickhouse"): "sinks/clickhouse/README.md",
    (Kind.EXPORTER, "kafka"): "sinks/kafka/README.md",
    (Kind.PROCESSOR, "genai_cost"): "processors/genai_cost/README.md",
    (Kind.PROCESSOR, "genai_normalize"): "processors/genai_normalize/README.md",
    (Kind.PROCESSOR, "genai_tokens"): "processors/genai_tokens/README.md",
    (Kind.PROCESSOR, "redaction"): "processors/redaction/README.md",
    (Kind.PROCESSOR, "k8sattributes"): "processors/k8sattributes/README.md",
    (Kind.EXTENSION, "bearertokenauth"): "extensions/bearertokenauth/README.md",
    (Kind.EXTENSION, "clickhouse_http"): "extensions/clickhouse_http/README.md",
    (Kind.EXTENSION, "query_api"): "query/README.md",
}


def keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for field_name, info in model.model_fields.items():
        # The key as written in YAML: the alias where the name is a Python keyword (`from`).
        name = info.alias or field_name
        annotation = info.annotation
        nested = [a for a in getattr(annotation, "__args__", (annotation,)) if isinstance(a, type)
                  and issubclass(a, BaseModel)]
        if nested and name != "retry_on_failure":  # retry_on_failure is documented as one row
            out += keys(nested[0], f"{prefix}{name}.")
        else:
            out.append(f"{prefix}{name}")
    return out


@pytest.mark.parametrize(("component", "readme"), DOCUMENTED.items(), ids=lambda v: str(v))
def test_every_config_key_is_documented(component: tuple[Kind, str], readme: str) -> None:
    factory = get_factory(*component)
    assert factory is not None
    text = (REPO / readme).read_text()
    missing = [k for k in keys(factory.config_type) if f"`{k}`" not in text and f"`{k.rsplit('.', 1)[-1]}`" not in text]
    assert not missing, f"{readme} does not document {missing}"
