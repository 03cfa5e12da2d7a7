"""ClickHouse's HTTP interface (the part clients of a read-only server use), as an ASGI app.

`GET /?query=...` or `POST /` with the query in the body (after the `query` parameter, as
ClickHouse joins them); `database`, `default_format`, `param_<name>` (typed parameters),
`query_id`, `client_protocol_version` (Native blocks as that revision reads them), HTTP
compression of the response (`enable_http_compression=1` and Accept-Encoding) and of the
request body (Content-Encoding); every other parameter is a setting. Credentials come as
X-ClickHouse-User/X-ClickHouse-Key, Basic, or the `user`/`password` parameters. Errors are
ClickHouse's: `Code: N. DB::Exception: ...` with X-ClickHouse-Exception-Code and the status
ClickHouse gives that code.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import re
import uuid
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import lz4.frame
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tracehouse.extensions.clickhouse_http import native
from tracehouse.extensions.clickhouse_http.engine import Engine, EngineError, Query, Result, ServerInfo
from tracehouse.extensions.clickhouse_http.statement import StatementError, parse

try:  # Python 3.14 has zstd in the standard library; before, clickhouse-connect brings the backport.
    from compression import zstd  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover - depends on the Python version
    from backports import zstd  # type: ignore[no-redef,unused-ignore]

# Parameters the HTTP interface takes itself; any other is a setting (ClickHouse's rule).
HTTP_PARAMS = frozenset({
    "query", "database", "default_format", "user", "password", "query_id", "quota_key", "session_id",
    "session_timeout", "session_check", "compress", "decompress", "enable_http_compression",
    "http_zlib_compression_level", "client_protocol_version", "wait_end_of_query", "buffer_size",
    "send_progress_in_http_headers", "http_headers_progress_interval_ms", "role", "default_role",
})

# ClickHouse's codes -> HTTP status (its HTTPHandler's table, for the codes this endpoint gives).
_STATUS = {
    516: 401, 192: 401, 193: 401, 194: 401,  # AUTHENTICATION_FAILED, UNKNOWN_USER, WRONG_PASSWORD, REQUIRED_PASSWORD
    164: 403, 497: 403,  # READONLY, ACCESS_DENIED
    48: 501,  # NOT_IMPLEMENTED
    60: 404, 81: 404,  # UNKNOWN_TABLE, UNKNOWN_DATABASE
    62: 400, 36: 400, 27: 400, 6: 400, 26: 400, 38: 400, 41: 400, 43: 400, 46: 400, 47: 400, 53: 400,
    73: 400, 115: 400, 184: 400, 215: 400, 456: 400, 457: 400,  # syntax, bad argument, parse, unknown name...
    159: 500, 241: 500, 396: 500,  # TIMEOUT_EXCEEDED, MEMORY_LIMIT_EXCEEDED, TOO_MANY_ROWS_OR_BYTES
}

_CONTENT_TYPES = {
    "TabSeparated": "text/tab-separated-values; charset=UTF-8",
    "TSV": "text/tab-separated-values; charset=UTF-8",
    "CSV": "text/csv; charset=UTF-8; header=absent",
    "CSVWithNames": "text/csv; charset=UTF-8; header=present",
    "Native": "application/octet-stream",
    "RowBinary": "application/octet-stream",
    "Parquet": "application/octet-stream",
    "Arrow": "application/octet-stream",
    "ArrowStream": "application/octet-stream",
}

def _zlib_bounded(wbits: int) -> Callable[[bytes, int], bytes]:
    def decompress(data: bytes, limit: int) -> bytes:
        return zlib.decompressobj(wbits).decompress(data, limit + 1)
    return decompress


# Content-Encoding -> (compress, decompress at most `limit` + 1 bytes: a small body must not
# expand into memory without bound). ClickHouse's `deflate` is a zlib stream.
_CODECS: dict[str, tuple[Callable[[bytes], bytes], Callable[[bytes, int], bytes]]] = {
    "gzip": (lambda b: zlib.compress(b, wbits=31), _zlib_bounded(31)),
    "deflate": (zlib.compress, _zlib_bounded(15)),
    "zstd": (zstd.compress, lambda b, limit: zstd.ZstdDecompressor().decompress(b, max_length=limit + 1)),
    "lz4": (lz4.frame.compress, lambda b, limit: lz4.frame.LZ4FrameDecompressor().decompress(b, max_length=limit + 1)),
}
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FORMAT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class ClickHouseHttpError(Exception):
    def __init__(self, code: int, name: str, message: str, status: int | None = None):
        super().__init__(message)
        self.code = code
        self.name = name
        self.status = status or _STATUS.get(code, 500)

    def text(self) -> str:
        suffix = f" ({self.name})" if self.name and f"({self.name})" not in str(self) else ""
        return f"Code: {self.code}. DB::Exception: {str(self)}{suffix}\n"


@dataclass(frozen=True, slots=True)
class EndpointSettings:
    username: str
    password: str
    database: str
    display_name: str
    max_body_bytes: int


def _content_type(fmt: str) -> str:
    if fmt.startswith("JSON"):
        return "application/json; charset=UTF-8"
    if fmt.startswith(("RowBinary", "Native")):
        return "application/octet-stream"
    return _CONTENT_TYPES.get(fmt, "text/plain; charset=UTF-8")


def _credentials(request: Request) -> tuple[str, str]:
    headers = request.headers
    if "x-clickhouse-user" in headers or "x-clickhouse-key" in headers:
        return headers.get("x-clickhouse-user", "default"), headers.get("x-clickhouse-key", "")
    auth = headers.get("authorization", "")
    if auth[:6].lower() == "basic ":
        try:
            user, sep, password = base64.b64decode(auth[6:].strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise ClickHouseHttpError(516, "AUTHENTICATION_FAILED", "Authorization: Basic credentials are not base64 of user:password") from None
        if sep:
            return user, password
        raise ClickHouseHttpError(516, "AUTHENTICATION_FAILED", "Authorization: Basic credentials are not base64 of user:password")
    params = request.query_params
    return params.get("user", "default"), params.get("password", "")


class ClickHouseHttpApp:
    def __init__(self, engine: Engine, info: ServerInfo, settings: EndpointSettings, executor: ThreadPoolExecutor,
                 logger: Any = None):
        self._engine = engine
        self._info = info
        self._settings = settings
        self._executor = executor
        self._log = logger or structlog.get_logger("tracehouse.clickhouse_http")
        self.asgi = Starlette(routes=[
            Route("/ping", self._ping, methods=["GET", "HEAD"]),
            Route("/", self._query, methods=["GET", "POST", "HEAD"]),
        ])
        self.asgi.add_exception_handler(404, self._not_found)

    async def _ping(self, _request: Request) -> Response:
        return Response(b"Ok.\n", media_type="text/plain; charset=UTF-8")

    async def _not_found(self, request: Request, _exc: Exception) -> Response:
        return Response(f"There is no handle {request.url.path}\n\nUse / or /ping.\n", status_code=404,
                        media_type="text/plain; charset=UTF-8")

    def _authenticate(self, request: Request) -> str:
        user, password = _credentials(request)
        want = self._settings
        ok = hmac.compare_digest(user.encode(), want.username.encode()) & hmac.compare_digest(
            password.encode(), want.password.encode())
        if not ok:
            raise ClickHouseHttpError(516, "AUTHENTICATION_FAILED",
                                      f"{user}: Authentication failed: password is incorrect, or there is no user with such name.")
        return user

    async def _query(self, request: Request) -> Response:
        query_id = request.query_params.get("query_id") or str(uuid.uuid4())
        headers = {"X-ClickHouse-Query-Id": query_id, "X-ClickHouse-Timezone": self._info.timezone,
                   "X-ClickHouse-Server-Display-Name": self._settings.display_name}
        log = self._log.bind(query_id=query_id)
        user = ""  # known once authenticated
        if request.method in ("GET", "HEAD") and not request.query_params.get("query", "").strip():
            return Response(b"Ok.\n", media_type="text/plain; charset=UTF-8")  # ClickHouse's answer, unauthenticated
        try:
            user = self._authenticate(request)
            body = await self._body(request)
            sql = request.query_params.get("query", "")
            if body:
                sql = f"{sql}\n{body}" if sql else body
            query, fmt, revision = self._prepare(request, sql)
            headers["X-ClickHouse-Format"] = fmt
            result, payload = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._run, query, fmt, revision)
        except (ClickHouseHttpError, StatementError, EngineError, native.NativeError) as exc:
            error = exc if isinstance(exc, ClickHouseHttpError) else ClickHouseHttpError(
                getattr(exc, "code", 1002), getattr(exc, "name", ""), _strip_code(str(exc)))
            log.info("ClickHouse HTTP query refused", code=error.code, status=error.status, user=user,
                     error=str(error)[:300])
            headers.pop("X-ClickHouse-Format", None)
            headers["X-ClickHouse-Exception-Code"] = str(error.code)
            return Response(error.text().encode(), status_code=error.status, headers=headers,
                            media_type="text/plain; charset=UTF-8")
        headers["X-ClickHouse-Summary"] = json.dumps({
            "read_rows": str(result.rows_read), "read_bytes": str(result.bytes_read), "written_rows": "0",
            "written_bytes": "0", "total_rows_to_read": str(result.rows_read), "result_bytes": str(len(payload)),
            "elapsed_ns": str(result.elapsed_ns)}, separators=(",", ":"))
        log.debug("ClickHouse HTTP query", format=fmt, rows_read=result.rows_read, elapsed_ns=result.elapsed_ns)
        payload = self._compress(request, payload, headers)
        return Response(payload, media_type=_content_type(fmt), headers=headers)

    def _run(self, query: Query, fmt: str, revision: int) -> tuple[Result, bytes]:
        """In a worker thread: the query, then its Native blocks as the client's revision reads them."""
        result = self._engine.run(query)
        payload = native.for_revision(result.body, revision) if fmt == "Native" and revision else result.body
        return result, payload

    async def _body(self, request: Request) -> str:
        if request.method != "POST":
            return ""
        limit = self._settings.max_body_bytes
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ClickHouseHttpError(36, "BAD_ARGUMENTS", f"the request body exceeds max_body_bytes ({limit} bytes)",
                                          status=413)
            chunks.append(chunk)
        raw = b"".join(chunks)
        encoding = request.headers.get("content-encoding", "").strip().lower()
        if raw and encoding and encoding != "identity":
            codec = _CODECS.get(encoding)
            if codec is None:
                raise ClickHouseHttpError(36, "BAD_ARGUMENTS", f"Content-Encoding {encoding!r} is not supported "
                                                               f"(supported: {', '.join(_CODECS)})", status=415)
            try:
                raw = codec[1](raw, limit)
            except Exception:
                raise ClickHouseHttpError(36, "BAD_ARGUMENTS", f"the request body is not valid {encoding}") from None
            if len(raw) > limit:
                raise ClickHouseHttpError(36, "BAD_ARGUMENTS", f"the decompressed request body exceeds max_body_bytes "
                                                               f"({limit} bytes)", status=413)
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise ClickHouseHttpError(36, "BAD_ARGUMENTS", "the query is not UTF-8 text") from None

    def _prepare(self, request: Request, sql: str) -> tuple[Query, str, int]:
        params = request.query_params
        for flag in ("compress", "decompress"):
            if params.get(flag, "0") not in ("", "0"):
                raise ClickHouseHttpError(36, "BAD_ARGUMENTS", f"{flag}=1 (ClickHouse's native block compression) is not "
                                                               f"supported here; use HTTP compression "
                                                               f"(enable_http_compression=1 with Accept-Encoding)")
        statement = parse(sql)
        default_format = params.get("default_format") or request.headers.get("x-clickhouse-format") or "TabSeparated"
        if not _FORMAT_NAME.match(default_format):
            raise ClickHouseHttpError(73, "UNKNOWN_FORMAT", f"Unknown format {default_format!r}")
        database = params.get("database") or request.headers.get("x-clickhouse-database") or self._settings.database
        if not _IDENTIFIER.match(database):
            raise ClickHouseHttpError(81, "UNKNOWN_DATABASE", f"Database {database!r} does not exist", status=400)
        try:
            revision = int(params.get("client_protocol_version") or 0)
        except ValueError:
            raise ClickHouseHttpError(36, "BAD_ARGUMENTS", "client_protocol_version must be a number") from None
        bound = {k[len("param_"):]: v for k, v in params.multi_items() if k.startswith("param_")}
        settings = {k: v for k, v in params.multi_items() if k not in HTTP_PARAMS and not k.startswith("param_")}
        settings.update(statement.settings)
        query = Query(sql=statement.text, database=database, default_format=default_format, params=bound,
                      settings=settings)
        return query, statement.format or default_format, revision

    def _compress(self, request: Request, payload: bytes, headers: dict[str, str]) -> bytes:
        if request.query_params.get("enable_http_compression", "0") in ("", "0") or not payload:
            return payload
        for encoding in _accepted(request.headers.get("accept-encoding", "")):
            codec = _CODECS.get(encoding)
            if codec is not None:
                headers["Content-Encoding"] = encoding
                return codec[0](payload)
        return payload


def _accepted(header: str) -> list[str]:
    """Accept-Encoding's codings, in the client's order (q=0 ones left out)."""
    codings = []
    for part in header.split(","):
        name, _, rest = part.strip().partition(";")
        if name and not re.search(r"q\s*=\s*0(\.0*)?\s*$", rest):
            codings.append(name.strip().lower())
    return codings


def _strip_code(text: str) -> str:
    """`Code: N. DB::Exception: msg (NAME)` -> `msg (NAME)`, to be framed again."""
    return re.sub(r"^Code: \d+\. DB::Exception: ", "", text)
