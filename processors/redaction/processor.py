"""The `redaction` processor: the Collector's redaction rules plus GenAI content modes.

It takes traces and logs. Per attribute map (resource, scope, span, span event, log
record, and a log record's map body, whose top-level keys are read as one), in the
Collector's order: ignored keys pass untouched; keys not allowed (allow_all_keys false)
are removed; keys matching blocked_keys get "****" as their whole value; the other values
get blocked_values' matches masked. On top of that, message content (content.py says which attributes hold
it) is masked by the detectors or dropped, inside its JSON, and the detectors also mask
every other string value (mask_attributes) and span status messages.

Log records are the GenAI events of instrumentations that send content as logs (the
inference details event's message attributes, the per-message events' `{content, role,
tool_calls}` bodies): a record is read as the event its `event_name` (or `event.name`
attribute) names, so its attributes and map body get the same content classes as a span
event of that name; a string or array body is content on a `gen_ai.*` event and a plain
value on any other record. Values keep their types: a kvlist body stays a kvlist.

The batch is raw protobuf: values are changed in place and `mark_mutated()` is called only
when something changed, so an untouched batch keeps its wire bytes. A value is parsed as
JSON only when it is a known message attribute and a detector may match it (or `drop`
needs it); see detectors.py for how values are skipped cheaply.

Placed after genai_normalize, the batch carries GenAI columns read from the unredacted
attributes; the columns of every changed span are re-read from the redacted ones (prompt
name, version, template and its hash, variables, session and user ids), and its message
columns masked or cleared, so nothing downstream (the prompt registry, the disk queue,
the spans table) sees what was redacted.

A request of traces is first read whole, in C (core/_otlpwire.c `gate_units`): the
strings of each resource, scope and span, joined, through the detectors' gate. When no rule
looks at keys (allow_all_keys, no ignored or blocked keys, no blocked_values) and content is
not dropped, only the detectors can change a value, so a resource, scope or span whose
joined text the gate clears is not walked. The gate only ever tests for what a match must
contain, and each value's text lies whole in its owner's: this skips only what the walk
would leave as it is, without reading attributes through upb.

A batch over `_INLINE_BYTES` is redacted on a worker thread: the detectors' regular
expressions over 200k-character messages take tens of milliseconds each (a 4 MB request
of PII-heavy messages took 2.4 s), and on the event loop that would stall every endpoint
of the process, health probes included.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import astuple, dataclass
from functools import partial
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tracehouse.core.anyvalue import to_python
from tracehouse.core.auth import TENANT_ATTRIBUTE
from tracehouse.core.component import Consumer, Host, Settings
from tracehouse.core.genai import ChatMessage, GenAIColumns
from tracehouse.core.native import otlpwire
from tracehouse.core.pdata import LogBatch, TraceBatch, any_value, count_spans, log_event_name
from tracehouse.processors.redaction import content as c
from tracehouse.processors.redaction.config import RedactionConfig
from tracehouse.processors.redaction.detectors import MIN_LENGTH, Scanner

# Without the C module (core/native.py) every request is walked.
gate_units: Callable[[bytes, tuple[bytes, ...], bool, bool], bytes] | None = otlpwire.gate_units if otlpwire else None

# Batches up to this many wire bytes are redacted on the event loop.
_INLINE_BYTES = 1 << 20

MASK = "****"  # the Collector's fixed mask for blocked keys and values

# The Collector's summary attributes. They are never redacted themselves, so a second
# redaction processor adds to them.
REDACTED_KEYS, REDACTED_COUNT = "redaction.redacted.keys", "redaction.redacted.count"
MASKED_KEYS, MASKED_COUNT = "redaction.masked.keys", "redaction.masked.count"
IGNORED_COUNT = "redaction.ignored.count"


@dataclass(frozen=True, slots=True)
class _Summary:
    """The summary attribute names for one kind of map: attributes, or a log record's body
    (whose figures the Collector puts in the record's attributes as `redaction.body.*`)."""

    redacted_keys: str
    redacted_count: str
    masked_keys: str
    masked_count: str
    ignored_count: str


_ATTRIBUTES = _Summary(REDACTED_KEYS, REDACTED_COUNT, MASKED_KEYS, MASKED_COUNT, IGNORED_COUNT)
_BODY = _Summary("redaction.body.redacted.keys", "redaction.body.redacted.count", "redaction.body.masked.keys",
                 "redaction.body.masked.count", "redaction.body.ignored.count")
SUMMARY_KEYS = frozenset({*astuple(_ATTRIBUTES), *astuple(_BODY), "redaction.allowed.keys",
                          "redaction.allowed.count", "redaction.body.allowed.keys", "redaction.body.allowed.count"})
# Passed untouched like the summary: the tenant a Kafka record belongs to (set by the
# exporter from the authenticated caller, never by the data) is not the app's to redact.
_UNTOUCHED = SUMMARY_KEYS | {TENANT_ATTRIBUTE}

# Metric `kind` labels besides the detector kinds.
BLOCKED_KEY, BLOCKED_VALUE, CONTENT = "blocked_key", "blocked_value", "content"

# GenAI columns re-read from a changed span (free text that redaction may have touched).
_REREAD = ("prompt_name", "prompt_version", "prompt_template", "prompt_variables", "session_id", "user_id")
_RESOURCE_FALLBACK = ("session_id", "user_id")  # as genai_normalize's resource_fallback
_MAX_RULES = 8192


class _Rule(enum.Enum):
    PASS = 0
    IGNORE = 1
    SUMMARY = 2
    REDACT = 3  # removed (not allowed)
    BLOCK = 4  # whole value masked (blocked_keys)


# (rule, content class as processed, whether the value is read, whether the key holds content)
_Plan = tuple[_Rule, "c.Content | None", bool, bool]


class _Tally:
    """What one attribute map lost: for the summary attributes and the GenAI columns."""

    __slots__ = ("content_gone", "ignored", "masked", "redacted")

    @property
    def touched(self) -> bool:
        """A value was masked or removed (not only a summary attribute added)."""
        return bool(self.redacted or self.masked)

    def __init__(self) -> None:
        self.redacted: list[str] = []
        self.masked: list[str] = []
        self.ignored = 0
        self.content_gone = False  # a content attribute was removed or blocked whole


# A value to mask: (key, the value (changed in place), content class, its text or a
# structured value's wire text for the gate, whether it is structured).
_Value = tuple[str, AnyValue, "c.Content | None", str, bool]


def _readable(key: str, value: AnyValue, cls: c.Content | None) -> _Value | None:
    """`value` as the rules read it: a non-empty string, or an array or a kvlist by its wire
    form, which holds its every string contiguous: enough for the gate, without building
    Python objects for values that pass. None for empty strings, numbers, bools and bytes.

    The wire form's length bytes of 128 and over are not UTF-8: ignored rather than replaced,
    so ASCII text gives an ASCII gate text (the digit gate's fast path; U+FFFD took it off
    it). They never join a string's own bytes: a length ends with a byte under 0x80."""
    s = value.string_value
    if s:
        return (key, value, cls, s, False)
    which = value.WhichOneof("value")
    if which == "array_value" or which == "kvlist_value":
        return (key, value, cls, value.SerializeToString().decode("utf-8", "ignore"), True)
    return None


class RedactionProcessor:
    mutates_data = True  # masks and removes attributes in place

    def __init__(self, settings: Settings, config: RedactionConfig, next_consumer: Consumer):
        self._settings = settings
        self._config = config
        self._next = next_consumer
        self._host: Host | None = None
        self._labels = (str(settings.id), settings.pipeline or "")
        self._allowed = frozenset(config.allowed_keys)
        self._ignored = frozenset(config.ignored_keys)
        self._blocked_keys = [re.compile(p) for p in config.blocked_keys]
        self._blocked_values = [re.compile(p) for p in config.blocked_values]
        genai = config.genai
        self._scanner = Scanner(genai.detectors)
        self._content = genai.content
        self._scan_plain = genai.mask_attributes and self._scanner.enabled
        # Only the detectors can change a value: what their gate clears is left as it is.
        self._gate_requests = (gate_units is not None and config.allow_all_keys and not self._ignored
                               and not self._blocked_keys and not self._blocked_values and self._content != "drop")
        self.spans_cleared = 0  # spans the gate let through without a walk (tests, bench)
        self._plans: dict[str, _Plan] = {}
        self._event_plans: dict[str, _Plan] = {}  # keys of gen_ai.* events
        # A string or array log body: message content on a gen_ai.* event (JSON: a JSON text
        # is masked inside, plain text as text), a plain value on any other record.
        self._body_plans = {False: self._make_plan(_Rule.PASS, None),
                            True: self._make_plan(_Rule.PASS, c.Content.JSON)}
        # Totals since start (also exported as Prometheus counters).
        self.masked_values: dict[str, int] = {}
        self.redacted_keys = 0
        self.redacted_spans = 0
        self.redacted_log_records = 0
        self._lock = threading.Lock()  # large batches are redacted on worker threads, maybe at once

    async def start(self, host: Host) -> None:
        self._host = host
        cfg = self._config
        self._settings.logger.info(
            "redaction configured", content=cfg.genai.content, detectors=list(self._scanner.kinds),
            mask_attributes=cfg.genai.mask_attributes, allow_all_keys=cfg.allow_all_keys,
            allowed_keys=len(cfg.allowed_keys), ignored_keys=len(cfg.ignored_keys),
            blocked_keys=len(cfg.blocked_keys), blocked_values=len(cfg.blocked_values), summary=cfg.summary)
        if not cfg.allow_all_keys and not cfg.allowed_keys:
            self._settings.logger.warning("allow_all_keys is false and allowed_keys is empty: every attribute "
                                          "except ignored_keys will be removed (the Collector's fail-closed rule)")

    async def shutdown(self) -> None:
        return None

    async def consume(self, batch: TraceBatch | LogBatch) -> None:
        process: Callable[[Any], int] = self.process if isinstance(batch, TraceBatch) else self.process_logs
        if batch.nbytes > _INLINE_BYTES:
            await asyncio.to_thread(process, batch)
        else:
            process(batch)
        await self._next.consume(batch)

    # ------------------------------------------------------------------------------ batch

    def process(self, batch: TraceBatch) -> int:
        """Redact `batch` in place; returns the number of spans whose values changed."""
        counts: dict[str, int] = {}
        tally_keys = 0
        changed_spans = 0
        mutated = False
        cols = batch.genai
        i = skipped = 0
        for request in batch.requests:
            hits = self._gate_hits(batch, request)
            if hits is not None and 1 not in hits:  # the gate cleared all of it: nothing to walk
                n = batch.item_count if len(batch.requests) == 1 else count_spans(request)
                i += n
                skipped += n
                continue
            # Per resource, scope and span in walk order: True when the gate cleared it; past
            # the units (no gate, or more than the units: never on upb's own bytes), walk.
            cleared = itertools.chain((not hit for hit in hits or b""), itertools.repeat(False))
            for rs in request.resource_spans:
                removed = None if next(cleared) else self._outer(rs.resource.attributes, counts)
                resource_changed = removed is not None
                resource: dict[str, AnyValue] | None = None
                if removed is not None:
                    tally_keys += removed
                    mutated = True
                for ss in rs.scope_spans:
                    removed = None if next(cleared) else self._outer(ss.scope.attributes, counts)
                    if removed is not None:
                        tally_keys += removed
                        mutated = True
                    for span in ss.spans:
                        if next(cleared) and not resource_changed:
                            i += 1
                            skipped += 1
                            continue
                        changed, touched, content_gone, keys = self._span(span, counts)
                        tally_keys += keys
                        if touched:
                            changed_spans += 1
                        if cols is not None and (changed or resource_changed) and i < cols.size:
                            if resource is None:
                                resource = {kv.key: kv.value for kv in rs.resource.attributes}
                            self._reread(cols, i, span, resource, content_gone)
                        mutated |= changed
                        i += 1
        self.spans_cleared += skipped
        if mutated:
            batch.mark_mutated()
            self._publish(counts, tally_keys, changed_spans, logs=False)
        return changed_spans

    def _span(self, span: Any, counts: dict[str, int]) -> tuple[bool, bool, bool, int]:
        """One span's attributes, events and status message in place: (changed, touched,
        content_gone, attributes removed)."""
        changed = touched = content_gone = False
        keys = 0
        tally = self._attrs(span.attributes, False, counts)
        if tally is not None:
            changed, touched, content_gone = True, tally.touched, tally.content_gone
            keys += len(tally.redacted)
        for event in span.events:
            etally = self._attrs(event.attributes, event.name.startswith("gen_ai."), counts)
            if etally is not None:
                changed, touched = True, touched or etally.touched
                content_gone = content_gone or etally.content_gone
                keys += len(etally.redacted)
        status = span.status.message
        if status and len(status) >= MIN_LENGTH:
            new = self._plain(status, counts)
            if new is not status:
                span.status.message = new
                changed = touched = True
        return changed, touched, content_gone, keys

    def _gate_hits(self, batch: TraceBatch, request: Any) -> bytes | None:
        """Per resource, scope and span of `request` in walk order, 1 where the gate says a
        detector may match (see the module doc); None when the gate does not apply."""
        if not self._gate_requests:
            return None
        literals, email, digits = self._scanner.wire_gate
        try:
            return gate_units(batch.request_bytes(request), literals, email, digits)  # type: ignore[misc]
        except ValueError:  # a wire form the C reader does not take: walk it all
            return None

    def process_logs(self, batch: LogBatch) -> int:
        """Redact `batch` in place; returns the number of log records whose values changed.
        A record's attributes and body go through the rules of a span event of its name."""
        counts: dict[str, int] = {}
        tally_keys = 0
        changed_records = 0
        mutated = False
        for rl in batch.resources():
            removed = self._outer(rl.resource.attributes, counts)
            if removed is not None:
                tally_keys += removed
                mutated = True
            for sl in rl.scope_logs:
                removed = self._outer(sl.scope.attributes, counts)
                if removed is not None:
                    tally_keys += removed
                    mutated = True
                for record in sl.log_records:
                    genai_event = log_event_name(record).startswith("gen_ai.")
                    tally = self._attrs(record.attributes, genai_event, counts)
                    btally = self._body(record.body, genai_event, counts)
                    if btally is not None and self._config.summary != "silent":
                        self._summarize(record.attributes, btally, _BODY)
                    if tally is None and btally is None:
                        continue
                    mutated = True
                    if (tally is not None and tally.touched) or (btally is not None and btally.touched):
                        changed_records += 1
                    tally_keys += (len(tally.redacted) if tally else 0) + (len(btally.redacted) if btally else 0)
        if mutated:
            batch.mark_mutated()
            self._publish(counts, tally_keys, changed_records, logs=True)
        return changed_records

    def _outer(self, kvs: Any, counts: dict[str, int]) -> int | None:
        """A resource's or a scope's attributes: the attributes removed, or None when unchanged."""
        tally = self._attrs(kvs, False, counts)
        return None if tally is None else len(tally.redacted)

    def _publish(self, counts: dict[str, int], redacted_keys: int, items: int, *, logs: bool) -> None:
        """Once per batch: a labelled Prometheus child costs a lookup per call. `items`:
        the spans (or log records, with `logs`) with a value masked or removed."""
        with self._lock:
            for kind, n in counts.items():
                self.masked_values[kind] = self.masked_values.get(kind, 0) + n
            self.redacted_keys += redacted_keys
            if logs:
                self.redacted_log_records += items
            else:
                self.redacted_spans += items
        # Kinds and counts only, never a value.
        self._settings.logger.debug("batch redacted", **{"log_records" if logs else "spans": items},
                                    removed_attributes=redacted_keys, masked=counts)
        if self._host is None:
            return
        t = self._host.telemetry
        for kind, n in counts.items():
            t.redaction_masked_values.labels(*self._labels, kind).inc(n)
        if redacted_keys:
            t.redaction_redacted_keys.labels(*self._labels).inc(redacted_keys)
        if items:
            (t.redaction_log_records if logs else t.redaction_spans).labels(*self._labels).inc(items)

    # ---------------------------------------------------------------------- attribute maps

    def _rule(self, key: str) -> _Rule:
        if key in self._ignored:
            return _Rule.IGNORE
        if key in _UNTOUCHED:
            return _Rule.SUMMARY
        if not self._config.allow_all_keys and key not in self._allowed:
            return _Rule.REDACT
        if any(p.search(key) for p in self._blocked_keys):
            return _Rule.BLOCK
        return _Rule.PASS

    def _plan(self, key: str, genai_event: bool) -> _Plan:
        """A key's plan (see _Plan), cached: spans of one library repeat their keys."""
        plans = self._event_plans if genai_event else self._plans
        plan = plans.get(key)
        if plan is None:
            plan = self._make_plan(self._rule(key), c.classify_event("gen_ai.", key) if genai_event
                                   else c.classify(key))
            if len(plans) >= _MAX_RULES:
                plans.clear()
            plans[key] = plan
        return plan

    def _make_plan(self, rule: _Rule, cls: c.Content | None) -> _Plan:
        is_content = cls is not None
        if cls is not None and self._content == "keep":
            cls = c.Content.KEPT if self._blocked_values else None
            scan = bool(self._blocked_values)
        else:
            scan = cls is not None or self._scan_plain or bool(self._blocked_values)
        return (rule, cls, scan, is_content)

    def _attrs(self, kvs: Any, genai_event: bool, counts: dict[str, int],
               summary: _Summary | None = _ATTRIBUTES) -> _Tally | None:
        """Apply the rules to one attribute map in place (the attributes of a `gen_ai.*`
        event with `genai_event`); a tally when anything changed. The summary attributes
        are added to the map unless `summary` is None (a log body: its caller puts them
        on the record)."""
        if not kvs:
            return None
        redacted: list[str] = []
        masked: list[str] = []
        remove: list[int] = []
        ignored = 0
        content_gone = False
        values: list[_Value] = []
        plans = self._event_plans if genai_event else self._plans
        for i, kv in enumerate(kvs):
            key = kv.key
            rule, cls, scan, is_content = plans.get(key) or self._plan(key, genai_event)
            if rule is not _Rule.PASS:
                if rule is _Rule.IGNORE:
                    ignored += 1
                elif rule is _Rule.REDACT:
                    remove.append(i)
                    redacted.append(key)
                    content_gone |= is_content
                elif rule is _Rule.BLOCK:
                    kv.value.CopyFrom(AnyValue(string_value=MASK))
                    masked.append(key)
                    counts[BLOCKED_KEY] = counts.get(BLOCKED_KEY, 0) + 1
                    content_gone |= is_content
                continue
            if scan:
                value = _readable(key, kv.value, cls)
                if value is not None:
                    values.append(value)
        if values:
            masked += self._mask(values, counts)
        for i in reversed(remove):
            del kvs[i]
        if not (redacted or masked or (ignored and self._config.summary != "silent")):
            return None
        tally = _Tally()
        tally.redacted, tally.masked, tally.ignored, tally.content_gone = redacted, masked, ignored, content_gone
        if summary is not None and self._config.summary != "silent":
            self._summarize(kvs, tally, summary)
        return tally

    def _body(self, body: AnyValue, genai_event: bool, counts: dict[str, int]) -> _Tally | None:
        """A log record's body, in place: a map's top-level keys as an attribute map (the
        Collector's rules for a map body), a string or an array as one value."""
        if body.HasField("kvlist_value"):
            return self._attrs(body.kvlist_value.values, genai_event, counts, None)
        _, cls, scan, _ = self._body_plans[genai_event]
        value = _readable("body", body, cls) if scan else None
        if value is None:
            return None
        masked = self._mask([value], counts)
        if not masked:
            return None
        tally = _Tally()
        tally.masked = masked
        return tally

    def _mask(self, values: list[_Value], counts: dict[str, int]) -> list[str]:
        """Mask (or drop) the values of one map in place; the keys of those that changed."""
        scan_all = self._worth_scanning(values)
        drop = self._content == "drop"
        masked: list[str] = []
        for key, value, cls, s, is_tree in values:
            if not scan_all and not (drop and cls is not None and cls is not c.Content.TEMPLATE
                                     and cls is not c.Content.KEPT):
                continue
            if is_tree:
                tree, changed = self._tree(to_python(value), cls, counts, scan_all)
                if changed:
                    value.CopyFrom(any_value(tree))
                    masked.append(key)
            else:
                new = self._string(s, cls, counts, scan_all)
                if new is not s:
                    value.string_value = new
                    masked.append(key)
        return masked

    def _worth_scanning(self, values: list[_Value]) -> bool:
        """Whether any value of the map may be masked: always with blocked_values, else when
        the detectors' gate fires on the values joined (one gate call for the whole map
        instead of one per value). `drop` handles content whatever this says."""
        if self._blocked_values:
            return True
        if not self._scanner.enabled:
            return False
        return self._scanner.may_match("\x00".join(v[3] for v in values))

    def _summarize(self, kvs: Any, tally: _Tally, names: _Summary) -> None:
        debug = self._config.summary == "debug"
        existing = {kv.key: kv for kv in kvs if kv.key in SUMMARY_KEYS}
        for keys, keys_attr, count_attr in ((tally.redacted, names.redacted_keys, names.redacted_count),
                                            (tally.masked, names.masked_keys, names.masked_count),
                                            (None, "", names.ignored_count)):
            n = tally.ignored if keys is None else len(keys)
            if not n:
                continue
            if debug and keys is not None:
                names_ = list(keys)
                old = existing.get(keys_attr)
                if old is not None and old.value.string_value:
                    names_ += old.value.string_value.split(",")
                _put(kvs, existing, keys_attr, AnyValue(string_value=",".join(sorted(names_))))
            old = existing.get(count_attr)
            total = n + (old.value.int_value if old is not None else 0)
            _put(kvs, existing, count_attr, AnyValue(int_value=total))

    # ------------------------------------------------------------------------------- values

    def _blocked(self, s: str, counts: dict[str, int]) -> str:
        for pattern in self._blocked_values:
            new, n = pattern.subn(MASK, s)
            if n and new != s:
                counts[BLOCKED_VALUE] = counts.get(BLOCKED_VALUE, 0) + n
                s = new
        return s

    def _plain(self, s: str, counts: dict[str, int]) -> str:
        """A value that is not content: detectors (mask_attributes), then blocked_values."""
        new = self._scanner.mask(s, counts) if self._scan_plain else s
        return self._blocked(new, counts) if self._blocked_values else new

    def _text(self, s: str, counts: dict[str, int]) -> str:
        """Content text (or a template) in mask mode."""
        new = self._scanner.mask(s, counts)
        return self._blocked(new, counts) if self._blocked_values else new

    def _string(self, s: str, cls: c.Content | None, counts: dict[str, int], may_match: bool = True) -> str:
        """One string attribute value; `s` itself when unchanged. `may_match` false: the
        detectors' gate already found nothing in the value's attribute map."""
        if cls is None:
            return self._plain(s, counts)
        if cls is c.Content.KEPT:
            return self._blocked(s, counts)
        if cls is c.Content.TEMPLATE:
            return self._text(s, counts)
        drop = self._content == "drop"
        if cls is c.Content.TEXT:
            if drop:
                counts[CONTENT] = counts.get(CONTENT, 0) + 1
                return ""
            return self._text(s, counts)
        # JSON or OPAQUE: parse only when something may change (the loose scan allows for
        # the JSON escapes next to a token).
        if not drop and not self._blocked_values and not self._scanner.find(s, loose=True):
            return s
        tree = _loads(s)
        if tree is _NOT_JSON:
            if drop:
                counts[CONTENT] = counts.get(CONTENT, 0) + 1
                return ""
            return self._text(s, counts)
        # After a drop, mask what is left only when the text may hold a match at all.
        scan = not drop or bool(self._blocked_values) or (may_match and self._scanner.may_match(s))
        tree, changed = self._tree(tree, cls, counts, scan)
        if not changed:
            return s
        compact = '": ' not in s and '", ' not in s
        return json.dumps(tree, ensure_ascii=False, separators=(",", ":") if compact else (", ", ": "))

    def _tree(self, tree: Any, cls: c.Content | None, counts: dict[str, int],
              scan: bool = True) -> tuple[Any, bool]:
        """A decoded JSON or structured value: drop (content, `drop` mode), then mask the
        string leaves left (unless `scan` is false: nothing in it can match). Changed in
        place where possible."""
        dropped = 0
        if cls is not None and cls is not c.Content.KEPT and self._content == "drop":
            tree, dropped = c.drop_tree(tree, opaque=cls is c.Content.OPAQUE)
            if dropped:
                counts[CONTENT] = counts.get(CONTENT, 0) + dropped
        if not scan:
            return tree, dropped > 0
        mask: Callable[[str], str]
        if cls is None:
            mask = partial(self._plain, counts=counts)
        elif cls is c.Content.KEPT:
            mask = partial(self._blocked, counts=counts)
        else:
            mask = partial(self._text, counts=counts)
        tree, changed = c.map_strings(tree, mask)
        return tree, changed or dropped > 0

    # ---------------------------------------------------------------------- GenAI columns

    def _reread(self, cols: GenAIColumns, i: int, span: Any, resource: Mapping[str, AnyValue],
                content_gone: bool) -> None:
        """Re-read a changed span's free-text GenAI columns from its redacted attributes,
        as genai_normalize reads them, and mask or clear its message columns."""
        # Imported here: only a batch that went through genai_normalize has columns, so the
        # sidecar (redaction before Kafka, no GenAI processors) never loads them.
        from tracehouse.processors.genai_normalize import mapping
        from tracehouse.processors.genai_normalize.processor import first_value, link_prompt
        from tracehouse.processors.genai_normalize.values import json_text, text

        attrs = {kv.key: kv.value for kv in span.attributes}
        for name in _REREAD:
            column = getattr(cols, name)
            value = first_value(attrs, mapping.STRING_FIELDS[name], json_text if name == "prompt_variables" else text)
            if value is None and name in _RESOURCE_FALLBACK and column[i]:
                value = first_value(resource, mapping.STRING_FIELDS[name], text)
            column[i] = value or ""
        # The link (hash, source, derived name) follows the redacted template: the registry
        # versions what it stores, and a hash of the secret would be a lead to it.
        cols.prompt_template_hash[i] = cols.prompt_source[i] = ""
        link_prompt(attrs, cols, i)
        if self._content == "keep" and not content_gone:
            return
        for column in (cols.input_messages, cols.output_messages):
            messages = column[i]
            if messages is None:
                continue
            if self._content == "drop" or content_gone:
                column[i] = None  # nothing left to count tokens from
            else:
                counts: dict[str, int] = {}  # counted once, on the attributes
                column[i] = [self._message(m, counts) for m in messages]

    def _message(self, m: ChatMessage, counts: dict[str, int]) -> ChatMessage:
        """A masked copy: a clone of the batch may share the original."""
        calls = [{k: self._text(v, counts) if isinstance(v, str) else v for k, v in call.items()}
                 for call in m.tool_calls]
        return ChatMessage(role=m.role, content=self._text(m.content, counts), tool_calls=calls)


_NOT_JSON = object()


def _loads(s: str) -> Any:
    """The JSON value of a message attribute, or _NOT_JSON for plain text. Of the bare
    literals only `null` (MLflow's empty output) is JSON here: a lone number or word is
    taken as text, so `drop` removes it."""
    if s == "null":
        return None
    head = s.lstrip()[:1]
    if head not in ('{', '[', '"'):
        return _NOT_JSON
    try:
        return json.loads(s)
    except ValueError:
        return _NOT_JSON


def _put(kvs: Any, existing: dict[str, KeyValue], key: str, value: AnyValue) -> None:
    kv = existing.get(key)
    if kv is None:
        kv = kvs.add()
        kv.key = key
        existing[key] = kv
    kv.value.CopyFrom(value)
