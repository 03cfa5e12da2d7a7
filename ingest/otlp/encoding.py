"""OTLP wire codec for traces: OTLP/JSON in and out, export responses, `google.rpc.Status` bodies.

No I/O here; the gRPC and HTTP receivers call these functions. This module only gathers
them; each lives with its own kind of work:

* json_decode.py: `decode_json`, OTLP/JSON -> `ExportTraceServiceRequest` (the hot path;
  its docstring lists the OTLP/JSON rules), with the single-value converters in
  json_scalars.py;
* json_encode.py: `encode_json`, the reverse;
* responses.py: `encode_export_response` and `encode_status`, in protobuf or JSON.
"""

from tracehouse.ingest.otlp.json_decode import MAX_NESTING_DEPTH, decode_json
from tracehouse.ingest.otlp.json_encode import encode_json
from tracehouse.ingest.otlp.responses import encode_export_response, encode_status

__all__ = [
    "MAX_NESTING_DEPTH",
    "decode_json",
    "encode_export_response",
    "encode_json",
    "encode_status",
]
