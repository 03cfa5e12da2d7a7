# The C module's interface (_otlpwire.c).
from collections.abc import Callable
from typing import Any

N_COLUMNS: int

def append_spans(body: bytes, columns: list[list[Any]], drop_resource_key: str) -> int: ...
def configure(json_encode: Callable[[Any], str], format_double: Callable[[float], str],
              finite_or_text: Callable[[float], float | str], base64_text: Callable[[bytes], str]) -> None: ...
def scan_texts(body: bytes) -> list[str]: ...
