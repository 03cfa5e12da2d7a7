"""OTLP metrics -> column lists for the otel_metrics_* inserts, one table per metric kind,
as the Collector's clickhouseexporter fills them.

A metric's data points become rows of its kind's table: gauge, sum, histogram,
exponential_histogram, summary. Every row starts with the same resource, scope, metric and
point columns (`COMMON`); each kind adds its own. The Collector's rules: a number point's
`Value` is its double or its int as a double (0 when unset), as are exemplar values;
exemplar ids are hex (all zero when unset); an unset histogram min, max or sum is 0;
`ServiceName` is the resource's `service.name` as text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tracehouse.core.auth import TENANT_ATTRIBUTE
from tracehouse.core.pdata import MetricBatch
from tracehouse.sinks.clickhouse.columns import attrs_to_map

COMMON = (
    "ResourceAttributes", "ResourceSchemaUrl", "ScopeName", "ScopeVersion", "ScopeAttributes",
    "ScopeDroppedAttrCount", "ScopeSchemaUrl", "ServiceName", "MetricName", "MetricDescription", "MetricUnit",
    "Attributes", "StartTimeUnix", "TimeUnix", "Flags",
)
EXEMPLARS = ("Exemplars.FilteredAttributes", "Exemplars.TimeUnix", "Exemplars.Value", "Exemplars.SpanId",
             "Exemplars.TraceId")
# Per metric kind (the OTLP Metric `data` oneof): the columns after COMMON.
KIND_COLUMNS: dict[str, tuple[str, ...]] = {
    "gauge": ("Value", *EXEMPLARS),
    "sum": ("Value", *EXEMPLARS, "AggregationTemporality", "IsMonotonic"),
    "histogram": ("Count", "Sum", "BucketCounts", "ExplicitBounds", *EXEMPLARS, "Min", "Max",
                  "AggregationTemporality"),
    "exponential_histogram": ("Count", "Sum", "Scale", "ZeroCount", "PositiveOffset", "PositiveBucketCounts",
                              "NegativeOffset", "NegativeBucketCounts", *EXEMPLARS, "Min", "Max",
                              "AggregationTemporality"),
    "summary": ("Count", "Sum", "ValueAtQuantiles.Quantile", "ValueAtQuantiles.Value"),
}


# pdata's ids are fixed-size arrays: an unset one is written as zeros.
_NO_TRACE, _NO_SPAN = bytes(16), bytes(8)


def _number(point: Any) -> float:
    kind = point.WhichOneof("value")
    return float(getattr(point, kind)) if kind else 0.0


def _exemplars(point: Any) -> tuple[Any, ...]:
    exemplars = point.exemplars
    if not exemplars:
        return [], [], [], [], []
    return ([attrs_to_map(e.filtered_attributes) for e in exemplars], [e.time_unix_nano for e in exemplars],
            [_number(e) for e in exemplars], [(e.span_id or _NO_SPAN).hex() for e in exemplars],
            [(e.trace_id or _NO_TRACE).hex() for e in exemplars])


def _gauge(data: Any, point: Any) -> tuple[Any, ...]:
    return (_number(point), *_exemplars(point))


def _sum(data: Any, point: Any) -> tuple[Any, ...]:
    return (_number(point), *_exemplars(point), data.aggregation_temporality, data.is_monotonic)


def _histogram(data: Any, point: Any) -> tuple[Any, ...]:
    return (point.count, point.sum, list(point.bucket_counts), list(point.explicit_bounds), *_exemplars(point),
            point.min, point.max, data.aggregation_temporality)


def _exp_histogram(data: Any, point: Any) -> tuple[Any, ...]:
    pos, neg = point.positive, point.negative
    return (point.count, point.sum, point.scale, point.zero_count, pos.offset, list(pos.bucket_counts), neg.offset,
            list(neg.bucket_counts), *_exemplars(point), point.min, point.max, data.aggregation_temporality)


def _summary(data: Any, point: Any) -> tuple[Any, ...]:
    quantiles = point.quantile_values
    return point.count, point.sum, [q.quantile for q in quantiles], [q.value for q in quantiles]


_KIND_VALUES: dict[str, Callable[[Any, Any], tuple[Any, ...]]] = {
    "gauge": _gauge, "sum": _sum, "histogram": _histogram, "exponential_histogram": _exp_histogram,
    "summary": _summary,
}


def metrics_to_columns(batch: MetricBatch) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """Per metric kind with points in the batch: column names and column-oriented data."""
    tables: dict[str, list[list[Any]]] = {}
    for rm in batch.resources():
        resource = attrs_to_map(rm.resource.attributes)
        resource.pop(TENANT_ATTRIBUTE, None)  # carried through Kafka; stored as the Tenant column
        service = resource.get("service.name", "")
        for sm in rm.scope_metrics:
            scope = sm.scope
            head = (resource, rm.schema_url, scope.name, scope.version, attrs_to_map(scope.attributes),
                    scope.dropped_attributes_count, sm.schema_url, service)
            for metric in sm.metrics:
                kind = metric.WhichOneof("data")
                if kind is None:
                    continue  # no data points: nothing to store
                data = getattr(metric, kind)
                columns = tables.get(kind)
                if columns is None:
                    columns = tables[kind] = [[] for _ in range(len(COMMON) + len(KIND_COLUMNS[kind]))]
                values = _KIND_VALUES[kind]
                named = (metric.name, metric.description, metric.unit)
                for point in data.data_points:
                    row = (*head, *named, attrs_to_map(point.attributes), point.start_time_unix_nano,
                           point.time_unix_nano, point.flags, *values(data, point))
                    for column, value in zip(columns, row, strict=True):
                        column.append(value)
    out = {}
    for kind, columns in tables.items():
        names = [*COMMON, *KIND_COLUMNS[kind]]
        if batch.tenant:
            names.append("Tenant")
            columns.append([batch.tenant] * len(columns[0]))
        out[kind] = (names, columns)
    return out
