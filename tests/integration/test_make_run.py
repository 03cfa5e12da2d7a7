"""`make run` from a fresh clone sets itself up and serves OTLP on 4317/4318, the API on 8080 and
ClickHouse's HTTP interface on 8123."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import clickhouse_connect
import grpc
import httpx
import pytest

from allinone import REPO
from otlp_fixtures import FIXTURES

pytestmark = pytest.mark.integration
PORTS = (4317, 4318, 8080, 8123)
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_make_run_from_a_fresh_clone_serves_the_default_ports(tmp_path: Path) -> None:
    busy = [p for p in PORTS if port_in_use(p)]
    if busy:
        pytest.skip(f"ports {busy} are taken on this machine (is a tracehouse already running?)")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    log = (tmp_path / "make-run.log").open("wb")
    # The venv this test runs in is a venv too: hand make its base interpreter.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACEHOUSE_")}
    env["PYTHON"] = os.path.join(sys.base_prefix, "bin", "python3")
    proc = subprocess.Popen(["make", "run"], cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "make-run.log").read_text()[-3000:]
            try:
                if httpx.get("http://127.0.0.1:8080/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("make run did not become ready:\n" + (tmp_path / "make-run.log").read_text()[-3000:])

        body = (FIXTURES / "otel-genai-openai-v2" / "http-protobuf.pb").read_bytes()
        resp = httpx.post("http://127.0.0.1:4318/v1/traces", content=body,
                          headers={"content-type": "application/x-protobuf"}, timeout=30)
        assert resp.status_code == 200
        with grpc.insecure_channel("127.0.0.1:4317") as channel:
            export = channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
            export((FIXTURES / "otel-genai-openai-v2" / "grpc.pb").read_bytes(), timeout=30)
        page = httpx.get("http://127.0.0.1:8080/api/v1/traces", timeout=30,
                         params={"start": "2020-01-01T00:00:00Z", "service": "otel-openai-v2-app"})
        assert page.status_code == 200, page.text
        assert len(page.json()["traces"]) == 8  # 4 traces per capture, two captures
        # What Grafana's ClickHouse datasource and clickhouse-connect read: the same engine.
        ch = clickhouse_connect.get_client(host="127.0.0.1", port=8123, interface="http", database="tracehouse")
        try:
            traces = ch.query("SELECT uniqExact(TraceId) FROM otel_traces WHERE ServiceName = {s:String}",
                              parameters={"s": "otel-openai-v2-app"}).result_rows
            assert traces == [(8,)]
        finally:
            ch.close()
        assert (clone / "data" / "clickhouse").is_dir(), "embedded data lives under ./data"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
