"""Endpoints as the Collector writes them: `host:port`, `[::1]:port` or `:port`."""

from __future__ import annotations

import socket


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    text = endpoint.strip()
    if "://" in text:
        raise ValueError(f"expected host:port without a scheme, got {endpoint!r}")
    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise ValueError(f"expected host:port, got {endpoint!r}")
    host = host.strip("[]") or "0.0.0.0"
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"invalid port in {endpoint!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port out of range in {endpoint!r}")
    return host, port


def bind_tcp(endpoint: str) -> socket.socket:
    """Bind now, so a taken port fails start-up with a clear message (port 0 = any free)."""
    host, port = parse_endpoint(endpoint)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {endpoint}: {exc.strerror}") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock
