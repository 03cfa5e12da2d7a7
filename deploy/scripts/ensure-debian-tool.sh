#!/bin/sh
# ensure-debian-tool.sh COMMAND PACKAGE WHAT_SKIPS
#
# Make sure COMMAND is on PATH for tests that drive a real program: `prometheus` for the
# Pipeline health dashboard test, `chromium` for the trace explorer's browser tests (the
# browser Playwright would download cannot be fetched here, so Debian's is used).
#
# Already there: nothing to do (fast, idempotent). Missing: install Debian's PACKAGE when
# running as root with apt-get; otherwise say in one line that WHAT_SKIPS will skip. Never
# fails the build: a missing tool only skips the tests that need it.

cmd=$1 package=$2 what=$3
if command -v "$cmd" >/dev/null 2>&1; then
    exit 0
fi

skip() {
    echo "ensure-$cmd: $1; $what will skip" >&2
    exit 0
}

[ "$(id -u)" = 0 ] || skip "$cmd not on PATH and not root (apt-get install -y --no-install-recommends $package)"
command -v apt-get >/dev/null 2>&1 || skip "$cmd not on PATH and no apt-get to install it"

echo "ensure-$cmd: installing Debian's $package package" >&2
export DEBIAN_FRONTEND=noninteractive
# A package's postinst may start a service where an init system runs; tests start their own.
if ! apt-get install -y -q --no-install-recommends "$package" >/dev/null 2>&1; then
    apt-get update -q >/dev/null 2>&1 || true
    apt-get install -y -q --no-install-recommends "$package" >/dev/null 2>&1 \
        || skip "apt-get install $package failed"
fi
command -v "$cmd" >/dev/null 2>&1 || skip "$cmd still not on PATH after apt-get install $package"
echo "ensure-$cmd: $("$cmd" --version 2>&1 | head -n 1)" >&2
exit 0
