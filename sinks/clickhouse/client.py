"""Opening clickhouse-connect clients from an endpoint DSN, embedded (chDB) or remote (HTTP).

Clients are synchronous and not safe for concurrent use: each thread that talks to
ClickHouse gets its own. chDB allows one data directory per process; every client on
that directory shares the same engine, which is how the all-in-one's exporter and query
API see the same tables.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import clickhouse_connect
from clickhouse_connect.driver import options as driver_options
from clickhouse_connect.driver.client import Client

if TYPE_CHECKING:
    from tracehouse.sinks.clickhouse.config import ClickHouseTlsConfig


def is_embedded(endpoint: str) -> bool:
    return endpoint.startswith("chdb:")


def chdb_path(endpoint: str) -> Path:
    """`chdb:///abs/dir` -> /abs/dir; `chdb://./rel/dir` and `chdb://rel/dir` -> relative to cwd."""
    rest = endpoint[len("chdb://"):]
    return Path(rest).expanduser().resolve()


def _without_dataframes() -> None:
    """We insert lists of columns, never DataFrames. clickhouse-connect asks on every insert
    whether the data is a pandas DataFrame, and asking imports pandas (chDB's dependency, so it
    is installed): 48 MB of RSS for an answer that is always no. Answer it without pandas,
    unless this process has loaded pandas for something else."""
    if "pandas" not in sys.modules and "pd" not in vars(driver_options):
        driver_options.pd = None
        driver_options.pd_time_test = None


def open_client(endpoint: str, *, username: str = "default", password: str = "",
                database: str | None = None, settings: dict[str, Any] | None = None,
                timeout_s: float = 30.0, tls: ClickHouseTlsConfig | None = None) -> Client:
    _without_dataframes()
    if is_embedded(endpoint):
        path = chdb_path(endpoint)
        path.mkdir(parents=True, exist_ok=True)
        return clickhouse_connect.get_client(dsn=f"chdb://{os.fspath(path)}", database=database,
                                             settings=settings)
    parts = urlsplit(endpoint)
    tls_kwargs: dict[str, Any] = {}
    if tls is not None:
        tls_kwargs = {"verify": not tls.insecure_skip_verify, "ca_cert": tls.ca_file or None,
                      "client_cert": tls.cert_file or None, "client_cert_key": tls.key_file or None,
                      "server_host_name": tls.server_name_override or None}
        if tls.cert_file:
            # "strict": the certificate at the TLS layer plus the usual username and password;
            # clickhouse-connect's default would swap the password for certificate user auth.
            tls_kwargs["tls_mode"] = "strict"
    return clickhouse_connect.get_client(
        host=parts.hostname or "localhost",
        port=parts.port or (8443 if parts.scheme == "https" else 8123),
        secure=parts.scheme == "https",
        username=parts.username or username,
        password=parts.password or password,
        database=database,
        settings=settings,
        connect_timeout=min(timeout_s, 10.0),
        send_receive_timeout=timeout_s,
        compress="lz4",
        # Bound parameters go in the POST body, not the URL: the exporter's retry gate
        # binds every trace id of a batch, far more than a URL may carry.
        form_encode_query_params=True,
        **tls_kwargs,
    )
