#!/bin/sh
# test-tools.sh: the programs some tests drive, from Debian (`make test-tools`; `make test` and
# .ci/run call it):
#   prometheus  the Pipeline health dashboard test (a real Prometheus scraping tracehouse)
#   chromium    the trace explorer's browser tests (Playwright drives Debian's chromium; the
#               browser Playwright would download cannot be fetched here)
#
# Present: says so in one line. Missing: says what it installs and why, then runs apt-get in
# the open (as root, or through sudo when that needs no password). When it cannot, it prints
# the command to run and which tests will skip; under CI (CI=true) that fails instead, so a CI
# run never passes with those tests skipped.

set -u
tools="prometheus chromium"
why_prometheus="the Pipeline health dashboard test"
why_chromium="the trace explorer's browser tests"

missing=""
for tool in $tools; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
missing=${missing# }
if [ -z "$missing" ]; then
    echo "test-tools: present:$(for t in $tools; do printf ' %s' "$(command -v "$t")"; done)"
    exit 0
fi

cannot() {
    echo "test-tools: $1" >&2
    for tool in $missing; do
        eval "echo \"test-tools: without $tool, \$why_$tool will skip\"" >&2
    done
    echo "test-tools: to install them: sudo apt-get install -y --no-install-recommends $missing" >&2
    [ "${CI:-}" = "true" ] && exit 1
    exit 0
}

if [ "$(id -u)" = 0 ]; then
    as_root=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root="sudo"
else
    cannot "$missing not on PATH, and not root (nor passwordless sudo) to install Debian's packages"
fi
command -v apt-get >/dev/null 2>&1 || cannot "$missing not on PATH, and no apt-get to install them"

for tool in $missing; do
    eval "echo \"test-tools: installing Debian's $tool package, for \$why_$tool\""
done
export DEBIAN_FRONTEND=noninteractive
# A stale or empty package list fails the first install: update once, then try again.
# (A package's postinst may start a service where an init system runs; tests start their own.)
# shellcheck disable=SC2086
$as_root apt-get install -y --no-install-recommends $missing \
    || { $as_root apt-get update && $as_root apt-get install -y --no-install-recommends $missing; } \
    || cannot "apt-get install $missing failed"
for tool in $missing; do
    command -v "$tool" >/dev/null 2>&1 || cannot "$tool still not on PATH after apt-get install"
done
echo "test-tools: installed: $missing"
