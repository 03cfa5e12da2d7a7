"""The image's HEALTHCHECK: exit 0 once the tracehouse in this container answers /readyz with "ready".

Every role serves /readyz, on one of two ports:
  - all-in-one and query: the query API, TRACEHOUSE_QUERY_PORT (8080);
  - sidecar and writer:   the health_check extension, TRACEHOUSE_HEALTH_PORT (13133).
Both are asked, over HTTP and then HTTPS (a listener with `tls:`; the certificate is not
verified, as the kubelet's probes do not: this is the container's own loopback); the first
that says ready wins, so one HEALTHCHECK fits every config.
TRACEHOUSE_HEALTHCHECK_URL replaces both with one URL (for a config of your own that
serves /readyz elsewhere). Exits 1 with the reason for each URL otherwise: Docker keeps
that output in `docker inspect` (State.Health.Log).

Standard library only, no proxy (HTTP_PROXY must not capture a loopback probe), and a
timeout under the HEALTHCHECK's own.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.request

TIMEOUT_S = 2.0
_ANY_ADDRESS = {"", "0.0.0.0", "::", "[::]", "*"}


def probe_host() -> str:
    """Where this container's own servers answer: loopback unless bound to one address."""
    bind = os.environ.get("TRACEHOUSE_BIND", "localhost").strip()
    if bind in _ANY_ADDRESS:
        return "127.0.0.1"
    return f"[{bind}]" if ":" in bind and not bind.startswith("[") else bind


def probe_urls() -> list[str]:
    override = os.environ.get("TRACEHOUSE_HEALTHCHECK_URL", "").strip()
    if override:
        return [override]
    host = probe_host()
    ports = (os.environ.get("TRACEHOUSE_QUERY_PORT", "8080"), os.environ.get("TRACEHOUSE_HEALTH_PORT", "13133"))
    return [f"{scheme}://{host}:{port}/readyz" for port in ports for scheme in ("http", "https")]


def check(url: str) -> str | None:
    """None when ready; else why not."""
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                         urllib.request.HTTPSHandler(context=unverified))
    try:
        with opener.open(url, timeout=TIMEOUT_S) as response:
            body = json.load(response)
    except OSError as exc:  # refused, timed out, HTTP 503 (HTTPError is an OSError)
        return f"{url}: {exc}"
    except ValueError as exc:
        return f"{url}: not a tracehouse readiness answer ({exc})"
    if not isinstance(body, dict) or body.get("status") != "ready":
        return f"{url}: {body!r}"
    return None


def main() -> int:
    reasons = []
    for url in probe_urls():
        reason = check(url)
        if reason is None:
            return 0
        reasons.append(reason)
    print("not ready: " + "; ".join(reasons), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
