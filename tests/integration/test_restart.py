"""Data written before a restart of the all-in-one is still there after it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from allinone import AllInOne
from otlp_fixtures import FIXTURES

pytestmark = pytest.mark.integration


def test_data_survives_a_graceful_restart(tmp_path: Path) -> None:
    body = (FIXTURES / "openinference" / "http-protobuf.pb").read_bytes()
    first = AllInOne(tmp_path).start()
    try:
        resp = httpx.post(f"{first.otlp_http}/v1/traces", content=body,
                          headers={"content-type": "application/x-protobuf"}, timeout=30)
        assert resp.status_code == 200
    finally:
        assert first.stop() == 0

    second = AllInOne(tmp_path).start()
    try:
        page = httpx.get(f"{second.query}/api/v1/traces",
                         params={"start": "2020-01-01T00:00:00Z", "service": "openinference-app"}, timeout=30)
        assert page.status_code == 200, page.text
        traces = page.json()["traces"]
        assert len(traces) == 4
        detail = httpx.get(f"{second.query}/api/v1/traces/{traces[0]['trace_id']}", timeout=30).json()
        assert detail["totals"]["span_count"] == traces[0]["span_count"] > 0
    finally:
        assert second.stop() == 0


def test_a_taken_port_fails_start_with_a_message_naming_it(tmp_path: Path) -> None:
    import socket

    server = AllInOne(tmp_path)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        server.env["TRACEHOUSE_OTLP_HTTP_PORT"] = str(port)
        with pytest.raises(RuntimeError) as err:
            server.start(timeout=60)
    message = str(err.value)
    assert "exited with 1" in message
    assert f"tracehouse: failed: [Errno 98] cannot listen on 127.0.0.1:{port}: Address already in use" in message
