"""Endpoints as the Collector writes them: `host:port`, `[::1]:port` or `:port`.

A listener binds every address its host stands for, and fails when any of them is taken:
`localhost` is 127.0.0.1 *and* ::1 (clients resolve it to either; serving one only lets
another process answer on the other); an unspecified host (empty, `0.0.0.0` or `::`) is
every interface of both families, as Go's listeners (so the Collector's) take it. Any other
address is itself alone, a name every address it resolves to. The IPv6 half of `localhost`
or of an unspecified host is left out only on a machine without IPv6.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """(host, port); an empty host (`:4317`) comes back as 0.0.0.0."""
    host, port = _split(endpoint)
    return host or "0.0.0.0", port


def _split(endpoint: str) -> tuple[str, int]:
    text = endpoint.strip()
    if "://" in text:
        raise ValueError(f"expected host:port without a scheme, got {endpoint!r}")
    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise ValueError(f"expected host:port, got {endpoint!r}")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"invalid port in {endpoint!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port out of range in {endpoint!r}")
    return host.strip("[]"), port


@dataclass(frozen=True, slots=True)
class ListenAddress:
    family: socket.AddressFamily
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if self.family == socket.AF_INET6 else f"{self.host}:{self.port}"


UNSPECIFIED = ("", "0.0.0.0", "::")

# Errors that mean "this machine has no such address family or address", not "taken".
_ABSENT = {errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT}


def _ipv6_available(host: str) -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            probe.bind((host, 0))
    except OSError as exc:
        if exc.errno in _ABSENT:
            return False
        raise
    return True


def listen_addresses(endpoint: str) -> list[ListenAddress]:
    """Every address a listener on `endpoint` binds, IPv4 first."""
    host, port = _split(endpoint)
    if host in ("localhost", *UNSPECIFIED):
        v4, v6 = ("127.0.0.1", "::1") if host == "localhost" else ("0.0.0.0", "::")
        both = [ListenAddress(socket.AF_INET, v4, port)]
        if _ipv6_available(v6):
            both.append(ListenAddress(socket.AF_INET6, v6, port))
        return both
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise OSError(errno.EADDRNOTAVAIL, f"cannot listen on {endpoint}: cannot resolve {host!r}: {exc.strerror}") from None
    found: list[ListenAddress] = []
    for family, _, _, _, sockaddr in sorted(infos, key=lambda info: info[0] != socket.AF_INET):
        address = ListenAddress(socket.AddressFamily(family), str(sockaddr[0]), port)
        if address not in found:
            found.append(address)
    return found


def _bind_one(address: ListenAddress, *, several: bool) -> socket.socket:
    sock = socket.socket(address.family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if address.family == socket.AF_INET6 and several:
            # Beside its own IPv4 socket, `::` must not also claim IPv4 (Linux's default).
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((address.host, address.port))
        sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def bind_error(address: ListenAddress) -> str | None:
    """Why `address` cannot be bound now ("Address already in use"), None if it can: for
    servers (gRPC) that do not say."""
    try:
        _bind_one(address, several=True).close()
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


# Port 0 binds the first address on a free port and the others on the same one; another
# process may hold that port on a later address, so a few fresh ports are tried.
_ANY_PORT_ATTEMPTS = 8


def bind_tcp(endpoint: str) -> list[socket.socket]:
    """Bind every address of `endpoint` now, so one taken fails start-up with a message
    naming it (port 0 = one free port for all of them)."""
    addresses = listen_addresses(endpoint)
    for attempt in range(_ANY_PORT_ATTEMPTS):
        bound: list[socket.socket] = []
        port = addresses[0].port
        try:
            for address in addresses:
                address = ListenAddress(address.family, address.host, port)
                try:
                    sock = _bind_one(address, several=len(addresses) > 1)
                except OSError as exc:
                    raise _BindError(address, exc) from None
                bound.append(sock)
                port = sock.getsockname()[1]
            return bound
        except _BindError as exc:
            for sock in bound:
                sock.close()
            retry = addresses[0].port == 0 and bound and exc.cause.errno == errno.EADDRINUSE
            if not retry or attempt == _ANY_PORT_ATTEMPTS - 1:
                message = listen_error(endpoint, exc.address, exc.cause.strerror or str(exc.cause), len(addresses))
                raise OSError(exc.cause.errno, message) from None
    raise AssertionError("unreachable")


def listen_error(endpoint: str, address: ListenAddress, reason: str, of: int) -> str:
    """`cannot listen on localhost:4317 (127.0.0.1:4317): Address already in use`: which of
    the endpoint's addresses failed when it has several."""
    which = f" ({address})" if of > 1 else ""
    return f"cannot listen on {endpoint}{which}: {reason}"


class _BindError(Exception):
    def __init__(self, address: ListenAddress, cause: OSError):
        super().__init__(str(cause))
        self.address = address
        self.cause = cause


def client_url(scheme: str, endpoint: str, port: int) -> str:
    """The URL a client on this machine dials for a listener on `endpoint` bound on `port`:
    an unspecified host becomes `localhost`."""
    host, _ = _split(endpoint)
    if host in UNSPECIFIED:
        host = "localhost"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"
