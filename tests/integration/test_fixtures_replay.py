"""Every captured payload replays through both receivers and comes back without loss."""

from __future__ import annotations

from pathlib import Path

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from allinone import AllInOne
from otlp_fixtures import FIXTURES, fixture_payloads
from tracehouse.ingest.otlp.encoding import decode_json
from tracehouse.sinks.clickhouse.columns import SPAN_KIND, STATUS_CODE, attrs_to_map

pytestmark = pytest.mark.integration
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def parse(path: Path) -> ExportTraceServiceRequest:
    body = path.read_bytes()
    return decode_json(body) if path.name.endswith(".json") else ExportTraceServiceRequest.FromString(body)


def send_everything(server: AllInOne) -> None:
    """Each .pb over HTTP and over gRPC, each JSON body over HTTP: duplicates on purpose."""
    for path in fixture_payloads():
        is_json = path.name.endswith(".json")
        ctype = "application/json" if is_json else "application/x-protobuf"
        resp = httpx.post(f"{server.otlp_http}/v1/traces", content=path.read_bytes(),
                          headers={"content-type": ctype}, timeout=30)
        assert resp.status_code == 200, (path, resp.text)
    with grpc.insecure_channel(server.otlp_grpc) as channel:
        export = channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
        for path in sorted(FIXTURES.glob("*/*.pb")):
            export(path.read_bytes(), timeout=30)


def assert_returned_without_loss(server: AllInOne) -> int:
    checked = 0
    with httpx.Client(base_url=server.query, timeout=30) as client:
        for path in fixture_payloads():
            request = parse(path)
            for rs in request.resource_spans:
                resource = attrs_to_map(rs.resource.attributes)
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        body = client.get(f"/api/v1/traces/{span.trace_id.hex()}").json()
                        matches = [s for s in body["spans"] if s["span_id"] == span.span_id.hex()]
                        # Sent two or three times; shown once.
                        assert len(matches) == 1, (path, span.name)
                        stored = matches[0]
                        assert stored["name"] == span.name
                        assert stored["parent_span_id"] == span.parent_span_id.hex()
                        assert stored["kind"] == SPAN_KIND[span.kind]
                        assert stored["start_time_unix_nano"] == str(span.start_time_unix_nano)
                        assert stored["end_time_unix_nano"] == str(span.end_time_unix_nano)
                        assert stored["status"] == {"code": STATUS_CODE[span.status.code],
                                                    "message": span.status.message}
                        assert stored["attributes"] == attrs_to_map(span.attributes)
                        assert stored["resource_attributes"] == resource
                        assert stored["scope"] == {"name": ss.scope.name, "version": ss.scope.version}
                        assert [e["name"] for e in stored["events"]] == [e.name for e in span.events]
                        assert [e["attributes"] for e in stored["events"]] == [attrs_to_map(e.attributes)
                                                                               for e in span.events]
                        checked += 1
    return checked


def test_every_fixture_replays_through_both_receivers_without_loss(all_in_one: AllInOne) -> None:
    send_everything(all_in_one)
    assert assert_returned_without_loss(all_in_one) == 26


def test_string_values_survive_verbatim(all_in_one: AllInOne) -> None:
    """MLflow JSON-encodes every value; the original string must be kept as sent."""
    send_everything(all_in_one)
    request = parse(FIXTURES / "mlflow" / "http-protobuf.pb")
    span = request.resource_spans[0].scope_spans[0].spans[0]
    body = httpx.get(f"{all_in_one.query}/api/v1/traces/{span.trace_id.hex()}", timeout=30).json()
    stored = next(s for s in body["spans"] if s["span_id"] == span.span_id.hex())
    assert stored["attributes"]["mlflow.spanType"] == '"CHAT_MODEL"'


def test_genai_fields_reach_the_query_api(all_in_one: AllInOne) -> None:
    send_everything(all_in_one)
    request = parse(FIXTURES / "openinference" / "http-protobuf.pb")
    spans = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    tool_flow = next(s for s in spans if any(kv.key == "session.id" for kv in s.attributes))
    detail = httpx.get(f"{all_in_one.query}/api/v1/traces/{tool_flow.trace_id.hex()}", timeout=30).json()
    stored = next(s for s in detail["spans"] if s["span_id"] == tool_flow.span_id.hex())
    genai = stored["genai"]
    assert (genai["provider"], genai["operation"], genai["span_kind"], genai["request_model"]) == (
        "openai", "chat", "llm", "gpt-4o")
    assert (genai["input_tokens"], genai["output_tokens"], genai["cached_input_tokens"],
            genai["reasoning_tokens"], genai["total_tokens"]) == (42, 17, 8, 5, 59)
    assert (genai["session_id"], genai["user_id"], genai["prompt_version"]) == ("sess-42", "user-7", "v3")
    assert genai["tokens_estimated"] is False
    assert genai["cost_source"] == "computed" and genai["total_cost_usd"] > 0
    assert genai["price_version"].startswith("genai-prices==")
    page = httpx.get(f"{all_in_one.query}/api/v1/traces", timeout=30,
                     params={"start": "2020-01-01T00:00:00Z", "session": "sess-42"}).json()
    assert [t["trace_id"] for t in page["traces"]] == [tool_flow.trace_id.hex()]
    row = page["traces"][0]
    # Two LLM calls in the tool flow, each 42 + 17, shown once though the fixture was sent twice.
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (84, 34, 118)
    assert row["models"] == ["gpt-4o"]
