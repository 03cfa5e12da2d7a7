#!/bin/sh
# Make sure a `prometheus` binary is on PATH for the dashboard test
# (tests/grafana/test_pipeline_health_dashboard.py runs every panel query against it).
#
# Already there: nothing to do (fast, idempotent). Missing: install Debian's package when
# running as root with apt-get; otherwise say in one line that the test will skip. Never
# fails the build: a missing Prometheus only skips the Prometheus-backed tests.

if command -v prometheus >/dev/null 2>&1; then
    exit 0
fi

skip() {
    echo "ensure-prometheus: $1; the Prometheus-backed dashboard test will skip" >&2
    exit 0
}

[ "$(id -u)" = 0 ] || skip "prometheus not on PATH and not root (apt-get install -y --no-install-recommends prometheus)"
command -v apt-get >/dev/null 2>&1 || skip "prometheus not on PATH and no apt-get to install it"

echo "ensure-prometheus: installing Debian's prometheus package" >&2
export DEBIAN_FRONTEND=noninteractive
# The package's postinst starts a service where an init system runs; tests start their own.
if ! apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1; then
    apt-get update -q >/dev/null 2>&1 || true
    apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1 \
        || skip "apt-get install prometheus failed"
fi
command -v prometheus >/dev/null 2>&1 || skip "prometheus still not on PATH after apt-get install"
echo "ensure-prometheus: $(prometheus --version 2>&1 | head -n 1)" >&2
exit 0
