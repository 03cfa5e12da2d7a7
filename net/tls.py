"""TLS in the Collector's configtls vocabulary, for every listener and for the Kafka client.

    tls:                               # a server: the OTLP receivers, query_api, health_check
      cert_file: /etc/tls/tls.crt
      key_file: /etc/tls/tls.key
      client_ca_file: /etc/tls/ca.crt  # mTLS: clients must present a certificate it signed
      min_version: "1.3"               # default "1.2"
      reload_interval: 1m              # re-read the files when they change (default: never)

    tls:                               # a client: the Kafka exporter and receiver
      ca_file: /etc/tls/ca.crt         # trust these CAs instead of the system's
      cert_file: ...                   # client certificate, for brokers that ask for one
      key_file: ...

The files a config names are checked when it loads (they exist, parse, and the key matches
the certificate), so a typo fails at start naming the key. `load_config(check_files=False)`
(`tracehouse validate-config --skip-file-checks`) skips that, for a config checked away from
the machine it runs on.

Listeners keep serving through a certificate rotation: `ServerTls` watches the files and
builds a fresh context when they change. asyncio/uvicorn listeners switch to it in the
handshake's server-name callback (every handshake passes there, with or without SNI), so
new connections get the new certificate and the new client CAs while open ones are left
alone; the gRPC listener asks a certificate-config fetcher on each handshake. A change that
does not load (a half-written file, a key that does not match) keeps the current
certificate and is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import structlog
from pydantic import AfterValidator, BeforeValidator, ValidationInfo, model_validator

from tracehouse.core.component import ComponentConfig
from tracehouse.core.config import Duration, files_checked

if TYPE_CHECKING:
    import grpc

_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
# With only the client CA watched (client_ca_file_reload and no reload_interval), how often it is checked.
CLIENT_CA_POLL_S = 10.0


def _parse_version(value: Any) -> Any:
    # YAML reads `min_version: 1.2` as a float; the Collector writes it quoted. Both are fine.
    if isinstance(value, float | int) and not isinstance(value, bool):
        value = f"{value:.1f}"
    if value in ("1.0", "1.1"):
        raise ValueError(f'TLS {value} is deprecated and not supported; use "1.2" or "1.3"')
    return value


TlsVersion = Annotated[Literal["1.2", "1.3"], BeforeValidator(_parse_version)]
"""A TLS version as the Collector writes it: "1.2" or "1.3" (1.0 and 1.1 are refused)."""

MaxTlsVersion = Annotated[Literal["", "1.2", "1.3"], BeforeValidator(_parse_version)]
"""A maximum TLS version; empty means the highest the library speaks (1.3)."""


def _check_file(value: str, info: ValidationInfo) -> str:
    if not value or not files_checked(info):
        return value
    path = Path(value)
    if not path.exists():
        raise ValueError(f"file {value!r} does not exist")
    if not path.is_file():
        raise ValueError(f"{value!r} is not a file")
    if not os.access(path, os.R_OK):
        raise ValueError(f"file {value!r} is not readable by this process")
    return value


TlsFile = Annotated[str, AfterValidator(_check_file)]
"""A PEM file path; it must exist and be readable when the config loads (unless file checks are off)."""


class TlsFileError(ValueError):
    """A TLS file that does not load; the message names the config key and the path."""


def _read_text(key: str, path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError as exc:
        raise TlsFileError(f"cannot read {key} {path!r}: {exc.strerror}") from None


def _no_password() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal for an encrypted key.
    raise TlsFileError("is encrypted; tracehouse reads unencrypted PEM keys, as the Collector does")


def _load_cert_chain(context: ssl.SSLContext, cert_file: str, key_file: str) -> None:
    if "-----BEGIN CERTIFICATE-----" not in _read_text("cert_file", cert_file):
        raise TlsFileError(f"cert_file {cert_file!r} holds no PEM certificate")
    if "PRIVATE KEY-----" not in _read_text("key_file", key_file):
        raise TlsFileError(f"key_file {key_file!r} holds no PEM private key")
    try:
        context.load_cert_chain(cert_file, key_file, password=_no_password)
    except TlsFileError as exc:
        raise TlsFileError(f"key_file {key_file!r} {exc}") from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise TlsFileError(f"key_file {key_file!r} is not the key of cert_file {cert_file!r}") from None
        raise TlsFileError(f"cannot load cert_file {cert_file!r} with key_file {key_file!r}: {exc}") from None
    except OSError as exc:
        raise TlsFileError(f"cannot load cert_file {cert_file!r} with key_file {key_file!r}: {exc.strerror}") from None


def _load_cas(context: ssl.SSLContext, key: str, path: str) -> None:
    if "-----BEGIN CERTIFICATE-----" not in _read_text(key, path):
        raise TlsFileError(f"{key} {path!r} holds no PEM certificate")
    try:
        context.load_verify_locations(cafile=path)
    except (ssl.SSLError, OSError) as exc:
        raise TlsFileError(f"cannot load {key} {path!r}: {exc}") from None


def _versions(context: ssl.SSLContext, min_version: str, max_version: str) -> None:
    context.minimum_version = _VERSIONS[min_version]
    context.maximum_version = _VERSIONS[max_version] if max_version else ssl.TLSVersion.MAXIMUM_SUPPORTED


def _check_version_range(min_version: str, max_version: str) -> None:
    if max_version and _VERSIONS[max_version] < _VERSIONS[min_version]:
        raise ValueError(f"max_version {max_version} is below min_version {min_version}")


# ---------------------------------------------------------------------------- servers


class TlsServerConfig(ComponentConfig):
    """`tls:` of a listener. Present means the listener speaks only TLS."""

    cert_file: TlsFile
    key_file: TlsFile
    # mTLS: every client must present a certificate signed by one of these CAs.
    client_ca_file: TlsFile = ""
    # Re-read client_ca_file when it changes (checked every reload_interval, else every 10 s).
    client_ca_file_reload: bool = False
    min_version: TlsVersion = "1.2"
    max_version: MaxTlsVersion = ""
    # How often cert_file and key_file are checked for a change (and reloaded); 0 = never.
    reload_interval: Duration = 0.0

    @model_validator(mode="before")
    @classmethod
    def _server_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and "ca_file" in data:
            raise ValueError("ca_file has no effect on a server: client certificates are verified against "
                             "client_ca_file (mTLS)")
        return data

    @model_validator(mode="after")
    def _loads(self, info: ValidationInfo) -> TlsServerConfig:
        _check_version_range(self.min_version, self.max_version)
        if self.client_ca_file_reload and not self.client_ca_file:
            raise ValueError("client_ca_file_reload is set but client_ca_file is not")
        if files_checked(info):
            try:
                server_context(self)
            except TlsFileError as exc:
                raise ValueError(str(exc)) from None
        return self


def server_context(config: TlsServerConfig, alpn: list[str] | None = None) -> ssl.SSLContext:
    """A server context from the files as they are now; raises TlsFileError naming the key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _versions(context, config.min_version, config.max_version)
    _load_cert_chain(context, config.cert_file, config.key_file)
    if config.client_ca_file:
        _load_cas(context, "client_ca_file", config.client_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


def _fingerprint(paths: list[str]) -> tuple[tuple[int, int, int, int] | None, ...]:
    """What changes when a file is rewritten or a Kubernetes Secret swaps its symlinks."""
    out: list[tuple[int, int, int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            out.append(None)
            continue
        out.append((st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class _GrpcPems:
    cert_chain: bytes
    key: bytes
    client_cas: bytes | None


class ServerTls:
    """The live certificate of one listener, reloaded when its files change.

    Use one of `ssl_context()` (asyncio / uvicorn) or `grpc_credentials()` (grpc.aio), then
    `start()` to begin watching the files and `close()` at shutdown.
    """

    def __init__(self, config: TlsServerConfig, *, name: str, logger: Any = None):
        self.config = config
        self._name = name
        self._log = logger if logger is not None else structlog.get_logger("tracehouse")
        watched: list[str] = []
        if config.reload_interval > 0:
            watched += [config.cert_file, config.key_file]
        if config.client_ca_file and config.client_ca_file_reload:
            watched.append(config.client_ca_file)
        self._watched = watched
        self._interval = config.reload_interval or (CLIENT_CA_POLL_S if watched else 0.0)
        self._seen = _fingerprint(watched)
        self._alpn: list[str] | None = None
        self._current: ssl.SSLContext | None = None
        self._grpc_pending: Any = None  # grpc.ServerCertificateConfiguration waiting for the next handshake
        self._grpc = False
        self._task: asyncio.Task[None] | None = None
        self.reloads = 0

    # -- what listeners use ------------------------------------------------------------
    def ssl_context(self, alpn: list[str] | None = None) -> ssl.SSLContext:
        """The context to listen with. Its version limits and client-certificate requirement hold
        for good; the certificate, key and client CAs come from the newest loaded files."""
        self._alpn = alpn
        base = server_context(self.config, alpn)
        self._current = base

        def switch(ssl_object: Any, _server_name: str | None, _context: ssl.SSLContext) -> None:
            current = self._current
            if current is not None and current is not base:
                ssl_object.context = current

        base.sni_callback = switch
        return base

    def grpc_credentials(self) -> grpc.ServerCredentials:
        import grpc

        self._grpc = True
        server_context(self.config)  # the same checks as the other listeners (key matches, PEM parses)
        initial = self._grpc_configuration(self._read_pems())

        def fetch() -> Any:
            # Called by gRPC on a core thread at each handshake: hand over a pending change once.
            pending, self._grpc_pending = self._grpc_pending, None
            return pending

        return grpc.dynamic_ssl_server_credentials(initial, fetch,
                                                   require_client_authentication=bool(self.config.client_ca_file))

    # -- reloading ---------------------------------------------------------------------
    def start(self) -> None:
        if self._interval > 0 and self._task is None:
            self._task = asyncio.create_task(self._watch(), name=f"tls-reload-{self._name}")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                self.check()
            except Exception as exc:  # never let one bad check end the watching
                self._log.error("TLS reload check failed; still serving the previous certificate",
                                listener=self._name, error=f"{type(exc).__name__}: {exc}")

    def check(self) -> bool:
        """Reload if a watched file changed; True when a new certificate is now served."""
        seen = _fingerprint(self._watched)
        if seen == self._seen:
            return False
        # Recorded before loading: a file still being written changes again, and is retried then.
        self._seen = seen
        files = {"cert_file": self.config.cert_file, "key_file": self.config.key_file}
        if self.config.client_ca_file:
            files["client_ca_file"] = self.config.client_ca_file
        try:
            context = server_context(self.config, self._alpn)
            pems = self._read_pems() if self._grpc else None
        except TlsFileError as exc:
            self._log.warning("TLS files changed but do not load; still serving the previous certificate",
                              listener=self._name, error=str(exc), **files)
            return False
        self._current = context
        if pems is not None:
            self._grpc_pending = self._grpc_configuration(pems)
        self.reloads += 1
        self._log.info("TLS certificate reloaded; new connections use it", listener=self._name, **files)
        return True

    def _read_pems(self) -> _GrpcPems:
        def read(key: str, path: str) -> bytes:
            try:
                return Path(path).read_bytes()
            except OSError as exc:
                raise TlsFileError(f"cannot read {key} {path!r}: {exc.strerror}") from None

        cfg = self.config
        return _GrpcPems(read("cert_file", cfg.cert_file), read("key_file", cfg.key_file),
                         read("client_ca_file", cfg.client_ca_file) if cfg.client_ca_file else None)

    @staticmethod
    def _grpc_configuration(pems: _GrpcPems) -> Any:
        import grpc

        return grpc.ssl_server_certificate_configuration([(pems.key, pems.cert_chain)],
                                                         root_certificates=pems.client_cas)


# ---------------------------------------------------------------------------- clients


class TlsClientConfig(ComponentConfig):
    """`tls:` of a client (Kafka). Present (even empty) means TLS with verification, as in the
    Collector; `insecure: true` turns it off again."""

    # No TLS at all (the Collector's `insecure`); the other keys are then ignored.
    insecure: bool = False
    # CAs that sign the server's certificate; empty: the system's CAs.
    ca_file: TlsFile = ""
    # Also trust the system's CAs when ca_file is set.
    include_system_ca_certs_pool: bool = False
    # A client certificate, for servers that authenticate clients by certificate.
    cert_file: TlsFile = ""
    key_file: TlsFile = ""
    # Accept any server certificate (encrypts, but does not authenticate the server).
    insecure_skip_verify: bool = False
    min_version: TlsVersion = "1.2"
    max_version: MaxTlsVersion = ""

    @model_validator(mode="after")
    def _loads(self, info: ValidationInfo) -> TlsClientConfig:
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("cert_file and key_file go together (client certificate authentication)")
        _check_version_range(self.min_version, self.max_version)
        if files_checked(info) and not self.insecure:
            try:
                client_context(self)
            except TlsFileError as exc:
                raise ValueError(str(exc)) from None
        return self


def client_context(config: TlsClientConfig) -> ssl.SSLContext | None:
    """The client context (None when `insecure`); raises TlsFileError naming the key."""
    if config.insecure:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the certificate and the host name
    _versions(context, config.min_version, config.max_version)
    if not config.ca_file or config.include_system_ca_certs_pool:
        context.load_default_certs()
    load_client_files(context, config.ca_file, config.cert_file, config.key_file)
    if config.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def load_client_files(context: ssl.SSLContext | None, ca_file: str, cert_file: str, key_file: str) -> None:
    """Load a client's CA and certificate files into `context` (into a scratch context when
    None: a check that they parse and that the key matches); raises TlsFileError naming the key."""
    if context is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca_file:
        _load_cas(context, "ca_file", ca_file)
    if cert_file:
        _load_cert_chain(context, cert_file, key_file)
