"""A batch as bytes for the persistent queue, with everything the pipeline attached to it.

A trace batch without enrichment, of the default tenant, is stored as its plain OTLP
request bytes (what the sidecar's queue always held). One with GenAI columns, an origin or
another tenant, and every log or metric batch (the JSON names its signal; without one it
is traces, as before logs and metrics), is stored as an envelope whose first byte is 0: no
protobuf message starts with it (field number 0 is invalid), so the two forms cannot be
mistaken for each other and older queue files still read.

    0x00 "THB" version(1) | otlp length (u32, big endian) | OTLP bytes | JSON of the rest
"""

from __future__ import annotations

import json
import struct
from typing import Any

from tracehouse.core.errors import BadRequestError
from tracehouse.core.genai import GenAIColumns
from tracehouse.core.component import Signal
from tracehouse.core.pdata import BATCH_TYPES, DEFAULT_TENANT, OtlpBatch, RecordRange, TraceBatch

_MAGIC = b"\x00THB\x01"
_LENGTH = struct.Struct(">I")


def encode_batch(batch: OtlpBatch[Any]) -> bytes:
    otlp = batch.to_bytes()
    genai = batch.genai if isinstance(batch, TraceBatch) else None
    if batch.signal is Signal.TRACES and genai is None and batch.origin is None and batch.tenant == DEFAULT_TENANT:
        return otlp
    meta: dict[str, Any] = {}
    if batch.signal is not Signal.TRACES:
        meta["signal"] = batch.signal.value
    if batch.tenant != DEFAULT_TENANT:
        meta["tenant"] = batch.tenant
    if genai is not None:
        meta["genai"] = genai.to_json()
    if batch.origin is not None:
        o = batch.origin
        meta["origin"] = [o.topic, o.partition, o.first, o.last]
    return b"".join((_MAGIC, _LENGTH.pack(len(otlp)), otlp,
                     json.dumps(meta, separators=(",", ":")).encode()))


def decode_batch(data: bytes) -> OtlpBatch[Any]:
    """The batch `encode_batch` wrote; BadRequestError when the bytes are not one."""
    if not data.startswith(_MAGIC):
        return TraceBatch.from_bytes(data)
    start = len(_MAGIC) + _LENGTH.size
    if len(data) < start:
        raise BadRequestError("truncated batch envelope")
    (length,) = _LENGTH.unpack_from(data, len(_MAGIC))
    if len(data) < start + length:
        raise BadRequestError("truncated batch envelope")
    try:
        meta = json.loads(data[start + length:])
        batch = BATCH_TYPES[Signal(meta.get("signal", Signal.TRACES.value))].from_bytes(data[start:start + length])
        if "genai" in meta:
            if not isinstance(batch, TraceBatch):
                raise ValueError(f"GenAI columns on a {batch.signal.value} batch")
            batch.genai = GenAIColumns.from_json(meta["genai"])
            if batch.genai.size != batch.item_count:
                raise ValueError(f"GenAI columns for {batch.genai.size} spans, the batch has {batch.item_count}")
        if "tenant" in meta:
            batch.tenant = str(meta["tenant"])
        if "origin" in meta:
            topic, partition, first, last = meta["origin"]
            batch.origin = RecordRange(str(topic), int(partition), int(first), int(last))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BadRequestError(f"unreadable batch envelope: {exc}") from None
    return batch
