"""Certificates made in the test (trustme): a server CA, a client CA and a stranger CA.

Files are PEM on disk, as a deployment mounts them. `rotate_server` swaps the server's
certificate for one from another CA in place (os.replace, as a Secret update or
cert-manager renewal does), so tests can tell which certificate a new connection got.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import trustme


@dataclass(frozen=True)
class CertFiles:
    cert: Path
    key: Path


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@dataclass
class Pki:
    dir: Path
    server_ca: trustme.CA = field(default_factory=trustme.CA)
    client_ca: trustme.CA = field(default_factory=trustme.CA)
    stranger_ca: trustme.CA = field(default_factory=trustme.CA)

    def __post_init__(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.server_ca_file = self._write_ca("server-ca.pem", self.server_ca)
        self.client_ca_file = self._write_ca("client-ca.pem", self.client_ca)
        self.stranger_ca_file = self._write_ca("stranger-ca.pem", self.stranger_ca)
        self.server = self.issue(self.server_ca, "server", "localhost", "127.0.0.1")
        self.client = self.issue(self.client_ca, "client", "app.example.com")
        self.stranger = self.issue(self.stranger_ca, "stranger", "app.example.com")

    def _write_ca(self, name: str, ca: trustme.CA) -> Path:
        path = self.dir / name
        _write(path, ca.cert_pem.bytes())
        return path

    def issue(self, ca: trustme.CA, name: str, *identities: str) -> CertFiles:
        files = CertFiles(self.dir / f"{name}.crt", self.dir / f"{name}.key")
        self.reissue(ca, files, *identities)
        return files

    @staticmethod
    def reissue(ca: trustme.CA, files: CertFiles, *identities: str) -> None:
        cert = ca.issue_cert(*identities)
        _write(files.cert, b"".join(blob.bytes() for blob in cert.cert_chain_pems))
        _write(files.key, cert.private_key_pem.bytes())

    def rotate_server(self, new_ca: trustme.CA) -> None:
        """Serve a certificate from `new_ca` from now on (same file paths)."""
        self.reissue(new_ca, self.server, "localhost", "127.0.0.1")

    def client_context(self, trust: Path | None = None, cert: CertFiles | None = None,
                       max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
        """A client context trusting `trust` (default: the server CA), presenting `cert`."""
        context = ssl.create_default_context(cafile=str(trust or self.server_ca_file))
        if cert is not None:
            context.load_cert_chain(cert.cert, cert.key)
        if max_version is not None:
            context.maximum_version = max_version
        return context

    def server_tls(self, *, mtls: bool = False, **extra: object) -> dict[str, object]:
        """A listener's `tls:` settings as the YAML would give them."""
        tls: dict[str, object] = {"cert_file": str(self.server.cert), "key_file": str(self.server.key)}
        if mtls:
            tls["client_ca_file"] = str(self.client_ca_file)
        tls.update(extra)
        return tls
