"""Every API route refuses a query parameter it does not take, and a single-valued one given
twice: a 400 naming it, never silently ignored (FastAPI itself ignores unknown parameters and
keeps the last of a repeated one). A misspelt filter (`modle=gpt-4o`) would otherwise answer
every trace as if it had matched.

One dependency, `reject_unknown_parameters`, is added to every API router by `create_app`
(the explorer's page is left out: its own URL holds the UI's state). What a route takes is
read from the route itself, once: the query parameters FastAPI declares for it (aliases
included, e.g. Jaeger's `minDuration`), plus the `parameters` and the prefixes
(`x-parameter-prefixes`, e.g. `attr.`) of its `openapi_extra`, which is how the trace
search declares the parameters query/search.py parses. Repeatable: list-typed parameters
and array-typed `openapi_extra` ones.

The error is a `RequestValidationError`, which both error shapes answer as a 400 naming the
parameter: the API's `{"error": ...}` and the Jaeger routes' envelope.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from types import UnionType
from typing import Any, Union, get_args, get_origin

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute


@dataclass(frozen=True, slots=True)
class AllowedParameters:
    names: frozenset[str]
    repeatable: frozenset[str]
    prefixes: tuple[str, ...]

    def describe(self) -> str:
        listed = sorted(self.names) + [f"{p}<name>" for p in self.prefixes]
        return "takes " + ", ".join(listed) if listed else "takes no query parameters"


# Where a route keeps what it takes once computed (routes compare by value: no dict key).
_ATTRIBUTE = "_tracehouse_allowed_parameters"


def _is_list(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin in (Union, UnionType):
        return any(_is_list(arg) for arg in get_args(annotation))
    return origin in (list, tuple, set, frozenset)


def _dependants(root: Dependant) -> Iterator[Dependant]:
    stack = [root]
    while stack:
        dependant = stack.pop()
        yield dependant
        stack.extend(dependant.dependencies)


def allowed_parameters(route: APIRoute) -> AllowedParameters:
    """The query parameters `route` takes (computed once per route)."""
    allowed: AllowedParameters | None = getattr(route, _ATTRIBUTE, None)
    if allowed is None:
        names: set[str] = set()
        repeatable: set[str] = set()
        for dependant in _dependants(route.dependant):
            for param in dependant.query_params:
                names.add(param.alias)
                if _is_list(param.field_info.annotation):
                    repeatable.add(param.alias)
        extra = route.openapi_extra or {}
        for param in extra.get("parameters", []):
            if param.get("in") == "query":
                names.add(param["name"])
                if param.get("schema", {}).get("type") == "array":
                    repeatable.add(param["name"])
        allowed = AllowedParameters(frozenset(names), frozenset(repeatable),
                                    tuple(extra.get("x-parameter-prefixes", ())))
        setattr(route, _ATTRIBUTE, allowed)
    return allowed


def _refuse(name: str, message: str, value: str) -> RequestValidationError:
    return RequestValidationError([{"type": "extra_forbidden", "loc": ("query", name), "msg": message,
                                    "input": value}])


async def reject_unknown_parameters(request: Request) -> None:
    """A dependency: 400 on a parameter the matched route does not take, or a single-valued
    one given twice."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    allowed = allowed_parameters(route)
    seen: set[str] = set()
    for name, value in request.query_params.multi_items():
        if name in allowed.names:
            if name in seen and name not in allowed.repeatable:
                raise _refuse(name, "given more than once; give it once", value)
            seen.add(name)
        elif not any(name.startswith(prefix) for prefix in allowed.prefixes):
            raise _refuse(name, f"unknown parameter; {route.path} {allowed.describe()}", value)
