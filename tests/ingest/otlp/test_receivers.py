"""OTLP/HTTP and OTLP/gRPC receivers: status codes, bodies, and what reaches the pipeline."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import httpx
import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from otlp_fixtures import FIXTURES, fixture_payloads
from tracehouse.core.component import ComponentID, Kind, Settings
from tracehouse.core.errors import PermanentError, RetryableError
from tracehouse.core.testing import TestHost, TracesSink
from tracehouse.ingest.otlp.config import GrpcConfig, HttpConfig, OtlpReceiverConfig, ProtocolsConfig
from tracehouse.ingest.otlp.encoding import decode_json
from tracehouse.ingest.otlp.receiver import OtlpReceiver

PB = {"content-type": "application/x-protobuf"}
JSON = {"content-type": "application/json"}
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
MAX_BODY = 256 * 1024


@dataclass
class Running:
    receiver: OtlpReceiver
    sink: TracesSink
    host: TestHost
    http: httpx.AsyncClient
    channel: grpc.aio.Channel

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.receiver.http_port}/v1/traces"

    async def grpc_export(self, body: bytes, timeout: float = 10) -> bytes:
        call = self.channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
        result: bytes = await call(body, timeout=timeout)
        return result


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    sink = TracesSink()
    config = OtlpReceiverConfig(protocols=ProtocolsConfig(
        grpc=GrpcConfig(endpoint="127.0.0.1:0", max_recv_msg_size_mib=0.25),
        http=HttpConfig(endpoint="127.0.0.1:0", max_request_body_size=MAX_BODY, request_timeout=5),
    ))
    receiver = OtlpReceiver(Settings(ComponentID("otlp"), Kind.RECEIVER), config, sink)
    host = TestHost()
    await receiver.start(host)
    async with httpx.AsyncClient(timeout=10) as http:
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{receiver.grpc_port}")
        yield Running(receiver, sink, host, http, channel)
        await channel.close()
    await receiver.shutdown()
    await receiver.shutdown()  # safe twice


def make_request(spans: int = 3, *, trace_id: bytes = b"\x01" * 16) -> bytes:
    scope = ScopeSpans(spans=[
        Span(trace_id=trace_id, span_id=(i + 1).to_bytes(8, "big"), name=f"span-{i}",
             start_time_unix_nano=1_700_000_000_000_000_000 + i, end_time_unix_nano=1_700_000_000_000_001_000 + i)
        for i in range(spans)
    ])
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[scope])]).SerializeToString()


def status_of(resp: httpx.Response) -> status_pb2.Status:
    status = status_pb2.Status()
    status.ParseFromString(resp.content)
    return status


async def assert_still_serving(r: Running) -> None:
    resp = await r.http.post(r.url, content=make_request(1), headers=PB)
    assert resp.status_code == 200
    assert await r.grpc_export(make_request(1)) is not None


# --------------------------------------------------------------------------- fixtures


@pytest.mark.parametrize("path", fixture_payloads(), ids=lambda p: f"{p.parent.name}/{p.name}")
async def test_every_fixture_passes_through_http_unchanged(running: Running, path) -> None:
    body = path.read_bytes()
    is_json = path.name.endswith(".json")
    resp = await running.http.post(running.url, content=body, headers=JSON if is_json else PB)
    assert resp.status_code == 200, resp.content
    expected = decode_json(body) if is_json else ExportTraceServiceRequest.FromString(body)
    assert len(running.sink.batches) == 1
    assert running.sink.batches[0].request == expected
    assert running.sink.span_count == sum(len(ss.spans) for rs in expected.resource_spans for ss in rs.scope_spans)
    if is_json:
        assert resp.headers["content-type"] == "application/json"
        assert resp.json() == {}
    else:
        assert not ExportTraceServiceResponse.FromString(resp.content).HasField("partial_success")


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*/*.pb")), ids=lambda p: f"{p.parent.name}/{p.name}")
async def test_every_protobuf_fixture_passes_through_grpc_unchanged(running: Running, path) -> None:
    body = path.read_bytes()
    response = ExportTraceServiceResponse.FromString(await running.grpc_export(body))
    assert not response.HasField("partial_success")
    assert running.sink.batches[0].request == ExportTraceServiceRequest.FromString(body)
    # The receiver keeps the wire bytes: forwarding needs no re-serialization.
    assert running.sink.batches[0].raw == body


async def test_gzip_and_deflate_bodies_are_accepted(running: Running) -> None:
    body = make_request(4)
    for encoding, data in (("gzip", gzip.compress(body)), ("deflate", zlib.compress(body))):
        resp = await running.http.post(running.url, content=data, headers={**PB, "content-encoding": encoding})
        assert resp.status_code == 200, resp.content
    assert running.sink.span_count == 8


async def test_grpc_gzip_compression_is_accepted(running: Running) -> None:
    call = running.channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
    await call(make_request(2), compression=grpc.Compression.Gzip, timeout=10)
    assert running.sink.span_count == 2


# --------------------------------------------------------------------------- bad input


async def test_malformed_protobuf_is_400_with_status_message(running: Running) -> None:
    resp = await running.http.post(running.url, content=b"\xff\xff\xff\x0f garbage", headers=PB)
    assert resp.status_code == 400
    status = status_of(resp)
    assert status.code == code_pb2.INVALID_ARGUMENT
    assert "malformed OTLP protobuf" in status.message
    await assert_still_serving(running)
    assert running.sink.span_count == 2  # only the two probes


async def test_malformed_json_is_400_with_json_status(running: Running) -> None:
    resp = await running.http.post(running.url, content=b'{"resourceSpans": [', headers=JSON)
    assert resp.status_code == 400
    assert resp.headers["content-type"] == "application/json"
    assert "JSON" in resp.json()["message"]
    await assert_still_serving(running)


async def test_bad_hex_id_in_json_is_400_naming_the_field(running: Running) -> None:
    body = b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz","spanId":"0102030405060708","name":"x"}]}]}]}'
    resp = await running.http.post(running.url, content=body, headers=JSON)
    assert resp.status_code == 400
    assert "traceId" in resp.json()["message"]


async def test_wrong_content_type_is_415_listing_supported_types(running: Running) -> None:
    resp = await running.http.post(running.url, content=make_request(), headers={"content-type": "text/plain"})
    assert resp.status_code == 415
    assert "application/x-protobuf" in resp.json()["message"]
    resp = await running.http.post(running.url, content=make_request())  # no content type at all
    assert resp.status_code == 415
    await assert_still_serving(running)


async def test_bad_gzip_is_400(running: Running) -> None:
    resp = await running.http.post(running.url, content=b"not gzip at all",
                                   headers={**PB, "content-encoding": "gzip"})
    assert resp.status_code == 400
    assert "gzip" in status_of(resp).message
    truncated = gzip.compress(make_request())[:-12]
    resp = await running.http.post(running.url, content=truncated, headers={**PB, "content-encoding": "gzip"})
    assert resp.status_code == 400
    await assert_still_serving(running)


async def test_unsupported_content_encoding_is_415(running: Running) -> None:
    resp = await running.http.post(running.url, content=make_request(), headers={**PB, "content-encoding": "br"})
    assert resp.status_code == 415
    assert "Content-Encoding" in status_of(resp).message


async def test_oversize_body_is_413(running: Running) -> None:
    resp = await running.http.post(running.url, content=b"\x00" * (MAX_BODY + 1), headers=PB)
    assert resp.status_code == 413
    assert "exceeds the limit" in status_of(resp).message
    await assert_still_serving(running)


async def test_oversize_chunked_body_without_length_is_413(running: Running) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b"\x00" * (MAX_BODY // 4)

    resp = await running.http.post(running.url, content=chunks(), headers=PB)
    assert resp.status_code == 413
    await assert_still_serving(running)


async def test_gzip_bomb_is_413_without_inflating_it(running: Running) -> None:
    bomb = gzip.compress(b"\x00" * (64 * 1024 * 1024))  # 64 MiB of zeros in ~64 KiB
    assert len(bomb) < MAX_BODY
    resp = await running.http.post(running.url, content=bomb, headers={**PB, "content-encoding": "gzip"})
    assert resp.status_code == 413
    assert "decompressed" in status_of(resp).message
    await assert_still_serving(running)


async def test_unknown_path_and_method(running: Running) -> None:
    base = f"http://127.0.0.1:{running.receiver.http_port}"
    assert (await running.http.post(f"{base}/v1/logs", content=b"", headers=PB)).status_code == 404
    assert (await running.http.get(running.url)).status_code == 405


async def test_grpc_malformed_protobuf_is_invalid_argument(running: Running) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await running.grpc_export(b"\xff\xff\xff\x0f garbage")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed OTLP protobuf" in (err.value.details() or "")
    await assert_still_serving(running)


async def test_grpc_oversize_message_is_resource_exhausted_without_retry_info(running: Running) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await running.grpc_export(make_request(1) + b"\x00" * (300 * 1024))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    await assert_still_serving(running)


async def test_empty_request_succeeds_without_reaching_the_pipeline(running: Running) -> None:
    resp = await running.http.post(running.url, content=b"", headers=PB)
    assert resp.status_code == 200
    assert (await running.http.post(running.url, content=b"{}", headers=JSON)).status_code == 200
    assert running.sink.batches == []


# --------------------------------------------------------------------------- partial success


def _request_with_bad_ids() -> bytes:
    good = Span(trace_id=b"\x02" * 16, span_id=b"\x03" * 8, name="good")
    short_trace = Span(trace_id=b"\x02" * 15, span_id=b"\x04" * 8, name="short-trace")
    zero_span = Span(trace_id=b"\x02" * 16, span_id=bytes(8), name="zero-span")
    bad_parent = Span(trace_id=b"\x02" * 16, span_id=b"\x05" * 8, parent_span_id=b"\x01\x02", name="bad-parent")
    rs = ResourceSpans(scope_spans=[ScopeSpans(spans=[good, short_trace, zero_span, bad_parent])])
    return ExportTraceServiceRequest(resource_spans=[rs]).SerializeToString()


async def test_spans_with_invalid_ids_are_rejected_through_partial_success(running: Running) -> None:
    resp = await running.http.post(running.url, content=_request_with_bad_ids(), headers=PB)
    assert resp.status_code == 200
    partial = ExportTraceServiceResponse.FromString(resp.content).partial_success
    assert partial.rejected_spans == 3
    assert "short-trace" in partial.error_message and "trace_id" in partial.error_message
    [batch] = running.sink.batches
    assert [s.name for _, _, s in batch.iter_spans()] == ["good"]
    assert batch.span_count == 1


async def test_grpc_partial_success(running: Running) -> None:
    response = ExportTraceServiceResponse.FromString(await running.grpc_export(_request_with_bad_ids()))
    assert response.partial_success.rejected_spans == 3
    assert running.sink.span_count == 1


MAX_U64 = 2**64 - 1
YEAR_2300_NS = 10_413_792_000 * 10**9  # 2300-01-01T00:00:00Z


def _request_with_unstorable_times() -> bytes:
    """Times ClickHouse's DateTime64(9) cannot hold (after 2262-04-11), next to a good span."""
    t0 = 1_700_000_000_000_000_000
    spans = [
        Span(trace_id=b"\x02" * 16, span_id=b"\x01" * 8, name="good", start_time_unix_nano=t0,
             end_time_unix_nano=t0 + 1000, events=[Span.Event(time_unix_nano=t0 + 5, name="e")]),
        Span(trace_id=b"\x02" * 16, span_id=b"\x02" * 8, name="start-2^63", start_time_unix_nano=2**63,
             end_time_unix_nano=2**63 + 1),
        Span(trace_id=b"\x02" * 16, span_id=b"\x03" * 8, name="start-max", start_time_unix_nano=MAX_U64,
             end_time_unix_nano=MAX_U64),
        Span(trace_id=b"\x02" * 16, span_id=b"\x04" * 8, name="year-2300", start_time_unix_nano=YEAR_2300_NS,
             end_time_unix_nano=YEAR_2300_NS + 1000),
        Span(trace_id=b"\x02" * 16, span_id=b"\x05" * 8, name="end-max", start_time_unix_nano=t0,
             end_time_unix_nano=MAX_U64),
        Span(trace_id=b"\x02" * 16, span_id=b"\x06" * 8, name="event-max", start_time_unix_nano=t0,
             end_time_unix_nano=t0 + 1000, events=[Span.Event(time_unix_nano=t0 + 1, name="ok"),
                                                   Span.Event(time_unix_nano=MAX_U64, name="bad")]),
    ]
    rs = ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])
    return ExportTraceServiceRequest(resource_spans=[rs]).SerializeToString()


@pytest.mark.parametrize("transport", ["http", "grpc"])
async def test_spans_with_times_past_2262_are_rejected_through_partial_success(running: Running,
                                                                               transport: str) -> None:
    # They used to pass, then fail the insert of the whole batch (and everything merged with it).
    body = _request_with_unstorable_times()
    if transport == "http":
        resp = await running.http.post(running.url, content=body, headers=PB)
        assert resp.status_code == 200
        partial = ExportTraceServiceResponse.FromString(resp.content).partial_success
    else:
        partial = ExportTraceServiceResponse.FromString(await running.grpc_export(body)).partial_success
    assert partial.rejected_spans == 5
    assert "start-2^63" in partial.error_message and "start_time_unix_nano" in partial.error_message
    assert "2262" in partial.error_message
    [batch] = running.sink.batches
    assert [s.name for _, _, s in batch.iter_spans()] == ["good"]


def test_each_unstorable_time_field_is_named() -> None:
    from tracehouse.core.pdata import TraceBatch
    from tracehouse.ingest.otlp.validate import drop_invalid_spans

    messages = {}
    for span in ExportTraceServiceRequest.FromString(_request_with_unstorable_times()).resource_spans[0] \
            .scope_spans[0].spans:
        one = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])])
        messages[span.name] = drop_invalid_spans(TraceBatch.from_request(one))
    assert messages["good"] == (0, "")
    assert "start_time_unix_nano 9223372036854775808" in messages["start-2^63"][1]
    assert "start_time_unix_nano" in messages["year-2300"][1]
    assert "end_time_unix_nano" in messages["end-max"][1]
    assert "events[1].time_unix_nano" in messages["event-max"][1]
    # The last storable nanosecond is accepted.
    last = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[
        Span(trace_id=b"\x02" * 16, span_id=b"\x01" * 8, start_time_unix_nano=2**63 - 1,
             end_time_unix_nano=2**63 - 1)])])])
    assert drop_invalid_spans(TraceBatch.from_request(last)) == (0, "")


async def test_gzip_body_of_several_members_is_read_whole(running: Running) -> None:
    # `cat a.gz b.gz` is one valid gzip stream (RFC 1952): both members' spans are stored.
    first = make_request(2, trace_id=b"\x0a" * 16)
    second = make_request(3, trace_id=b"\x0b" * 16)
    body = gzip.compress(first) + gzip.compress(second) + b"\x00" * 8  # zero padding, as gzip(1) allows
    resp = await running.http.post(running.url, content=body, headers={**PB, "content-encoding": "gzip"})
    assert resp.status_code == 200, resp.content
    assert running.sink.span_count == 5
    assert {s.trace_id for b in running.sink.batches for _, _, s in b.iter_spans()} == {b"\x0a" * 16, b"\x0b" * 16}


async def test_gzip_members_share_one_decompressed_size_limit(running: Running) -> None:
    member = gzip.compress(b"\x00" * (MAX_BODY // 2 + 1))
    resp = await running.http.post(running.url, content=member + member, headers={**PB, "content-encoding": "gzip"})
    assert resp.status_code == 413
    assert "decompressed" in status_of(resp).message
    bad_second = gzip.compress(make_request(1)) + b"garbage after the member"
    resp = await running.http.post(running.url, content=bad_second, headers={**PB, "content-encoding": "gzip"})
    assert resp.status_code == 400
    assert running.sink.span_count == 0


# --------------------------------------------------------------------------- pipeline errors


@pytest.mark.parametrize(("error", "http_status", "grpc_code", "retry_info"), [
    (RetryableError("full", retry_after=3, overload=True), 429, grpc.StatusCode.RESOURCE_EXHAUSTED, 3.0),
    (RetryableError("clickhouse down", retry_after=2), 503, grpc.StatusCode.UNAVAILABLE, 2.0),
    (PermanentError("rows rejected"), 400, grpc.StatusCode.INVALID_ARGUMENT, None),
])
async def test_pipeline_errors_map_to_otlp_status_codes(running: Running, error, http_status, grpc_code,
                                                        retry_info) -> None:
    running.sink.error = error
    resp = await running.http.post(running.url, content=make_request(), headers=PB)
    assert resp.status_code == http_status
    assert str(error) in status_of(resp).message
    if retry_info is None:
        assert "retry-after" not in resp.headers
    else:
        assert resp.headers["retry-after"] == str(int(retry_info))

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await running.grpc_export(make_request())
    assert err.value.code() == grpc_code
    status = rpc_status.from_call(err.value)
    infos = []
    for detail in status.details if status else []:
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            infos.append(info.retry_delay.seconds)
    assert infos == ([] if retry_info is None else [int(retry_info)])
    text = running.host.telemetry.render().decode()
    for transport in ("http", "grpc"):
        assert f'tracehouse_receiver_refused_spans_total{{reason="{_reason(error)}",receiver="otlp",transport="{transport}"}} 3.0' in text


def _reason(error: Exception) -> str:
    if isinstance(error, RetryableError):
        return "overload" if error.overload else "unavailable"
    return "permanent"


async def test_accepted_spans_are_counted(running: Running) -> None:
    await running.http.post(running.url, content=make_request(5), headers=PB)
    await running.grpc_export(make_request(2))
    text = running.host.telemetry.render().decode()
    assert 'tracehouse_receiver_accepted_spans_total{receiver="otlp",transport="http"} 5.0' in text
    assert 'tracehouse_receiver_accepted_spans_total{receiver="otlp",transport="grpc"} 2.0' in text


async def test_client_is_answered_only_after_the_pipeline_accepted(running: Running) -> None:
    running.sink.block()
    request = asyncio.create_task(running.http.post(running.url, content=make_request(), headers=PB))
    await asyncio.sleep(0.3)
    assert not request.done()
    running.sink.unblock()
    assert (await request).status_code == 200
    assert running.sink.span_count == 3
