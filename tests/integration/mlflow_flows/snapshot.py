"""What an MLflow tracking server holds, read back through the MLflow client, normalized so
two servers can be compared: ids, times and server-specific tags are left out.

Usage: MLFLOW_TRACKING_URI=... python snapshot.py  -> JSON on stdout.
"""

import json

from mlflow import MlflowClient
from mlflow.entities import ViewType

# Tags a server or client adds that name this server, this host or this moment.
VOLATILE = ("mlflow.source.", "mlflow.user", "mlflow.artifactLocation", "mlflow.trace.sizeStats",
            "mlflow.trace.sizeBytes", "mlflow.trace.spansLocation", "mlflow.trace.infoFinalized",
            "mlflow.log-model.history", "_mlflow_experiment_ids", "mlflow.parentRunId", "mlflow.sourceRun",
            "mlflow.databricks", "mlflow.experiment.sourceName")


def stable(tags: dict) -> dict:
    return {k: v for k, v in sorted(tags.items()) if not k.startswith(VOLATILE)}


def spans(trace_id: str) -> list:
    """The trace's spans as the client reads them back: name, type, parent, inputs."""
    trace = client.get_trace(trace_id)
    names = {sp.span_id: sp.name for sp in trace.data.spans}
    return [[sp.name, sp.span_type, names.get(sp.parent_id), sp.inputs, sp.status.status_code.value]
            for sp in sorted(trace.data.spans, key=lambda sp: (sp.start_time_ns, sp.name))]


client = MlflowClient()
out: dict = {"experiments": {}, "prompts": {}}
run_names: dict[str, str] = {}
for exp in client.search_experiments(view_type=ViewType.ACTIVE_ONLY):
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    for run in runs:
        run_names[run.info.run_id] = run.info.run_name
    entry = {"tags": stable(exp.tags), "runs": {}, "traces": []}
    for run in runs:
        parent = run.data.tags.get("mlflow.parentRunId")
        entry["runs"][run.info.run_name] = {
            "status": run.info.status,
            "parent": run_names.get(parent) if parent else None,
            "params": dict(sorted(run.data.params.items())),
            "tags": stable(run.data.tags),
            "metrics": {k: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, k)]
                        for k in sorted(run.data.metrics)},
        }
    for info in sorted(client.search_traces(locations=[exp.experiment_id], include_spans=False),
                       key=lambda t: t.info.request_time):
        i = info.info
        entry["traces"].append({
            "name": i.tags.get("mlflow.traceName"), "state": str(i.state),
            "token_usage": json.loads(i.trace_metadata.get("mlflow.trace.tokenUsage", "null")),
            "source_run": run_names.get(i.trace_metadata.get("mlflow.sourceRun", "")),
            "linked_prompts": json.loads(i.tags.get("mlflow.linkedPrompts", "[]")),
            "tags": stable(i.tags),
            "assessments": sorted((a.name, a.value if hasattr(a, "value") else None) for a in i.assessments),
            "spans": spans(i.trace_id),
        })
    out["experiments"][exp.name] = entry
for prompt in client.search_prompts():
    versions = {}
    n = 1
    while True:
        try:
            v = client.get_prompt_version(prompt.name, n)
        except Exception:
            break
        if v is None:
            break
        versions[str(n)] = {"template": v.template, "tags": stable(v.tags)}
        n += 1
    out["prompts"][prompt.name] = {"tags": stable(prompt.tags), "versions": versions}
print(json.dumps(out, indent=1, sort_keys=True, default=str))
