"""The MLflow tracking server's REST API, the subset MLflow 3 clients use for tracing,
prompts, runs and assessments (ingest/mlflow/README.md lists it).

A plain ASGI app with a route table. `/v1/traces` (OTLP, MLflow's span route) is the OTLP
receiver's own app; the experiment id MLflow sends as a header is kept as the resource
attribute `mlflow.experimentId`. Everything else is JSON in MLflow's shapes, answered
after the tracking store (ClickHouse) has it. Routes outside the subset answer MLflow's
ENDPOINT_NOT_FOUND, on which the client degrades as it does with an older server.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import parse_qs, unquote

from tracehouse.core.auth import ANONYMOUS, Action, Principal
from tracehouse.core.errors import (
    BadRequestError,
    PermanentError,
    PermissionDeniedError,
    RetryableError,
    UnauthenticatedError,
)
from tracehouse.core.pdata import TraceBatch
from tracehouse.ingest.mlflow import filters
from tracehouse.ingest.mlflow.assessments import assessment_json, score_row
from tracehouse.ingest.mlflow.config import MlflowReceiverConfig
from tracehouse.ingest.mlflow.errors import MlflowError, invalid, not_found
from tracehouse.ingest.mlflow.store import (
    ALIAS_PREFIX,
    DEFAULT_EXPERIMENT_ID,
    LINKED_PROMPTS_TAG,
    PARENT_RUN_TAG,
    PROMPT_TAG,
    TrackingStore,
    key_values,
    now_ms,
    otel_trace_id,
    parse_duration_ms,
    parse_iso_ms,
)
from tracehouse.ingest.mlflow.traces_json import spans_request
from tracehouse.ingest.otlp.receiver import ExportService

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
EXPERIMENT_ATTRIBUTE = "mlflow.experimentId"
_API2 = "/api/2.0/mlflow"
_API3 = "/api/3.0/mlflow"
_ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, list[str]]
    body: bytes
    principal: Principal
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def tenant(self) -> str:
        return self.principal.tenant

    def json(self) -> dict[str, Any]:
        if not self.body:
            return {}
        try:
            doc = json.loads(self.body)
        except ValueError as exc:
            raise MlflowError("MALFORMED_REQUEST", f"request body is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise MlflowError("MALFORMED_REQUEST", "request body must be a JSON object")
        return doc

    def arg(self, name: str, default: str | None = None) -> str:
        """A parameter from the query string or the JSON body (MLflow accepts both)."""
        if name in self.query:
            return self.query[name][0]
        if self.method != "GET":
            value = self.json().get(name)
            if value is not None:
                return str(value)
        if default is None:
            raise invalid(f"Missing value for required parameter '{name}'.")
        return default

    def args(self, name: str) -> list[str]:
        if name in self.query:
            return self.query[name]
        value = self.json().get(name) if self.method != "GET" else None
        return [str(v) for v in value] if isinstance(value, list) else []


Handler = Callable[["MlflowApp", Call], Awaitable[Any]]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    action: Action


_ROUTES: list[Route] = []


def route(method: str, path: str, action: Action = Action.INGEST) -> Callable[[Handler], Handler]:
    """`<name>` segments become params; `<name:path>` takes the rest of the path."""
    regex = re.sub(r"<(\w+)(:path)?>", lambda m: f"(?P<{m[1]}>{'.+' if m[2] else '[^/]+'})", path)

    def register(fn: Handler) -> Handler:
        for m in method.split("|"):
            _ROUTES.append(Route(m, re.compile(f"^{regex}$"), fn, action))
        return fn
    return register


READ = Action.READ


class MlflowApp:
    def __init__(self, config: MlflowReceiverConfig, store: TrackingStore, exports: ExportService,
                 otlp: Any, logger: Any, run: Callable[..., Awaitable[Any]]):
        self._config = config
        self.store = store
        self._exports = exports
        self._otlp = otlp  # the OTLP/HTTP app serving /v1/traces
        self._log = logger
        self._run = run  # runs a store call on a worker thread

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await self._run(fn, *args, **kwargs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/v1/traces":
            await self._otlp(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            status, body, content_type = await self._handle(scope, receive)
        except MlflowError as exc:
            status, body, content_type = exc.status, json.dumps(exc.body()).encode(), "application/json"
            if exc.status >= 500:
                self._log.warning("MLflow request failed", method=scope["method"], path=path, error=exc.message)
        headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
        if status == 503:
            headers.append((b"retry-after", b"1"))
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="tracehouse"'))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        self._log.debug("MLflow request", method=scope["method"], path=path, status=status,
                        ms=round((time.perf_counter() - started) * 1000, 1))

    async def _handle(self, scope: Scope, receive: Receive) -> tuple[int, bytes, str]:
        method, path = scope["method"], scope["path"]
        if path == "/version" and method == "GET":
            return 200, self._config.server_version.encode(), "text/plain; charset=utf-8"
        if path in ("/health", "/healthz") and method == "GET":
            return 200, b"OK", "text/plain; charset=utf-8"
        for r in _ROUTES:
            if r.method == method and (m := r.pattern.match(path)):
                break
        else:
            raise MlflowError("ENDPOINT_NOT_FOUND", f"{method} {path} is not served by tracehouse's MLflow endpoint "
                                                    "(docs/mlflow.md lists what is)")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        principal = self._authenticate(headers, r.action)
        body = await self._read_body(receive, headers)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        call = Call(method, path, {k: unquote(v) for k, v in m.groupdict().items()}, query, body, principal, headers)
        try:
            result = await r.handler(self, call)
        except (MlflowError, asyncio.CancelledError):
            raise
        except RetryableError as exc:
            raise MlflowError("TEMPORARILY_UNAVAILABLE", f"{exc}; retry later") from None
        except (BadRequestError, PermanentError) as exc:
            raise invalid(str(exc)) from None
        except Exception as exc:
            # ClickHouse down or a bug: the client retries 5xx; the data it sent is not lost.
            self._log.exception("MLflow request failed", method=method, path=path, error=str(exc))
            raise MlflowError("TEMPORARILY_UNAVAILABLE", "the tracking store could not answer; retry later") from None
        if isinstance(result, bytes):
            return 200, result, "application/octet-stream"
        return 200, json.dumps(result).encode(), "application/json"

    def _authenticate(self, headers: Mapping[str, str], action: Action) -> Principal:
        if not self._exports.needs_auth:
            return ANONYMOUS
        try:
            principal = self._exports.identify(headers)
            # The client reads back what it writes (its experiment, run, prompt versions) with
            # the key it writes with: any key may read this tracking metadata of its tenant;
            # writing needs an ingest (or full) key. Spans are read through the query API.
            if action is not READ:
                principal.require(Action.INGEST)
            return principal
        except UnauthenticatedError as exc:
            raise MlflowError("UNAUTHENTICATED", str(exc)) from None
        except PermissionDeniedError as exc:
            raise MlflowError("PERMISSION_DENIED", str(exc)) from None

    async def _read_body(self, receive: Receive, headers: Mapping[str, str]) -> bytes:
        limit = self._config.max_request_body_size
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise MlflowError("RESOURCE_EXHAUSTED", f"body of {declared} bytes exceeds the limit of {limit} bytes")
        chunks, size = [], 0
        async with asyncio.timeout(60):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise invalid("client disconnected before sending the whole body")
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise MlflowError("RESOURCE_EXHAUSTED", f"body exceeds the limit of {limit} bytes")
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)

    async def export_spans(self, call: Call, body: bytes, experiment_id: str) -> None:
        """traces.json spans into the pipeline, as the tenant's; stored once with their OTLP twins."""
        request = spans_request(body, {"telemetry.sdk.name": "mlflow", EXPERIMENT_ATTRIBUTE: experiment_id})
        batch = TraceBatch.from_request(request)
        batch.deadline = time.monotonic() + self._config.request_timeout
        async with asyncio.timeout(self._config.request_timeout):
            await self._exports.export(batch, call.principal)


def tag_experiment(scope: Scope, batch: TraceBatch) -> None:
    """The experiment id MLflow sends beside its spans, as a resource attribute."""
    experiment = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-mlflow-experiment-id"), "")
    if not experiment:
        return
    from opentelemetry.proto.common.v1.common_pb2 import KeyValue

    for rs in batch.resources():
        attrs = rs.resource.attributes
        kept = [kv for kv in attrs if kv.key != EXPERIMENT_ATTRIBUTE]
        del attrs[:]
        attrs.extend(kept)
        attrs.append(KeyValue(key=EXPERIMENT_ATTRIBUTE))
        attrs[-1].value.string_value = experiment
    batch.mark_mutated()


# -- experiments ---------------------------------------------------------------------------

@route("GET", f"{_API2}/experiments/get-by-name", READ)
async def get_experiment_by_name(app: MlflowApp, c: Call) -> Any:
    return {"experiment": await app.call(app.store.get_experiment_by_name, c.tenant, c.arg("experiment_name"))}


@route("GET", f"{_API2}/experiments/get", READ)
async def get_experiment(app: MlflowApp, c: Call) -> Any:
    return {"experiment": await app.call(app.store.get_experiment, c.tenant, c.arg("experiment_id"))}


@route("POST", f"{_API2}/experiments/create")
async def create_experiment(app: MlflowApp, c: Call) -> Any:
    body = c.json()
    experiment_id = await app.call(app.store.create_experiment, c.tenant, str(body.get("name") or ""),
                                   key_values(body.get("tags")), str(body.get("artifact_location") or ""))
    return {"experiment_id": experiment_id}


@route("GET|POST", f"{_API2}/experiments/search", READ)
async def search_experiments(app: MlflowApp, c: Call) -> Any:
    view = c.arg("view_type", "ACTIVE_ONLY")
    found = await app.call(app.store.search_experiments, c.tenant, view)
    clauses = filters.parse(c.arg("filter", ""))

    def lookup(entity: str, key: str, e: dict[str, Any]) -> Any:
        if entity == "tags":
            return filters.tags_of(e).get(key)
        return {"name": e["name"], "experiment_id": e["experiment_id"], "creation_time": e["creation_time"],
                "last_update_time": e["last_update_time"]}.get(key)
    found = [e for e in found if filters.matches(clauses, partial(lookup, e=e))]
    return _page({"experiments": found}, "experiments", c)


@route("POST", f"{_API2}/experiments/update")
async def update_experiment(app: MlflowApp, c: Call) -> Any:
    await app.call(app.store.update_experiment, c.tenant, c.arg("experiment_id"), name=c.arg("new_name", "") or None)
    return {}


@route("POST", f"{_API2}/experiments/delete")
async def delete_experiment(app: MlflowApp, c: Call) -> Any:
    await app.call(app.store.update_experiment, c.tenant, c.arg("experiment_id"), stage="deleted")
    return {}


@route("POST", f"{_API2}/experiments/restore")
async def restore_experiment(app: MlflowApp, c: Call) -> Any:
    await app.call(app.store.update_experiment, c.tenant, c.arg("experiment_id"), stage="active")
    return {}


@route("POST", f"{_API2}/experiments/set-experiment-tag")
async def set_experiment_tag(app: MlflowApp, c: Call) -> Any:
    await app.call(app.store.update_experiment, c.tenant, c.arg("experiment_id"),
                   set_tags={c.arg("key"): c.arg("value", "")})
    return {}


@route("POST", f"{_API2}/experiments/delete-experiment-tag")
async def delete_experiment_tag(app: MlflowApp, c: Call) -> Any:
    await app.call(app.store.update_experiment, c.tenant, c.arg("experiment_id"), delete_tags=[c.arg("key")])
    return {}


# -- runs ----------------------------------------------------------------------------------

@route("POST", f"{_API2}/runs/create")
async def create_run(app: MlflowApp, c: Call) -> Any:
    body = c.json()
    run = await app.call(app.store.create_run, c.tenant, str(body.get("experiment_id") or DEFAULT_EXPERIMENT_ID),
                         str(body.get("run_name") or ""), str(body.get("user_id") or ""),
                         int(body.get("start_time") or now_ms()), key_values(body.get("tags")))
    return {"run": run}


@route("GET", f"{_API2}/runs/get", READ)
async def get_run(app: MlflowApp, c: Call) -> Any:
    return {"run": await app.call(app.store.get_run, c.tenant, c.arg("run_id", "") or c.arg("run_uuid"))}


def _run_id(c: Call) -> str:
    return c.arg("run_id", "") or c.arg("run_uuid")


@route("POST", f"{_API2}/runs/update")
async def update_run(app: MlflowApp, c: Call) -> Any:
    body = c.json()
    end = body.get("end_time")
    info = await app.call(app.store.update_run, c.tenant, _run_id(c), status=str(body.get("status") or ""),
                          end_time=int(end) if end is not None else None, run_name=str(body.get("run_name") or ""))
    return {"run_info": info}


@route("POST", f"{_API2}/runs/delete")
async def delete_run(app: MlflowApp, c: Call) -> Any:
    await app.call(app.store.update_run, c.tenant, _run_id(c), stage="deleted")
    return {}


@route("POST", f"{_API2}/runs/restore")
async def restore_run(app: MlflowApp, c: Call) -> Any:
    await app.call(app.store.update_run, c.tenant, _run_id(c), stage="active")
    return {}


@route("POST", f"{_API2}/runs/log-metric")
async def log_metric(app: MlflowApp, c: Call) -> Any:
    body = c.json()
    if "key" not in body or "value" not in body:
        raise invalid("Missing value for required parameter 'key' or 'value'.")
    await app.call(app.store.log_batch, c.tenant, _run_id(c), [body], [], [])
    return {}


@route("POST", f"{_API2}/runs/log-parameter")
async def log_param(app: MlflowApp, c: Call) -> Any:
    await app.call(app.store.log_batch, c.tenant, _run_id(c), [], [{"key": c.arg("key"), "value": c.arg("value")}], [])
    return {}


@route("POST", f"{_API2}/runs/set-tag")
async def set_run_tag(app: MlflowApp, c: Call) -> Any:
    await app.call(app.store.log_batch, c.tenant, _run_id(c), [], [], [{"key": c.arg("key"), "value": c.arg("value")}])
    return {}


@route("POST", f"{_API2}/runs/delete-tag")
async def delete_run_tag(app: MlflowApp, c: Call) -> Any:
    await app.call(app.store.set_run_tags, c.tenant, _run_id(c), {c.arg("key"): ""}, True)
    return {}


@route("POST", f"{_API2}/runs/log-batch")
async def log_batch(app: MlflowApp, c: Call) -> Any:
    body = c.json()
    await app.call(app.store.log_batch, c.tenant, _run_id(c), body.get("metrics") or [], body.get("params") or [],
                   body.get("tags") or [])
    return {}


@route("POST", f"{_API2}/runs/outputs")
async def log_outputs(app: MlflowApp, c: Call) -> Any:
    await app.call(app.store.set_run_outputs, c.tenant, _run_id(c), c.json().get("models") or [])
    return {}


@route("GET", f"{_API2}/metrics/get-history", READ)
async def metric_history(app: MlflowApp, c: Call) -> Any:
    return {"metrics": await app.call(app.store.metric_history, c.tenant, _run_id(c), c.arg("metric_key"))}


@route("POST", f"{_API2}/runs/search", READ)
async def search_runs(app: MlflowApp, c: Call) -> Any:
    body = c.json()
    runs = await app.call(app.store.search_runs, c.tenant, [str(e) for e in body.get("experiment_ids") or []],
                          str(body.get("run_view_type") or "ACTIVE_ONLY"))
    clauses = filters.parse(body.get("filter"))

    def lookup(entity: str, key: str, run: dict[str, Any]) -> Any:
        data = run["data"]
        if entity == "tags":
            return filters.tags_of(data).get(key)
        if entity == "params":
            return {p["key"]: p["value"] for p in data["params"]}.get(key)
        if entity == "metrics":
            return {m["key"]: m["value"] for m in data["metrics"]}.get(key)
        info = run["info"]
        return {**info, "name": info["run_name"], "id": info["run_id"]}.get(key)
    runs = [r for r in runs if filters.matches(clauses, partial(lookup, run=r))]
    return _page({"runs": runs}, "runs", c)


# -- traces --------------------------------------------------------------------------------

@route("POST", f"{_API3}/traces")
async def start_trace(app: MlflowApp, c: Call) -> Any:
    info = (c.json().get("trace") or {}).get("trace_info")
    if not isinstance(info, dict) or not info.get("trace_id"):
        raise invalid("trace.trace_info.trace_id is required")
    started = await app.call(app.store.start_trace, c.tenant, info)
    # Assessments logged while the trace was active (mlflow.log_feedback / log_expectation on
    # the active trace id) arrive inside its info, as MLflow's server stores them too.
    assessments = [score_row(str(info["trace_id"]), a) for a in info.get("assessments") or []]
    if assessments:
        await app.call(app.store.write_scores, c.tenant, assessments)
        started["assessments"] = [assessment_json(r) for r in assessments]
    return {"trace": {"trace_info": started}}


@route("GET", f"{_API3}/traces/get", READ)
async def get_trace(app: MlflowApp, c: Call) -> Any:
    request_id = c.arg("trace_id")
    info = await app.call(app.store.get_trace_info, c.tenant, request_id)
    return {"trace": {"trace_info": info, "spans": await app.call(app.store.trace_spans, c.tenant, request_id)}}


@route("GET", f"{_API3}/traces/batchGet", READ)
async def batch_get_traces(app: MlflowApp, c: Call) -> Any:
    traces = []
    for request_id in c.args("trace_ids"):
        try:
            info = await app.call(app.store.get_trace_info, c.tenant, request_id)
        except MlflowError:
            continue  # MLflow answers the traces it has
        traces.append({"trace_info": info, "spans": await app.call(app.store.trace_spans, c.tenant, request_id)})
    return {"traces": traces}


@route("GET", f"{_API3}/traces/<trace_id>", READ)
async def get_trace_info(app: MlflowApp, c: Call) -> Any:
    return {"trace": {"trace_info": await app.call(app.store.get_trace_info, c.tenant, c.params["trace_id"])}}


@route("PATCH", f"{_API3}/traces/<trace_id>/tags")
@route("PATCH", f"{_API2}/traces/<trace_id>/tags")
async def set_trace_tag(app: MlflowApp, c: Call) -> Any:
    await app.call(app.store.update_trace_tags, c.tenant, c.params["trace_id"], {c.arg("key"): c.arg("value", "")})
    return {}


@route("DELETE", f"{_API3}/traces/<trace_id>/tags")
@route("DELETE", f"{_API2}/traces/<trace_id>/tags")
async def delete_trace_tag(app: MlflowApp, c: Call) -> Any:
    await app.call(app.store.update_trace_tags, c.tenant, c.params["trace_id"], delete=[c.arg("key")])
    return {}


@route("POST", f"{_API2}/traces/link-prompts")
async def link_prompts(app: MlflowApp, c: Call) -> Any:
    body = c.json()
    request_id = str(body.get("trace_id") or "")
    versions = [{"name": str(v.get("name", "")), "version": str(v.get("version", ""))}
                for v in body.get("prompt_versions") or [] if isinstance(v, dict)]
    info = await app.call(app.store.get_trace_info, c.tenant, request_id)
    linked = json.loads(info["tags"].get(LINKED_PROMPTS_TAG) or "[]")
    for v in versions:
        if v not in linked:
            linked.append(v)
    await app.call(app.store.update_trace_tags, c.tenant, request_id, {LINKED_PROMPTS_TAG: json.dumps(linked)})
    return {}


@route("POST", f"{_API2}/traces/link-to-run")
async def link_traces_to_run(app: MlflowApp, c: Call) -> Any:
    body = c.json()
    run_id = str(body.get("run_id") or "")
    for request_id in body.get("trace_ids") or []:
        info = await app.call(app.store.get_trace_info, c.tenant, str(request_id))
        info["trace_metadata"]["mlflow.sourceRun"] = run_id
        await app.call(app.store.start_trace, c.tenant, info)
    return {}


@route("POST", f"{_API3}/traces/search", READ)
async def search_traces(app: MlflowApp, c: Call) -> Any:
    body = c.json()
    ids = [str(e) for e in body.get("experiment_ids") or []]
    ids += [str((loc.get("mlflow_experiment") or {}).get("experiment_id")) for loc in body.get("locations") or []
            if isinstance(loc, dict) and loc.get("mlflow_experiment")]
    clauses = filters.parse(body.get("filter"))
    run = next((str(cl.value) for cl in clauses if cl.key == "mlflow.sourceRun" and cl.op == "="), "")
    traces = await app.call(app.store.search_traces, c.tenant, ids, run, _MAX_TRACES_SEARCHED)
    traces = [t for t in traces if filters.matches(clauses, partial(_trace_field, t))]
    return _page({"traces": traces}, "traces", c)


_MAX_TRACES_SEARCHED = 10_000


def _trace_field(info: dict[str, Any], entity: str, key: str) -> Any:
    if entity == "tags":
        return info["tags"].get(key)
    if entity == "metadata":
        return info["trace_metadata"].get(key)
    return {"status": info["state"], "state": info["state"], "name": info["tags"].get("mlflow.traceName"),
            "trace_id": info["trace_id"], "request_id": info["trace_id"], "timestamp_ms": parse_iso_ms(info["request_time"]),
            "execution_time_ms": parse_duration_ms(info["execution_duration"])}.get(key)


@route("POST", f"{_API3}/traces/batchGetInfos", READ)
async def batch_get_trace_infos(app: MlflowApp, c: Call) -> Any:
    infos = []
    for request_id in c.json().get("trace_ids") or []:
        try:
            infos.append(await app.call(app.store.get_trace_info, c.tenant, str(request_id)))
        except MlflowError:
            continue
    return {"trace_infos": infos}


# -- assessments ---------------------------------------------------------------------------

@route("POST", f"{_API3}/traces/<trace_id>/assessments")
async def create_assessment(app: MlflowApp, c: Call) -> Any:
    row = score_row(c.params["trace_id"], c.json().get("assessment") or {})
    await app.call(app.store.write_score, c.tenant, row)
    return {"assessment": assessment_json(row)}


async def _assessment(app: MlflowApp, c: Call) -> dict[str, Any]:
    rows = await app.call(app.store.score_rows, c.tenant, [otel_trace_id(c.params["trace_id"])],
                          c.params["assessment_id"])
    if not rows:
        raise not_found(f"Assessment with ID '{c.params['assessment_id']}' not found")
    return dict(rows[0])


@route("GET", f"{_API3}/traces/<trace_id>/assessments/<assessment_id>", READ)
async def get_assessment(app: MlflowApp, c: Call) -> Any:
    return {"assessment": assessment_json(await _assessment(app, c))}


@route("PATCH", f"{_API3}/traces/<trace_id>/assessments/<assessment_id>")
async def update_assessment(app: MlflowApp, c: Call) -> Any:
    row = score_row(c.params["trace_id"], {**(c.json().get("assessment") or {}),
                                           "assessment_id": c.params["assessment_id"]}, await _assessment(app, c))
    await app.call(app.store.write_score, c.tenant, row)
    return {"assessment": assessment_json(row)}


@route("DELETE", f"{_API3}/traces/<trace_id>/assessments/<assessment_id>")
async def delete_assessment(app: MlflowApp, c: Call) -> Any:
    row = await _assessment(app, c)
    row.pop("Tenant", None)
    await app.call(app.store.write_score, c.tenant, {**row, "Deleted": 1})
    return {}


# -- registered models and versions: the prompt registry -----------------------------------

@route("GET", f"{_API2}/registered-models/get", READ)
async def get_registered_model(app: MlflowApp, c: Call) -> Any:
    return {"registered_model": await app.call(app.store.get_registered_model, c.tenant, c.arg("name"))}


@route("POST", f"{_API2}/registered-models/create")
async def create_registered_model(app: MlflowApp, c: Call) -> Any:
    body = c.json()
    model = await app.call(app.store.create_registered_model, c.tenant, str(body.get("name") or ""),
                           str(body.get("description") or ""), key_values(body.get("tags")))
    return {"registered_model": model}


@route("POST", f"{_API2}/registered-models/set-tag")
async def set_registered_model_tag(app: MlflowApp, c: Call) -> Any:
    await app.call(app.store.update_registered_model, c.tenant, c.arg("name"), set_tags={c.arg("key"): c.arg("value")})
    return {}


@route("DELETE", f"{_API2}/registered-models/delete-tag")
async def delete_registered_model_tag(app: MlflowApp, c: Call) -> Any:
    await app.call(app.store.update_registered_model, c.tenant, c.arg("name"), delete_tags=[c.arg("key")])
    return {}


@route("PATCH", f"{_API2}/registered-models/update")
async def update_registered_model(app: MlflowApp, c: Call) -> Any:
    model = await app.call(app.store.update_registered_model, c.tenant, c.arg("name"),
                           description=c.arg("description", ""))
    return {"registered_model": model}


@route("DELETE", f"{_API2}/registered-models/delete")
async def delete_registered_model(app: MlflowApp, c: Call) -> Any:
    await app.call(app.store.update_registered_model, c.tenant, c.arg("name"), deleted=True)
    return {}


@route("GET|POST", f"{_API2}/registered-models/search", READ)
async def search_registered_models(app: MlflowApp, c: Call) -> Any:
    models = await app.call(app.store.search_registered_models, c.tenant)
    clauses = filters.parse(c.arg("filter", ""))
    models = [m for m in models if filters.matches(clauses, partial(_tag_or_field, m))]
    return _page({"registered_models": models}, "registered_models", c)


@route("POST", f"{_API2}/registered-models/alias")
async def set_alias(app: MlflowApp, c: Call) -> Any:
    await app.call(app.store.update_registered_model, c.tenant, c.arg("name"),
                   set_tags={ALIAS_PREFIX + c.arg("alias"): c.arg("version")})
    return {}


@route("DELETE", f"{_API2}/registered-models/alias")
async def delete_alias(app: MlflowApp, c: Call) -> Any:
    await app.call(app.store.update_registered_model, c.tenant, c.arg("name"), delete_tags=[ALIAS_PREFIX + c.arg("alias")])
    return {}


@route("GET", f"{_API2}/registered-models/alias", READ)
async def get_by_alias(app: MlflowApp, c: Call) -> Any:
    name, alias = c.arg("name"), c.arg("alias")
    model = await app.call(app.store.get_registered_model, c.tenant, name)
    version = next((a["version"] for a in model.get("aliases", []) if a["alias"] == alias), None)
    if version is None:
        raise not_found(f"Registered model alias {alias} not found.")
    return {"model_version": await app.call(app.store.get_model_version, c.tenant, name, version)}


@route("GET|POST", f"{_API2}/registered-models/get-latest-versions", READ)
async def latest_versions(app: MlflowApp, c: Call) -> Any:
    versions = await app.call(app.store.model_versions, c.tenant, c.arg("name"))
    return {"model_versions": versions[-1:]}


@route("POST", f"{_API2}/model-versions/create")
async def create_model_version(app: MlflowApp, c: Call) -> Any:
    body = c.json()
    version = await app.call(app.store.create_model_version, c.tenant, str(body.get("name") or ""),
                             str(body.get("source") or ""), str(body.get("run_id") or ""),
                             str(body.get("description") or ""), key_values(body.get("tags")))
    return {"model_version": version}


@route("GET", f"{_API2}/model-versions/get", READ)
async def get_model_version(app: MlflowApp, c: Call) -> Any:
    return {"model_version": await app.call(app.store.get_model_version, c.tenant, c.arg("name"), c.arg("version"))}


@route("GET", f"{_API2}/model-versions/get-download-uri", READ)
async def model_version_uri(app: MlflowApp, c: Call) -> Any:
    version = await app.call(app.store.get_model_version, c.tenant, c.arg("name"), c.arg("version"))
    return {"artifact_uri": version["source"]}


@route("POST", f"{_API2}/model-versions/set-tag")
async def set_model_version_tag(app: MlflowApp, c: Call) -> Any:
    await app.call(app.store.update_model_version, c.tenant, c.arg("name"), c.arg("version"),
                   set_tags={c.arg("key"): c.arg("value")})
    return {}


@route("DELETE", f"{_API2}/model-versions/delete-tag")
async def delete_model_version_tag(app: MlflowApp, c: Call) -> Any:
    await app.call(app.store.update_model_version, c.tenant, c.arg("name"), c.arg("version"),
                   delete_tags=[c.arg("key")])
    return {}


@route("PATCH", f"{_API2}/model-versions/update")
async def update_model_version(app: MlflowApp, c: Call) -> Any:
    version = await app.call(app.store.update_model_version, c.tenant, c.arg("name"), c.arg("version"),
                             description=c.arg("description", ""))
    return {"model_version": version}


@route("DELETE", f"{_API2}/model-versions/delete")
async def delete_model_version(app: MlflowApp, c: Call) -> Any:
    await app.call(app.store.update_model_version, c.tenant, c.arg("name"), c.arg("version"), deleted=True)
    return {}


@route("GET|POST", f"{_API2}/model-versions/search", READ)
async def search_model_versions(app: MlflowApp, c: Call) -> Any:
    clauses = filters.parse(c.arg("filter", ""))
    names = [str(cl.value) for cl in clauses if cl.key == "name" and cl.op == "="]
    if names:
        candidates = names
    else:
        candidates = [m["name"] for m in await app.call(app.store.search_registered_models, c.tenant)]
    versions = []
    for name in candidates:
        try:
            versions += await app.call(app.store.model_versions, c.tenant, name)
        except MlflowError:
            continue
    versions = [v for v in versions if filters.matches(clauses, partial(_tag_or_field, v))]
    return _page({"model_versions": versions}, "model_versions", c)


# -- logged models -------------------------------------------------------------------------

@route("POST", f"{_API2}/logged-models")
async def create_logged_model(app: MlflowApp, c: Call) -> Any:
    return {"model": await app.call(app.store.create_logged_model, c.tenant, c.json())}


@route("GET", f"{_API2}/logged-models/<model_id>", READ)
async def get_logged_model(app: MlflowApp, c: Call) -> Any:
    return {"model": await app.call(app.store.get_logged_model, c.tenant, c.params["model_id"])}


@route("PATCH", f"{_API2}/logged-models/<model_id>")
async def finalize_logged_model(app: MlflowApp, c: Call) -> Any:
    model = await app.call(app.store.update_logged_model, c.tenant, c.params["model_id"],
                           status=str(c.json().get("status") or ""))
    return {"model": model}


@route("PATCH", f"{_API2}/logged-models/<model_id>/tags")
async def set_logged_model_tags(app: MlflowApp, c: Call) -> Any:
    await app.call(app.store.update_logged_model, c.tenant, c.params["model_id"],
                   set_tags=key_values(c.json().get("tags")))
    return {}


@route("DELETE", f"{_API2}/logged-models/<model_id>/tags/<tag_key>")
async def delete_logged_model_tag(app: MlflowApp, c: Call) -> Any:
    await app.call(app.store.update_logged_model, c.tenant, c.params["model_id"], delete_tags=[c.params["tag_key"]])
    return {}


@route("POST", f"{_API2}/logged-models/<model_id>/params")
async def log_logged_model_params(app: MlflowApp, c: Call) -> Any:
    await app.call(app.store.update_logged_model, c.tenant, c.params["model_id"],
                   params=key_values(c.json().get("params")))
    return {}


@route("POST", f"{_API2}/logged-models/search", READ)
async def search_logged_models(app: MlflowApp, c: Call) -> Any:
    ids = [str(e) for e in c.json().get("experiment_ids") or []]
    return {"models": await app.call(app.store.search_logged_models, c.tenant, ids)}


# -- artifacts -----------------------------------------------------------------------------

@route("PUT", f"{_ARTIFACTS}/<path:path>")
async def upload_artifact(app: MlflowApp, c: Call) -> Any:
    path = c.params["path"].strip("/")
    if ".." in path.split("/"):
        raise invalid(f"invalid artifact path {path!r}")
    m = re.fullmatch(r"(?P<exp>[^/]+)/traces/(?P<trace>tr-[0-9a-f]{32})/artifacts/traces\.json", path)
    if m:
        # The client uploads the spans it also sent by OTLP (MLflow < 3.4 servers, or a
        # race with async logging): into the pipeline, where the gate stores them once.
        await app.export_spans(c, c.body, m["exp"])
        return {}
    await app.call(app.store.put_artifact, c.tenant, path, c.body)
    return {}


@route("GET", f"{_ARTIFACTS}/<path:path>", READ)
async def download_artifact(app: MlflowApp, c: Call) -> Any:
    return await app.call(app.store.get_artifact, c.tenant, c.params["path"].strip("/"))


@route("GET", _ARTIFACTS, READ)
async def list_artifacts(app: MlflowApp, c: Call) -> Any:
    return {"files": await app.call(app.store.list_artifacts, c.tenant, c.arg("path", ""))}


@route("GET", f"{_API2}/artifacts/list", READ)
async def list_run_artifacts(app: MlflowApp, c: Call) -> Any:
    run = await app.call(app.store.get_run, c.tenant, _run_id(c))
    root = run["info"]["artifact_uri"]
    prefix = root.removeprefix("mlflow-artifacts:/").strip("/")
    sub = c.arg("path", "").strip("/")
    files = await app.call(app.store.list_artifacts, c.tenant, f"{prefix}/{sub}" if sub else prefix)
    for f in files:
        f["path"] = f"{sub}/{f['path']}" if sub else f["path"]
    return {"root_uri": root, "files": files}


def _tag_or_field(entity: dict[str, Any], kind: str, key: str) -> Any:
    return filters.tags_of(entity).get(key) if kind == "tags" else entity.get(key)


def _page(result: dict[str, Any], key: str, c: Call) -> dict[str, Any]:
    """`max_results` and `page_token` (an offset) over an in-memory result."""
    try:
        limit = int(c.arg("max_results", "1000") or 1000)
        offset = int(c.arg("page_token", "0") or 0)
    except ValueError:
        raise invalid("max_results and page_token must be integers") from None
    items = result[key]
    result[key] = items[offset:offset + limit]
    if offset + limit < len(items):
        result["next_page_token"] = str(offset + limit)
    return result


__all__ = ["MlflowApp", "tag_experiment", "EXPERIMENT_ATTRIBUTE", "PROMPT_TAG", "PARENT_RUN_TAG"]
