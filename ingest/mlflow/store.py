"""The tracking store: MLflow's experiments, runs, trace info, registered models, logged
models, artifacts and assessments, in ClickHouse (tables of migration 008), per tenant.

Calls are synchronous and run on the receiver's worker threads (each holds its own
clickhouse-connect client). Entities are ReplacingMergeTree rows: an update writes the
whole row again, reads take the newest with FINAL. Ids that MLflow numbers (experiments,
model versions) are allocated under a lock, so one receiver never hands out one twice;
run several receivers on one tracking store and give each its own database, as MLflow's
file store would need too.

Returned values are MLflow's JSON shapes (the REST API's), built here so the app only routes.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from tracehouse.ingest.mlflow.errors import MlflowError, invalid, not_found
from tracehouse.sinks.clickhouse.prompts import Link, PromptRegistry
from tracehouse.sinks.clickhouse.scores import insert_scores

DEFAULT_EXPERIMENT_ID = "0"
DEFAULT_EXPERIMENT_NAME = "Default"
PROMPT_TAG = "mlflow.prompt.is_prompt"
PROMPT_TEXT_TAG = "mlflow.prompt.text"
LINKED_PROMPTS_TAG = "mlflow.linkedPrompts"
SPANS_LOCATION_TAG = "mlflow.trace.spansLocation"
ALIAS_PREFIX = "mlflow.alias."  # aliases are kept as reserved tags of the registered model
# Run tags MLflow clients read back (mlflow.runName is the run's name; parentRunId nests it).
RUN_NAME_TAG = "mlflow.runName"
PARENT_RUN_TAG = "mlflow.parentRunId"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_iso_ms(text: str) -> int:
    """MLflow's protobuf Timestamp JSON ("2026-12-01T21:12:32.522Z") in ms."""
    if not text:
        return now_ms()
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        raise invalid(f"invalid timestamp {text!r}: expected RFC 3339, e.g. 2026-12-01T21:12:32.522Z") from None


def parse_duration_ms(text: str | int | None) -> int:
    """Protobuf Duration JSON ("0.058s") in ms."""
    if text in (None, ""):
        return 0
    s = str(text)
    try:
        return round(float(s[:-1] if s.endswith("s") else s) * 1000)
    except ValueError:
        raise invalid(f"invalid duration {text!r}: expected seconds, e.g. 0.058s") from None


def key_values(items: Iterable[Mapping[str, Any]] | None) -> dict[str, str]:
    return {str(t.get("key", "")): str(t.get("value", "")) for t in items or ()}


def retagged(tags: Mapping[str, str], set_tags: Mapping[str, str] | None,
             delete_tags: Iterable[str]) -> dict[str, str]:
    """A tag map with `set_tags` set and `delete_tags` removed (MLflow's set-tag / delete-tag)."""
    out = {**tags, **(set_tags or {})}
    for key in delete_tags:
        out.pop(key, None)
    return out


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in tags.items() if not k.startswith(ALIAS_PREFIX)]


def otel_trace_id(request_id: str) -> str:
    """MLflow's `tr-<32 hex>` trace id -> the OTel trace id the spans carry."""
    hex_id = request_id[3:] if request_id.startswith("tr-") else request_id
    if len(hex_id) != 32 or any(c not in "0123456789abcdef" for c in hex_id.lower()):
        raise invalid(f"trace id {request_id!r} is not tr-<32 hex digits>")
    return hex_id.lower()


class TrackingStore:
    def __init__(self, client_factory: Callable[[], Client], database: str, traces_table: str):
        self._open = client_factory
        self._local = threading.local()
        self._clients: list[Client] = []
        self._clients_lock = threading.Lock()
        self._ids = threading.Lock()  # experiment ids and model version numbers
        t = f"{database}.{traces_table}"
        self._t = {name: f"{t}_{name}" for name in (
            "experiments", "runs", "run_params", "run_tags", "run_metrics", "trace_info", "registered_models",
            "model_versions", "logged_models", "artifacts", "scores")}
        self._spans = t
        self.prompts = PromptRegistry(database, traces_table)

    @property
    def client(self) -> Client:
        c: Client | None = getattr(self._local, "client", None)
        if c is None:
            c = self._local.client = self._open()
            with self._clients_lock:
                self._clients.append(c)
        return c

    def close(self) -> None:
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for c in clients:
            c.close()

    def _rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        result = self.client.query(sql, parameters=params)
        return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

    def _insert(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        names = list(rows[0])
        self.client.insert(self._t[table], [[r[n] for n in names] for r in rows], column_names=names)

    # -- experiments -------------------------------------------------------------------

    def _experiment_rows(self, tenant: str, where: str = "", **params: Any) -> list[dict[str, Any]]:
        return self._rows(f"SELECT * FROM {self._t['experiments']} FINAL WHERE Tenant = {{tenant:String}} {where} "
                          "ORDER BY toUInt64OrZero(ExperimentId), ExperimentId", tenant=tenant, **params)

    def _ensure_default(self, tenant: str) -> None:
        """MLflow's experiment 0, which clients use when none was set."""
        if not self._experiment_rows(tenant, "AND ExperimentId = {id:String}", id=DEFAULT_EXPERIMENT_ID):
            self._write_experiment(tenant, DEFAULT_EXPERIMENT_ID, DEFAULT_EXPERIMENT_NAME, {})

    def _write_experiment(self, tenant: str, experiment_id: str, name: str, tags: dict[str, str],
                          stage: str = "active", created: int | None = None, location: str = "") -> None:
        ts = now_ms()
        self._insert("experiments", [{
            "Tenant": tenant, "ExperimentId": experiment_id, "Name": name,
            "ArtifactLocation": location or f"mlflow-artifacts:/{experiment_id}", "LifecycleStage": stage,
            "CreationTime": created or ts, "LastUpdateTime": ts, "Tags": tags}])

    @staticmethod
    def _experiment_json(row: Mapping[str, Any]) -> dict[str, Any]:
        return {"experiment_id": row["ExperimentId"], "name": row["Name"],
                "artifact_location": row["ArtifactLocation"], "lifecycle_stage": row["LifecycleStage"],
                "last_update_time": row["LastUpdateTime"], "creation_time": row["CreationTime"],
                "tags": tag_list(row["Tags"])}

    def get_experiment(self, tenant: str, experiment_id: str) -> dict[str, Any]:
        if experiment_id == DEFAULT_EXPERIMENT_ID:
            self._ensure_default(tenant)
        rows = self._experiment_rows(tenant, "AND ExperimentId = {id:String}", id=experiment_id)
        if not rows:
            raise not_found(f"No Experiment with id={experiment_id} exists")
        return self._experiment_json(rows[0])

    def get_experiment_by_name(self, tenant: str, name: str) -> dict[str, Any]:
        if name == DEFAULT_EXPERIMENT_NAME:
            self._ensure_default(tenant)
        rows = self._experiment_rows(tenant, "AND Name = {name:String} AND LifecycleStage = 'active'", name=name)
        if not rows:
            raise not_found(f"Could not find experiment with name '{name}'")
        return self._experiment_json(rows[0])

    def create_experiment(self, tenant: str, name: str, tags: dict[str, str], artifact_location: str = "") -> str:
        if not name:
            raise invalid("Invalid experiment name: ''. Experiment name must be a non-empty string.")
        with self._ids:
            self._ensure_default(tenant)
            existing = self._experiment_rows(tenant)
            if any(r["Name"] == name for r in existing):
                raise MlflowError("RESOURCE_ALREADY_EXISTS", f"Experiment '{name}' already exists.")
            new_id = str(max((int(r["ExperimentId"]) for r in existing if r["ExperimentId"].isdigit()), default=0) + 1)
            self._write_experiment(tenant, new_id, name, tags, location=artifact_location)
        return new_id

    def search_experiments(self, tenant: str, view_type: str = "ACTIVE_ONLY") -> list[dict[str, Any]]:
        self._ensure_default(tenant)
        rows = self._experiment_rows(tenant)
        stages = {"ACTIVE_ONLY": {"active"}, "DELETED_ONLY": {"deleted"}}.get(view_type, {"active", "deleted"})
        return [self._experiment_json(r) for r in rows if r["LifecycleStage"] in stages]

    def update_experiment(self, tenant: str, experiment_id: str, *, name: str | None = None,
                          stage: str | None = None, set_tags: Mapping[str, str] | None = None,
                          delete_tags: Iterable[str] = ()) -> None:
        with self._ids:
            rows = self._experiment_rows(tenant, "AND ExperimentId = {id:String}", id=experiment_id)
            if not rows:
                raise not_found(f"No Experiment with id={experiment_id} exists")
            row = rows[0]
            tags = retagged(row["Tags"], set_tags, delete_tags)
            self._write_experiment(tenant, experiment_id, name or row["Name"], tags, stage or row["LifecycleStage"],
                                   row["CreationTime"], row["ArtifactLocation"])

    # -- runs --------------------------------------------------------------------------

    def _run_row(self, tenant: str, run_id: str) -> dict[str, Any]:
        rows = self._rows(f"SELECT * FROM {self._t['runs']} FINAL WHERE Tenant = {{tenant:String}} "
                          "AND RunId = {id:String}", tenant=tenant, id=run_id)
        if not rows:
            raise not_found(f"Run with id={run_id} not found")
        return rows[0]

    def _write_run(self, row: Mapping[str, Any]) -> None:
        self._insert("runs", [{k: v for k, v in row.items() if k != "UpdatedAt"}])

    def create_run(self, tenant: str, experiment_id: str, run_name: str, user_id: str, start_time: int,
                   tags: dict[str, str]) -> dict[str, Any]:
        self.get_experiment(tenant, experiment_id or DEFAULT_EXPERIMENT_ID)
        run_id = uuid.uuid4().hex
        run_name = run_name or tags.get(RUN_NAME_TAG) or f"run-{run_id[:8]}"
        experiment_id = experiment_id or DEFAULT_EXPERIMENT_ID
        self._write_run({
            "Tenant": tenant, "RunId": run_id, "ExperimentId": experiment_id, "RunName": run_name,
            "UserId": user_id, "Status": "RUNNING", "StartTime": start_time or now_ms(), "EndTime": None,
            "LifecycleStage": "active", "ArtifactUri": f"mlflow-artifacts:/{experiment_id}/{run_id}/artifacts",
            "ModelOutputs": []})
        self.set_run_tags(tenant, run_id, {**tags, RUN_NAME_TAG: run_name})
        return self.get_run(tenant, run_id)

    def update_run(self, tenant: str, run_id: str, *, status: str = "", end_time: int | None = None,
                   run_name: str = "", stage: str = "") -> dict[str, Any]:
        row = self._run_row(tenant, run_id)
        row.update({k: v for k, v in (("Status", status), ("EndTime", end_time), ("RunName", run_name),
                                      ("LifecycleStage", stage)) if v})
        self._write_run(row)
        if run_name:
            self.set_run_tags(tenant, run_id, {RUN_NAME_TAG: run_name})
        return self._run_info(row)

    def set_run_outputs(self, tenant: str, run_id: str, models: Sequence[Mapping[str, Any]]) -> None:
        row = self._run_row(tenant, run_id)
        known = {tuple(o) for o in row["ModelOutputs"]}
        for m in models:
            known.add((str(m.get("model_id", "")), int(m.get("step", 0) or 0)))
        row["ModelOutputs"] = sorted(known)
        self._write_run(row)

    def set_run_tags(self, tenant: str, run_id: str, tags: Mapping[str, str], deleted: bool = False) -> None:
        self._insert("run_tags", [{"Tenant": tenant, "RunId": run_id, "Key": k, "Value": v, "Deleted": int(deleted)}
                                  for k, v in tags.items()])

    def log_batch(self, tenant: str, run_id: str, metrics: Sequence[Mapping[str, Any]],
                  params: Sequence[Mapping[str, Any]], tags: Sequence[Mapping[str, Any]]) -> None:
        row = self._run_row(tenant, run_id)
        if row["LifecycleStage"] != "active":
            raise MlflowError("INVALID_STATE", f"The run {run_id} must be in the 'active' state. "
                                               f"Current state is {row['LifecycleStage']}.")
        new_params = key_values(params)
        if new_params:
            old = self.run_params(tenant, run_id)
            changed = {k: (old[k], v) for k, v in new_params.items() if k in old and old[k] != v}
            if changed:
                k, (was, now) = next(iter(changed.items()))
                raise invalid(f"Changing param values is not allowed. Param with key='{k}' was already logged "
                              f"with value='{was}' for run ID='{run_id}'. Attempted logging new value '{now}'.")
            self._insert("run_params", [{"Tenant": tenant, "RunId": run_id, "Key": k, "Value": v}
                                        for k, v in new_params.items()])
        rows = []
        for m in metrics:
            try:
                value = float(m.get("value", 0.0))
            except (TypeError, ValueError):
                raise invalid(f"metric {m.get('key')!r}: value {m.get('value')!r} is not a number") from None
            rows.append({"Tenant": tenant, "RunId": run_id, "Key": str(m.get("key", "")),
                         "Step": int(m.get("step", 0) or 0), "Timestamp": int(m.get("timestamp") or now_ms()),
                         "Value": value})
        self._insert("run_metrics", rows)
        if tags:
            self.set_run_tags(tenant, run_id, key_values(tags))

    def run_params(self, tenant: str, run_id: str) -> dict[str, str]:
        rows = self._rows(f"SELECT Key, Value FROM {self._t['run_params']} FINAL WHERE Tenant = {{tenant:String}} "
                          "AND RunId = {id:String} ORDER BY Key", tenant=tenant, id=run_id)
        return {r["Key"]: r["Value"] for r in rows}

    def run_tags(self, tenant: str, run_id: str) -> dict[str, str]:
        rows = self._rows(f"SELECT Key, Value FROM {self._t['run_tags']} FINAL WHERE Tenant = {{tenant:String}} "
                          "AND RunId = {id:String} AND NOT Deleted ORDER BY Key", tenant=tenant, id=run_id)
        return {r["Key"]: r["Value"] for r in rows}

    def metric_history(self, tenant: str, run_id: str, key: str | None = None) -> list[dict[str, Any]]:
        where = "AND Key = {key:String}" if key is not None else ""
        rows = self._rows(f"SELECT Key, Value, Timestamp, Step FROM {self._t['run_metrics']} FINAL "
                          f"WHERE Tenant = {{tenant:String}} AND RunId = {{id:String}} {where} "
                          "ORDER BY Key, Step, Timestamp", tenant=tenant, id=run_id, key=key or "")
        return [{"key": r["Key"], "value": r["Value"], "timestamp": r["Timestamp"], "step": r["Step"]} for r in rows]

    def latest_metrics(self, tenant: str, run_id: str) -> list[dict[str, Any]]:
        """MLflow's run data: each metric's value at its largest (step, timestamp)."""
        latest: dict[str, dict[str, Any]] = {}
        for m in self.metric_history(tenant, run_id):
            latest[m["key"]] = m  # ordered by step then timestamp: the last one wins
        return list(latest.values())

    @staticmethod
    def _run_info(row: Mapping[str, Any]) -> dict[str, Any]:
        info = {"run_id": row["RunId"], "run_uuid": row["RunId"], "run_name": row["RunName"],
                "experiment_id": row["ExperimentId"], "user_id": row["UserId"], "status": row["Status"],
                "start_time": row["StartTime"], "artifact_uri": row["ArtifactUri"],
                "lifecycle_stage": row["LifecycleStage"]}
        if row["EndTime"] is not None:
            info["end_time"] = row["EndTime"]
        return info

    def get_run(self, tenant: str, run_id: str) -> dict[str, Any]:
        return self._run_json(tenant, self._run_row(tenant, run_id))

    def _run_json(self, tenant: str, row: Mapping[str, Any]) -> dict[str, Any]:
        run_id = row["RunId"]
        outputs = [{"model_id": m, "step": s} for m, s in row["ModelOutputs"]]
        return {"info": self._run_info(row),
                "data": {"metrics": self.latest_metrics(tenant, run_id),
                         "params": [{"key": k, "value": v} for k, v in self.run_params(tenant, run_id).items()],
                         "tags": tag_list(self.run_tags(tenant, run_id))},
                "inputs": {}, "outputs": {"model_outputs": outputs} if outputs else {}}

    def search_runs(self, tenant: str, experiment_ids: Sequence[str], view_type: str = "ACTIVE_ONLY") -> list[dict[str, Any]]:
        rows = self._rows(f"SELECT * FROM {self._t['runs']} FINAL WHERE Tenant = {{tenant:String}} "
                          "AND has({ids:Array(String)}, ExperimentId) ORDER BY StartTime DESC, RunId",
                          tenant=tenant, ids=list(experiment_ids))
        stages = {"ACTIVE_ONLY": {"active"}, "DELETED_ONLY": {"deleted"}}.get(view_type, {"active", "deleted"})
        return [self._run_json(tenant, r) for r in rows if r["LifecycleStage"] in stages]

    # -- traces ------------------------------------------------------------------------

    def _trace_row(self, tenant: str, request_id: str) -> dict[str, Any] | None:
        rows = self._rows(f"SELECT * FROM {self._t['trace_info']} FINAL WHERE Tenant = {{tenant:String}} "
                          "AND TraceId = {id:String}", tenant=tenant, id=otel_trace_id(request_id))
        return rows[0] if rows else None

    def start_trace(self, tenant: str, info: Mapping[str, Any]) -> dict[str, Any]:
        request_id = str(info.get("trace_id") or info.get("request_id") or "")
        location = info.get("trace_location") or {}
        experiment_id = str((location.get("mlflow_experiment") or {}).get("experiment_id")
                            or info.get("experiment_id") or DEFAULT_EXPERIMENT_ID)
        old = self._trace_row(tenant, request_id)
        tags = {**(old["Tags"] if old else {}), **{str(k): str(v) for k, v in (info.get("tags") or {}).items()}}
        # The spans are (or will be) stored by this server: the client then skips uploading them as an artifact.
        tags[SPANS_LOCATION_TAG] = "TRACKING_STORE"
        tags.setdefault("mlflow.artifactLocation", f"mlflow-artifacts:/{experiment_id}/traces/{request_id}/artifacts")
        metadata = {str(k): str(v) for k, v in (info.get("trace_metadata") or info.get("request_metadata") or {}).items()}
        row = {"Tenant": tenant, "TraceId": otel_trace_id(request_id), "RequestId": request_id,
               "ExperimentId": experiment_id, "RequestTime": parse_iso_ms(str(info.get("request_time") or "")),
               "ExecutionDuration": parse_duration_ms(info.get("execution_duration")),
               "State": str(info.get("state") or "OK"), "RequestPreview": str(info.get("request_preview") or ""),
               "ResponsePreview": str(info.get("response_preview") or ""),
               "Metadata": {**(old["Metadata"] if old else {}), **metadata}, "Tags": tags}
        self._insert("trace_info", [row])
        return self._trace_json(row)

    @staticmethod
    def _trace_json(row: Mapping[str, Any]) -> dict[str, Any]:
        return {"trace_id": row["RequestId"],
                "trace_location": {"type": "MLFLOW_EXPERIMENT",
                                   "mlflow_experiment": {"experiment_id": row["ExperimentId"]}},
                "request_time": iso(row["RequestTime"]),
                "execution_duration": f"{row['ExecutionDuration'] / 1000:g}s", "state": row["State"],
                "trace_metadata": dict(row["Metadata"]), "tags": dict(row["Tags"]),
                "request_preview": row["RequestPreview"], "response_preview": row["ResponsePreview"]}

    def get_trace_info(self, tenant: str, request_id: str) -> dict[str, Any]:
        row = self._trace_row(tenant, request_id)
        if row is None:
            raise not_found(f"Trace with ID {request_id} is not found.")
        info = self._trace_json(row)
        assessments = self.scores(tenant, row["TraceId"])
        if assessments:
            info["assessments"] = assessments
        return info

    def trace_spans(self, tenant: str, request_id: str) -> list[dict[str, Any]]:
        """The trace's stored spans as OTLP JSON (ingest/mlflow/spans.py), start order. The
        lookup is bounded in time around the trace's request time (the table's key is time)."""
        from tracehouse.ingest.mlflow.spans import span_json

        row = self._trace_row(tenant, request_id)
        if row is None:
            raise not_found(f"Trace with ID {request_id} is not found.")
        rows = self._rows(
            f"SELECT TraceId, SpanId, ParentSpanId, SpanName, toUnixTimestamp64Nano(Timestamp) AS StartNs, Duration, "
            "StatusCode, StatusMessage, SpanAttributes, arrayMap(t -> toUnixTimestamp64Nano(t), `Events.Timestamp`) "
            "AS EventNs, `Events.Name` AS EventNames, `Events.Attributes` AS EventAttributes "
            f"FROM {self._spans} WHERE TraceId = {{id:String}} AND Tenant = {{tenant:String}} "
            "AND Timestamp BETWEEN fromUnixTimestamp64Milli({t:Int64}) - INTERVAL 1 DAY "
            "AND fromUnixTimestamp64Milli({t:Int64}) + INTERVAL 1 DAY "
            "ORDER BY Timestamp, SpanId LIMIT 1 BY SpanId",
            id=row["TraceId"], tenant=tenant, t=row["RequestTime"])
        return [span_json(r) for r in rows]

    def update_trace_tags(self, tenant: str, request_id: str, set_tags: Mapping[str, str] = {},
                          delete: Iterable[str] = ()) -> None:
        row = self._trace_row(tenant, request_id)
        if row is None:
            raise not_found(f"Trace with ID {request_id} is not found.")
        tags = retagged(row["Tags"], set_tags, delete)
        row["Tags"] = tags
        self._insert("trace_info", [{k: v for k, v in row.items() if k != "UpdatedAt"}])

    def search_traces(self, tenant: str, experiment_ids: Sequence[str], run_id: str = "",
                      limit: int = 100) -> list[dict[str, Any]]:
        rows = self._rows(f"SELECT * FROM {self._t['trace_info']} FINAL WHERE Tenant = {{tenant:String}} "
                          "AND has({ids:Array(String)}, ExperimentId) "
                          "AND ({run:String} = '' OR Metadata['mlflow.sourceRun'] = {run:String}) "
                          "ORDER BY RequestTime DESC LIMIT {limit:UInt32}",
                          tenant=tenant, ids=list(experiment_ids), run=run_id, limit=limit)
        from tracehouse.ingest.mlflow.assessments import assessment_json

        scored: dict[str, list[dict[str, Any]]] = {}
        for score in self.score_rows(tenant, [r["TraceId"] for r in rows]):
            scored.setdefault(score["TraceId"], []).append(assessment_json(score))
        infos = []
        for r in rows:
            info = self._trace_json(r)
            if r["TraceId"] in scored:
                info["assessments"] = scored[r["TraceId"]]
            infos.append(info)
        return infos

    # -- registered models and versions (prompts) --------------------------------------

    def _model_row(self, tenant: str, name: str) -> dict[str, Any] | None:
        rows = self._rows(f"SELECT * FROM {self._t['registered_models']} FINAL WHERE Tenant = {{tenant:String}} "
                          "AND Name = {name:String} AND NOT Deleted", tenant=tenant, name=name)
        return rows[0] if rows else None

    def _write_model(self, row: Mapping[str, Any]) -> None:
        self._insert("registered_models", [{k: v for k, v in row.items() if k != "UpdatedAt"}])

    def create_registered_model(self, tenant: str, name: str, description: str, tags: dict[str, str]) -> dict[str, Any]:
        if not name:
            raise invalid("Registered model name cannot be empty.")
        with self._ids:
            if self._model_row(tenant, name) is not None:
                raise MlflowError("RESOURCE_ALREADY_EXISTS", f"Registered Model (name={name}) already exists.")
            ts = now_ms()
            self._write_model({"Tenant": tenant, "Name": name, "Description": description, "Tags": tags,
                               "CreationTime": ts, "LastUpdatedTime": ts, "Deleted": 0})
        return self.get_registered_model(tenant, name)

    def get_registered_model(self, tenant: str, name: str) -> dict[str, Any]:
        row = self._model_row(tenant, name)
        if row is None:
            raise not_found(f"Registered Model with name={name} not found")
        return self._model_json(tenant, row)

    def _model_json(self, tenant: str, row: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"name": row["Name"], "creation_timestamp": row["CreationTime"],
                               "last_updated_timestamp": row["LastUpdatedTime"], "description": row["Description"]}
        versions = self.model_versions(tenant, row["Name"])
        if versions:
            out["latest_versions"] = [versions[-1]]
        out["tags"] = tag_list(row["Tags"])
        aliases = [{"alias": k[len(ALIAS_PREFIX):], "version": v} for k, v in row["Tags"].items()
                   if k.startswith(ALIAS_PREFIX)]
        if aliases:
            out["aliases"] = aliases
        return out

    def update_registered_model(self, tenant: str, name: str, *, description: str | None = None,
                                set_tags: Mapping[str, str] | None = None, delete_tags: Iterable[str] = (),
                                deleted: bool = False) -> dict[str, Any]:
        with self._ids:
            row = self._model_row(tenant, name)
            if row is None:
                raise not_found(f"Registered Model with name={name} not found")
            tags = retagged(row["Tags"], set_tags, delete_tags)
            row.update(Tags=tags, LastUpdatedTime=now_ms(), Deleted=int(deleted))
            if description is not None:
                row["Description"] = description
            self._write_model(row)
        return self._model_json(tenant, row)

    def search_registered_models(self, tenant: str) -> list[dict[str, Any]]:
        rows = self._rows(f"SELECT * FROM {self._t['registered_models']} FINAL WHERE Tenant = {{tenant:String}} "
                          "AND NOT Deleted ORDER BY Name", tenant=tenant)
        return [self._model_json(tenant, r) for r in rows]

    def _version_rows(self, tenant: str, name: str, version: int | None = None) -> list[dict[str, Any]]:
        where = "AND Version = {version:UInt64}" if version is not None else ""
        return self._rows(f"SELECT * FROM {self._t['model_versions']} FINAL WHERE Tenant = {{tenant:String}} "
                          f"AND Name = {{name:String}} AND NOT Deleted {where} ORDER BY Version",
                          tenant=tenant, name=name, version=version or 0)

    @staticmethod
    def _version_json(row: Mapping[str, Any]) -> dict[str, Any]:
        return {"name": row["Name"], "version": str(row["Version"]), "creation_timestamp": row["CreationTime"],
                "last_updated_timestamp": row["LastUpdatedTime"], "current_stage": "None",
                "description": row["Description"], "source": row["Source"], "run_id": row["RunId"],
                "status": row["Status"], "tags": tag_list(row["Tags"]), "run_link": ""}

    def model_versions(self, tenant: str, name: str) -> list[dict[str, Any]]:
        return [self._version_json(r) for r in self._version_rows(tenant, name)]

    def create_model_version(self, tenant: str, name: str, source: str, run_id: str, description: str,
                             tags: dict[str, str]) -> dict[str, Any]:
        """A new version, numbered after the last; a prompt's template also enters the tenant's
        prompt registry under that version, so spans that link to it find it."""
        with self._ids:
            model = self._model_row(tenant, name)
            if model is None:
                raise not_found(f"Registered Model with name={name} not found")
            existing = self._rows(f"SELECT max(Version) AS v FROM {self._t['model_versions']} "
                                  "WHERE Tenant = {tenant:String} AND Name = {name:String}", tenant=tenant, name=name)
            version = int(existing[0]["v"] or 0) + 1 if existing else 1
            ts = now_ms()
            row = {"Tenant": tenant, "Name": name, "Version": version, "Description": description, "Source": source,
                   "RunId": run_id, "Status": "READY", "Tags": tags, "CreationTime": ts, "LastUpdatedTime": ts,
                   "Deleted": 0}
            self._insert("model_versions", [row])
            model.update(LastUpdatedTime=ts)
            self._write_model(model)
        if tags.get(PROMPT_TAG) == "true" or model["Tags"].get(PROMPT_TAG) == "true":
            self.register_prompt_version(tenant, name, str(version), tags.get(PROMPT_TEXT_TAG, ""))
        return self._version_json(row)

    def register_prompt_version(self, tenant: str, name: str, version: str, template: str) -> None:
        digest = hashlib.sha256(template.encode()).hexdigest() if template else ""
        self.prompts.resolve(self.client, Link(name, version, digest, template, "mlflow", tenant))

    def get_model_version(self, tenant: str, name: str, version: str) -> dict[str, Any]:
        if not version.isdigit():
            raise invalid(f"Model version must be an integer, got {version!r}")
        rows = self._version_rows(tenant, name, int(version))
        if not rows:
            raise not_found(f"Model Version (name={name}, version={version}) not found")
        return self._version_json(rows[0])

    def update_model_version(self, tenant: str, name: str, version: str, *, description: str | None = None,
                             set_tags: Mapping[str, str] | None = None, delete_tags: Iterable[str] = (),
                             deleted: bool = False) -> dict[str, Any]:
        self.get_model_version(tenant, name, version)
        row = self._version_rows(tenant, name, int(version))[0]
        tags = retagged(row["Tags"], set_tags, delete_tags)
        row.update(Tags=tags, LastUpdatedTime=now_ms(), Deleted=int(deleted))
        if description is not None:
            row["Description"] = description
        self._insert("model_versions", [{k: v for k, v in row.items() if k != "UpdatedAt"}])
        return self._version_json(row)

    # -- logged models -----------------------------------------------------------------

    def _logged_row(self, tenant: str, model_id: str) -> dict[str, Any]:
        rows = self._rows(f"SELECT * FROM {self._t['logged_models']} FINAL WHERE Tenant = {{tenant:String}} "
                          "AND ModelId = {id:String}", tenant=tenant, id=model_id)
        if not rows:
            raise not_found(f"Logged model with ID '{model_id}' not found.")
        return rows[0]

    def write_logged_model(self, row: Mapping[str, Any]) -> dict[str, Any]:
        self._insert("logged_models", [{k: v for k, v in row.items() if k != "UpdatedAt"}])
        return self._logged_json(row)

    def create_logged_model(self, tenant: str, body: Mapping[str, Any]) -> dict[str, Any]:
        model_id = f"m-{uuid.uuid4().hex}"
        experiment_id = str(body.get("experiment_id") or DEFAULT_EXPERIMENT_ID)
        ts = now_ms()
        return self.write_logged_model({
            "Tenant": tenant, "ModelId": model_id, "ExperimentId": experiment_id,
            "Name": str(body.get("name") or model_id), "SourceRunId": str(body.get("source_run_id") or ""),
            "ModelType": str(body.get("model_type") or ""), "Status": "LOGGED_MODEL_PENDING",
            "ArtifactLocation": f"mlflow-artifacts:/{experiment_id}/models/{model_id}/artifacts",
            "Params": key_values(body.get("params")), "Tags": key_values(body.get("tags")),
            "CreationTime": ts, "LastUpdatedTime": ts})

    def get_logged_model(self, tenant: str, model_id: str) -> dict[str, Any]:
        return self._logged_json(self._logged_row(tenant, model_id))

    def update_logged_model(self, tenant: str, model_id: str, *, status: str = "",
                            params: Mapping[str, str] = {}, set_tags: Mapping[str, str] = {},
                            delete_tags: Iterable[str] = ()) -> dict[str, Any]:
        row = self._logged_row(tenant, model_id)
        tags = retagged(row["Tags"], set_tags, delete_tags)
        row.update(Tags=tags, Params={**row["Params"], **params}, LastUpdatedTime=now_ms())
        if status:
            row["Status"] = status
        return self.write_logged_model(row)

    def search_logged_models(self, tenant: str, experiment_ids: Sequence[str]) -> list[dict[str, Any]]:
        rows = self._rows(f"SELECT * FROM {self._t['logged_models']} FINAL WHERE Tenant = {{tenant:String}} "
                          "AND has({ids:Array(String)}, ExperimentId) ORDER BY CreationTime DESC",
                          tenant=tenant, ids=list(experiment_ids))
        return [self._logged_json(r) for r in rows]

    @staticmethod
    def _logged_json(row: Mapping[str, Any]) -> dict[str, Any]:
        info = {"model_id": row["ModelId"], "experiment_id": row["ExperimentId"], "name": row["Name"],
                "creation_timestamp_ms": row["CreationTime"], "last_updated_timestamp_ms": row["LastUpdatedTime"],
                "artifact_uri": row["ArtifactLocation"], "status": row["Status"], "model_type": row["ModelType"],
                "source_run_id": row["SourceRunId"], "tags": tag_list(row["Tags"]),
                "params": [{"key": k, "value": v} for k, v in row["Params"].items()]}
        return {"info": info, "data": {}}

    # -- artifacts ---------------------------------------------------------------------

    def put_artifact(self, tenant: str, path: str, content: bytes) -> None:
        self._insert("artifacts", [{"Tenant": tenant, "Path": path, "Content": content}])

    def get_artifact(self, tenant: str, path: str) -> bytes:
        result = self.client.query(f"SELECT Content FROM {self._t['artifacts']} FINAL WHERE Tenant = {{tenant:String}} "
                                   "AND Path = {path:String}", parameters={"tenant": tenant, "path": path},
                                   column_formats={"Content": "bytes"})
        if not result.result_rows:
            raise not_found(f"Artifact {path!r} not found")
        return bytes(result.result_rows[0][0])

    def list_artifacts(self, tenant: str, prefix: str) -> list[dict[str, Any]]:
        prefix = prefix.strip("/")
        rows = self._rows(f"SELECT Path, length(Content) AS Size FROM {self._t['artifacts']} FINAL "
                          "WHERE Tenant = {tenant:String} AND startsWith(Path, {prefix:String}) ORDER BY Path",
                          tenant=tenant, prefix=f"{prefix}/" if prefix else "")
        entries: dict[str, dict[str, Any]] = {}
        for r in rows:
            rest = r["Path"][len(prefix) + 1 if prefix else 0:]
            head, sep, _ = rest.partition("/")
            name = f"{prefix}/{head}" if prefix else head
            entries[name] = {"path": head, "is_dir": True} if sep else {"path": head, "is_dir": False,
                                                                        "file_size": r["Size"]}
        return list(entries.values())

    # -- assessments (scores) ----------------------------------------------------------

    def write_score(self, tenant: str, row: Mapping[str, Any]) -> None:
        self.write_scores(tenant, [row])

    def write_scores(self, tenant: str, rows: Sequence[Mapping[str, Any]]) -> None:
        # A row read back (an update) carries its old version: the new one is the server's now.
        insert_scores(self.client, self._t["scores"], tenant,
                      [{k: v for k, v in row.items() if k not in ("UpdatedAt", "Tenant")} for row in rows])

    def score_rows(self, tenant: str, trace_ids: Sequence[str], score_id: str = "") -> list[dict[str, Any]]:
        """The live scores of these traces (of one of them, by `score_id`), oldest first."""
        return self._rows(f"SELECT * FROM {self._t['scores']} FINAL WHERE Tenant = {{tenant:String}} "
                          "AND has({traces:Array(String)}, TraceId) AND ({id:String} = '' OR ScoreId = {id:String}) "
                          "AND NOT Deleted ORDER BY Timestamp, ScoreId", tenant=tenant, traces=list(trace_ids),
                          id=score_id)

    def scores(self, tenant: str, trace_id: str) -> list[dict[str, Any]]:
        from tracehouse.ingest.mlflow.assessments import assessment_json

        return [assessment_json(r) for r in self.score_rows(tenant, [trace_id])]
