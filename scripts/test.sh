#!/usr/bin/env bash
# test.sh — the project's test command: installs missing test dependencies, then runs the whole
# suite (unit tests and the end-to-end tests under tests/, which start real daemons, an aiosmtpd
# sink and smtplib/swaks clients on loopback ports).
#
# Usage: scripts/test.sh [extra cargo test args, e.g. a test name filter]
# Env:   TEST_THREADS (default 2: each end-to-end test runs a daemon and a sink; two at a time is
#        what a 2-core machine takes without timeouts), POSTDESK_LOG (daemon log filter in tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-deps.sh
start=$(date +%s)
status=0
POSTDESK_REQUIRE_DOVECOT=${POSTDESK_REQUIRE_DOVECOT:-1} cargo test --no-fail-fast "$@" -- --test-threads="${TEST_THREADS:-2}" || status=$?
echo "scripts/test.sh: cargo test finished in $(( $(date +%s) - start ))s (exit $status)"
exit $status
