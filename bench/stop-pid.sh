#!/usr/bin/env bash
# stop-pid.sh — stop ONE process by PID: SIGTERM, wait up to TIMEOUT s, then SIGKILL.
#
# Usage: stop-pid.sh PID [TIMEOUT_SECONDS]   (default timeout 10)
# A zombie (state Z) counts as stopped: PID 1 on the bench machines does not reap orphaned
# double-forked daemons (Postfix), so `kill -0` keeps succeeding on a dead one.
set -u
PID=${1:?usage: stop-pid.sh PID [TIMEOUT]}; T=${2:-10}
alive() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1; [[ -n $st && $st != Z* ]]; }
alive "$PID" || exit 0
kill -TERM "$PID" 2>/dev/null || exit 0
for _ in $(seq 1 $((T*10))); do alive "$PID" || exit 0; sleep 0.1; done
kill -KILL "$PID" 2>/dev/null; sleep 0.2; alive "$PID" && exit 1 || exit 0
