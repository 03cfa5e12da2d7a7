"""OTLP log records -> column lists for the otel_logs insert, as the Collector's
clickhouseexporter fills them.

One pass, appending straight into per-column lists; resource and scope values are
converted once for all their records. The Collector's rules: `Timestamp` is the record's
time, or its observed time when the time is unset; ids are lowercase hex, empty when unset
(all zero); `TraceFlags` and `SeverityNumber` are the low byte of the value (Go's uint8
conversion); `Body` is the value as text (columns.py's `any_to_str`, pcommon AsString).
`TimestampTime` is left to its column default (toDateTime(Timestamp)).
"""

from __future__ import annotations

from typing import Any

from tracehouse.core.auth import TENANT_ATTRIBUTE
from tracehouse.core.pdata import EVENT_NAME_ATTRIBUTE, LogBatch
from tracehouse.sinks.clickhouse.columns import any_to_str, attrs_to_map
from tracehouse.sinks.clickhouse.scores import EVALUATION_EVENT, evaluation_score

LOG_COLUMNS = (
    "Timestamp", "TraceId", "SpanId", "TraceFlags", "SeverityText", "SeverityNumber", "ServiceName", "Body",
    "ResourceSchemaUrl", "ResourceAttributes", "ScopeSchemaUrl", "ScopeName", "ScopeVersion", "ScopeAttributes",
    "LogAttributes", "EventName",
)


def hex_id(value: bytes) -> str:
    """Lowercase hex, or "" for an unset (empty or all-zero) id, as the Collector writes it."""
    return value.hex() if any(value) else ""


def logs_to_columns(batch: LogBatch, scores: list[dict[str, Any]] | None = None
                    ) -> tuple[list[str], list[list[Any]]]:
    """Column names and column-oriented data for every log record in the batch. With
    `scores`, the score rows of its `gen_ai.evaluation.result` events are appended to it:
    named by the record's `event_name`, or by the `event.name` attribute SDKs used before
    OTLP had that field."""
    columns: list[list[Any]] = [[] for _ in LOG_COLUMNS]
    (ts, trace_ids, span_ids, flags, sev_text, sev_num, services, bodies, res_urls, res_attrs, scope_urls,
     scope_names, scope_versions, scope_attrs, log_attrs, event_names) = columns
    for rl in batch.resources():
        resource = attrs_to_map(rl.resource.attributes)
        resource.pop(TENANT_ATTRIBUTE, None)  # carried through Kafka; stored as the Tenant column
        service = resource.get("service.name", "")
        res_url = rl.schema_url
        for sl in rl.scope_logs:
            scope = sl.scope
            scope_map = attrs_to_map(scope.attributes)
            scope_url, scope_name, scope_version = sl.schema_url, scope.name, scope.version
            for record in sl.log_records:
                ts.append(record.time_unix_nano or record.observed_time_unix_nano)
                trace_ids.append(hex_id(record.trace_id))
                span_ids.append(hex_id(record.span_id))
                flags.append(record.flags & 0xFF)
                sev_text.append(record.severity_text)
                sev_num.append(record.severity_number & 0xFF)
                services.append(service)
                bodies.append(any_to_str(record.body))
                res_urls.append(res_url)
                res_attrs.append(resource)
                scope_urls.append(scope_url)
                scope_names.append(scope_name)
                scope_versions.append(scope_version)
                scope_attrs.append(scope_map)
                attributes = {kv.key: any_to_str(kv.value) for kv in record.attributes}
                log_attrs.append(attributes)
                event_names.append(record.event_name)
                if scores is not None and EVALUATION_EVENT in (record.event_name, attributes.get(EVENT_NAME_ATTRIBUTE)):
                    score = evaluation_score(trace_ids[-1], span_ids[-1], attributes, ts[-1])
                    if score is not None:
                        scores.append(score)
    names = list(LOG_COLUMNS)
    if batch.tenant:
        names.append("Tenant")
        columns.append([batch.tenant] * len(ts))
    return names, columns
