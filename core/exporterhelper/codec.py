"""A batch as bytes for the persistent queue, with everything the pipeline attached to it.

A batch without enrichment, of the default tenant, is stored as its plain OTLP request
bytes (what the sidecar's queue always held). One with GenAI columns, an origin or another
tenant is stored as an envelope whose
first byte is 0: no protobuf message starts with it (field number 0 is invalid), so the
two forms cannot be mistaken for each other and older queue files still read.

    0x00 "THB" version(1) | otlp length (u32, big endian) | OTLP bytes | JSON of the rest
"""

from __future__ import annotations

import json
import struct
from typing import Any

from tracehouse.core.errors import BadRequestError
from tracehouse.core.genai import GenAIColumns
from tracehouse.core.pdata import DEFAULT_TENANT, RecordRange, TraceBatch

_MAGIC = b"\x00THB\x01"
_LENGTH = struct.Struct(">I")


def encode_batch(batch: TraceBatch) -> bytes:
    otlp = batch.to_bytes()
    if batch.genai is None and batch.origin is None and batch.tenant == DEFAULT_TENANT:
        return otlp
    meta: dict[str, Any] = {}
    if batch.tenant != DEFAULT_TENANT:
        meta["tenant"] = batch.tenant
    if batch.genai is not None:
        meta["genai"] = batch.genai.to_json()
    if batch.origin is not None:
        o = batch.origin
        meta["origin"] = [o.topic, o.partition, o.first, o.last]
    return b"".join((_MAGIC, _LENGTH.pack(len(otlp)), otlp,
                     json.dumps(meta, separators=(",", ":")).encode()))


def decode_batch(data: bytes) -> TraceBatch:
    """The batch `encode_batch` wrote; BadRequestError when the bytes are not one."""
    if not data.startswith(_MAGIC):
        return TraceBatch.from_bytes(data)
    start = len(_MAGIC) + _LENGTH.size
    if len(data) < start:
        raise BadRequestError("truncated batch envelope")
    (length,) = _LENGTH.unpack_from(data, len(_MAGIC))
    if len(data) < start + length:
        raise BadRequestError("truncated batch envelope")
    batch = TraceBatch.from_bytes(data[start:start + length])
    try:
        meta = json.loads(data[start + length:])
        if "genai" in meta:
            batch.genai = GenAIColumns.from_json(meta["genai"])
            if batch.genai.size != batch.span_count:
                raise ValueError(f"GenAI columns for {batch.genai.size} spans, the batch has {batch.span_count}")
        if "tenant" in meta:
            batch.tenant = str(meta["tenant"])
        if "origin" in meta:
            topic, partition, first, last = meta["origin"]
            batch.origin = RecordRange(str(topic), int(partition), int(first), int(last))
    except (ValueError, KeyError, TypeError) as exc:
        raise BadRequestError(f"unreadable batch envelope: {exc}") from None
    return batch
