"""The committed dashboards are what the code builds, and they conform to Grafana's dashboard
schema as grafana-foundation-sdk types it (generated from Grafana's own schema).

Two checks make the schema one: parsing with the SDK (every panel plugin's options and field
config registered) and writing back must give the file unchanged, so no key is unknown to
the schema; and every value must have its field's type — enums take only their members,
numbers are numbers, nested objects are the schema's objects.
"""

from __future__ import annotations

import enum
import json
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

from tracehouse.grafana.__main__ import DASHBOARDS, main, rendered, stale
from tracehouse.grafana.common import PROMPT_REGISTRY, SCORES, SPAN_KEYS, TRACE_ROLLUP, USAGE, register_clickhouse_query

REPO = Path(__file__).resolve().parents[2]
FOLDER = REPO / "deploy" / "grafana" / "dashboards"


@pytest.fixture(scope="module", autouse=True)
def sdk_runtime() -> None:
    register_default_plugins()
    register_clickhouse_query()


def committed(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FOLDER / name).read_text())
    return data


# ------------------------------------------------------------------------------ schema walk


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, globalns=vars(sys.modules[cls.__module__]))


def type_errors(value: Any, annotation: Any, path: str) -> list[str]:
    """Where `value` does not have the type `annotation` (recursing into SDK model objects)."""
    origin = typing.get_origin(annotation)
    if annotation in (Any, object):
        # Panel options and custom field config are typed per panel plugin: the plugin's
        # hook parsed them into its own model, whose fields are checked in turn.
        kind = type(value)
        return type_errors(value, kind, path) if kind.__module__.startswith("grafana_foundation_sdk.models") else []
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return []
        attempts = [type_errors(value, option, path) for option in options if option is not type(None)]
        return [] if any(not a for a in attempts) else min(attempts, key=len)
    if origin is typing.Literal:
        return [] if value in typing.get_args(annotation) else [f"{path}: {value!r} not in {typing.get_args(annotation)}"]
    if origin is list:
        if not isinstance(value, list):
            return [f"{path}: expected a list, got {type(value).__name__}"]
        (item,) = typing.get_args(annotation) or (Any,)
        return [e for i, v in enumerate(value) for e in type_errors(v, item, f"{path}[{i}]")]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{path}: expected an object, got {type(value).__name__}"]
        _, item = typing.get_args(annotation) or (str, Any)
        return [e for k, v in value.items() for e in type_errors(v, item, f"{path}.{k}")]
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        members = {m.value for m in annotation}
        raw = value.value if isinstance(value, enum.Enum) else value
        return [] if raw in members else [f"{path}: {value!r} is not one of {sorted(map(str, members))}"]
    if annotation is float:
        return [] if isinstance(value, int | float) and not isinstance(value, bool) else [f"{path}: {value!r} not a number"]
    if annotation in (int, str, bool):
        ok = isinstance(value, annotation) and not (annotation is int and isinstance(value, bool))
        return [] if ok else [f"{path}: {value!r} is not {annotation.__name__}"]
    if isinstance(annotation, type) and annotation.__module__.startswith("grafana_foundation_sdk"):
        if not isinstance(value, annotation):
            return [f"{path}: expected {annotation.__name__}, got {type(value).__name__}"]
        return [e for name, hint in _hints(annotation).items() if not name.startswith("_")
                for e in type_errors(getattr(value, name, None), hint, f"{path}.{name}")]
    if isinstance(annotation, type) and isinstance(value, annotation):
        return []
    if isinstance(annotation, type):  # an SDK abstract variant (dataquery): parsed by its hook
        return [] if isinstance(value, annotation) else [f"{path}: expected {annotation.__name__}"]
    return []


def schema_errors(board: dict[str, Any]) -> list[str]:
    parsed = Dashboard.from_json(board)
    back = json.loads(json.dumps(parsed, cls=JSONEncoder))
    errors = [] if back == board else [f"keys or values the schema does not keep: {diff(board, back)}"]
    return errors + type_errors(parsed, Dashboard, "dashboard")


def diff(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return f"{path}.{key}"
            found = diff(a[key], b[key], f"{path}.{key}")
            if found:
                return found
        return ""
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return next((d for i, (x, y) in enumerate(zip(a, b)) if (d := diff(x, y, f"{path}[{i}]"))), "")
    return "" if a == b else path


# ------------------------------------------------------------------------------ tests


def test_committed_dashboards_are_what_the_code_builds() -> None:
    assert sorted(p.name for p in FOLDER.glob("*.json")) == sorted(DASHBOARDS)
    assert stale(FOLDER) == [], "run `make dashboards` and commit the result"


def test_check_mode_reports_a_stale_dashboard(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path)]) == 0
    assert main(["--out", str(tmp_path), "--check"]) == 0
    edited = tmp_path / "prompts.json"
    edited.write_text(edited.read_text().replace("tracehouse / Prompts", "edited by hand"))
    assert main(["--out", str(tmp_path), "--check"]) == 1


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_conforms_to_grafanas_schema(name: str) -> None:
    assert schema_errors(committed(name)) == []


def test_the_schema_check_catches_mistakes() -> None:
    board = committed("genai-overview.json")
    timeseries = next(p for p in board["panels"] if p["type"] == "timeseries")
    timeseries["fieldConfig"]["defaults"]["custom"]["drawStyle"] = "zigzag"  # not a GraphDrawStyle
    assert any("draw_style" in e for e in schema_errors(board))
    board = committed("genai-overview.json")
    board["panels"][1]["gridPos"]["w"] = "wide"
    assert any("grid_pos.w" in e for e in schema_errors(board))
    board = committed("genai-overview.json")
    board["panels"][1]["legendPosition"] = "left"  # no such panel field
    assert any("legendPosition" in e for e in schema_errors(board))
    board = committed("prompts.json")
    board["panels"][0]["targets"][0]["rawSQL"] = "SELECT 1"  # misspelt: the plugin reads rawSql
    with pytest.raises(ValueError, match="unknown keys"):
        schema_errors(board)


@pytest.mark.parametrize("name", ["genai-overview.json", "prompts.json"])
def test_genai_panels_read_rollups_only(name: str) -> None:
    """Panels read the rollups, the registry, the scores and the per-span keys with their
    labels, never the spans table (which grows per span)."""
    board = committed(name)
    tables = set()
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            sql = re.sub(r"--[^\n]*", "", target["rawSql"])
            named = set(re.findall(r"\b(\w+) AS \(", sql))  # WITH's own names
            tables |= set(re.findall(r"\b(?:FROM|JOIN)\s+([A-Za-z_][\w.]*)", sql)) - named
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            tables |= set(re.findall(r"\bFROM\s+([A-Za-z_][\w.]*)", variable["query"]))
    assert tables <= {USAGE, TRACE_ROLLUP, PROMPT_REGISTRY, SCORES, SPAN_KEYS}, tables


def test_dashboards_link_each_other_and_share_the_filters() -> None:
    boards = {name: json.loads(text) for name, text in rendered().items()}
    uids = {board["uid"] for board in boards.values()}
    for board in boards.values():
        linked = {link["url"].removeprefix("/d/") for link in board.get("links", [])}
        assert linked == uids - {board["uid"]}
    for name in ("genai-overview.json", "prompts.json"):
        names = [v["name"] for v in boards[name]["templating"]["list"]]
        assert {"clickhouse", "service", "provider", "model", "prompt"} <= set(names)
