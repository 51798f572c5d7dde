#!/usr/bin/env bash
# bench/run.sh — postdesk benchmark suite: durable SMTP intake throughput, accept latency,
# end-to-end (250 -> acknowledgement) latency and peak RSS, beside Postfix references
# (smtp-sink = no persistence, the ceiling; a private Postfix smtpd with its durable queue).
#
# Usage: bench/run.sh            (as root; see bench/README.md for every knob)
# Everything runs on 127.0.0.1 and under bench/out/ (wiped at the start of each run).
# Prints a table and writes it to bench/out/results.md (raw key/values: bench/out/results.tsv).
# Stops everything it started on exit (trap), and stops leftovers of an interrupted earlier run.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
OUT=${BENCH_OUT:-$HERE/out}

# ---- knobs (environment) -----------------------------------------------------------------
MSGS_1=${BENCH_MSGS_1:-1000}              # 4 KiB messages, 1 session
MSGS_N=${BENCH_MSGS_N:-5000}              # 4 KiB messages, 20 and 100 sessions
MSGS_1_LARGE=${BENCH_MSGS_1_LARGE:-300}   # 100 KiB messages, 1 session
MSGS_N_LARGE=${BENCH_MSGS_N_LARGE:-1000}  # 100 KiB messages, 20 and 100 sessions
LAT_MSGS=${BENCH_LAT_MSGS:-500}           # accept-latency client: messages per run (1 and 20 sessions)
E2E_SECS=${BENCH_E2E_SECS:-10}            # end-to-end run length at half the max durable load
E2E_RATE=${BENCH_E2E_RATE:-}              # offered msg/s for it (default: half of postdesk 4 KiB x 20)
FSYNC_SECS=${BENCH_FSYNC_SECS:-5}         # each fsync probe
DRAIN_TIMEOUT=${BENCH_DRAIN_TIMEOUT:-120} # wait this long for postdesk's backlog after a run
RUN_TIMEOUT=${BENCH_RUN_TIMEOUT:-180}     # one smtp-source / client run is stopped after this
SESSIONS=${BENCH_SESSIONS:-"1 20 100"}
SIZES=${BENCH_SIZES:-"4096 102400"}
TARGETS=${BENCH_TARGETS:-"smtp-sink postfix postdesk"}
SINK=${BENCH_SINK:-python}                # postdesk's relay: python (aiosmtpd ack_sink.py) or postfix (smtp-sink, C)
NOTIFY=${BENCH_NOTIFY:-false}             # true: agents are notified too (more outbound mail per ticket)
SOURCE_OPTS=${BENCH_SOURCE_OPTS:-}        # extra smtp-source flags, e.g. -d (reuse connections)
SKIP_INSTALL=${BENCH_SKIP_INSTALL:-}      # 1: do not apt-get / pip
SKIP_BUILD=${BENCH_SKIP_BUILD:-}          # 1: do not cargo build (use POSTDESK_BIN as it is)
POSTDESK_BIN=${POSTDESK_BIN:-$ROOT/target/release/postdesk}

VENV=$HERE/.venv
PY=$VENV/bin/python
SMTP_SOURCE=/usr/sbin/smtp-source
SMTP_SINK=/usr/sbin/smtp-sink
RESULTS=$OUT/results.tsv
PIDDIR=$OUT/pids

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
record() { printf '%s\t%s\n' "$1" "$2" >> "$RESULTS"; }
has_target() { [[ " $TARGETS " == *" $1 "* ]]; }
now_ns() { date +%s%N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # PORT TIMEOUT_S [PID]
  local i
  for i in $(seq 1 $(($2 * 20))); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    [[ -n ${3:-} ]] && ! kill -0 "$3" 2>/dev/null && return 1
    sleep 0.05
  done
  return 1
}

# ---- process bookkeeping: every PID we start is in $PIDDIR/NAME.pid with a cmdline pattern --
track() { printf '%s\n%s\n' "$2" "$3" > "$PIDDIR/$1.pid"; } # NAME PID PATTERN
untrack() { rm -f "$PIDDIR/$1.pid"; }
stop_tracked() { # NAME: stop it if the PID still runs the command we started
  local f=$PIDDIR/$1.pid pid pat
  [[ -f $f ]] || return 0
  { read -r pid; read -r pat; } < "$f" || true
  if [[ -n ${pid:-} && -r /proc/$pid/cmdline ]] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$pat"; then
    "$HERE/stop-pid.sh" "$pid" 15 || log "could not stop $1 (PID $pid)"
  fi
  rm -f "$f"
}
POSTFIX_DIR=$OUT/postfix
stop_postfix() {
  if [[ -f $POSTFIX_DIR/etc/main.cf ]]; then
    /usr/sbin/postfix -c "$POSTFIX_DIR/etc" stop >/dev/null 2>&1 || true
    local pid=
    [[ -f $POSTFIX_DIR/spool/pid/master.pid ]] && pid=$(tr -d ' ' < "$POSTFIX_DIR/spool/pid/master.pid")
    [[ -n $pid ]] && { "$HERE/stop-pid.sh" "$pid" 15 || true; }
  fi
}
cleanup() {
  local f
  for f in "$PIDDIR"/*.pid; do [[ -e $f ]] && stop_tracked "$(basename "$f" .pid)"; done
  stop_postfix
}
mkdir -p "$OUT" "$PIDDIR"
cleanup   # leftovers of an interrupted earlier run
trap cleanup EXIT
trap 'exit 130' INT TERM
find "$OUT" -mindepth 1 -maxdepth 1 ! -name pids -exec rm -rf {} +
mkdir -p "$OUT/logs"
: > "$RESULTS"

# ---- 1. setup ------------------------------------------------------------------------------
if [[ -z $SKIP_INSTALL ]]; then
  if [[ ! -x $SMTP_SOURCE || ! -x /usr/sbin/postfix ]]; then
    log "installing postfix (smtp-source, smtp-sink, private instance)"
    [[ -n $(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -print -quit 2>/dev/null) ]] || apt-get update -q >&2
    echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postfix >&2
  fi
  if ! "$PY" -c 'import aiosmtpd' 2>/dev/null; then
    log "creating $VENV with aiosmtpd"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q aiosmtpd >&2
  fi
fi
[[ -x $SMTP_SOURCE ]] || { echo "smtp-source missing (apt-get install postfix)" >&2; exit 1; }
"$PY" -c 'import aiosmtpd' || { echo "$VENV has no aiosmtpd" >&2; exit 1; }

if has_target postdesk; then
  if [[ -z $SKIP_BUILD ]]; then
    log "cargo build --release"
    if ! (cd "$ROOT" && cargo build --release) > "$OUT/logs/cargo-build.log" 2>&1; then
      log "build failed (see $OUT/logs/cargo-build.log); postdesk is left out"
      tail -20 "$OUT/logs/cargo-build.log" >&2
      record postdesk.status "build failed"
      TARGETS=${TARGETS//postdesk/}
    fi
  fi
  if has_target postdesk && [[ ! -x $POSTDESK_BIN ]]; then
    record postdesk.status "no binary at $POSTDESK_BIN"; TARGETS=${TARGETS//postdesk/}
  fi
fi

record machine.nproc "$(nproc)"
record machine.kernel "$(uname -sr)"
record machine.cpu "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
record machine.mem "$(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
record machine.date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
record machine.commit "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
record params "1 session: $MSGS_1 x 4 KiB, $MSGS_1_LARGE x 100 KiB; 20/100 sessions: $MSGS_N x 4 KiB, $MSGS_N_LARGE x 100 KiB; smtp-source ${SOURCE_OPTS:-(new connection per message)}; latency client $LAT_MSGS msgs"

count_for() { # SIZE SESSIONS
  if [[ $1 -le 16384 ]]; then [[ $2 -eq 1 ]] && echo "$MSGS_1" || echo "$MSGS_N"
  else [[ $2 -eq 1 ]] && echo "$MSGS_1_LARGE" || echo "$MSGS_N_LARGE"; fi
}

fsync_probe() { # LABEL
  local r
  r=$("$PY" "$HERE/fsync_probe.py" "$OUT/fsync" "$FSYNC_SECS" 4096) || r="failed"
  log "fsync $1: $r"
  record "fsync.$1" "$r"
}

# smtp-source run against 127.0.0.1:PORT; records tput.TARGET.SIZE.SESSIONS (msg/s)
source_run() { # TARGET PORT SIZE SESSIONS
  local target=$1 port=$2 size=$3 sess=$4 n s e rate logf rc=0 problems
  n=$(count_for "$size" "$sess")
  logf=$OUT/logs/smtp-source-$target-$size-$sess.log
  s=$(now_ns)
  # shellcheck disable=SC2086
  timeout "$RUN_TIMEOUT" "$SMTP_SOURCE" $SOURCE_OPTS -s "$sess" -l "$size" -m "$n" \
    -f bench@example.org -t support@example.test 127.0.0.1:"$port" > "$logf" 2>&1 || rc=$?
  e=$(now_ns)
  rate=$(awk -v m="$n" -v ns=$((e - s)) 'BEGIN{printf "%.0f", m/(ns/1e9)}')
  LAST_WALL=$(awk -v ns=$((e - s)) 'BEGIN{printf "%.3f", ns/1e9}')
  problems=$(grep -ciE 'error|warning|fatal|refused|timeout' "$logf" || true)
  if [[ $rc -ne 0 ]]; then
    record "tput.$target.$size.$sess" "FAILED (smtp-source rc $rc; $logf)"
  elif [[ $problems -gt 0 ]]; then
    record "tput.$target.$size.$sess" "$rate (! $problems smtp-source warnings)"
  else
    record "tput.$target.$size.$sess" "$rate"
  fi
  log "$target size $size sessions $sess: $n msgs in $(awk -v ns=$((e - s)) 'BEGIN{printf "%.2f", ns/1e9}') s = $rate msg/s (rc $rc, $problems warnings)"
}

# accept latency with our own client; records lat.TARGET.SESSIONS = "p50 / p99 ms (rate)"
latency_run() { # TARGET PORT SESSIONS [TAG]
  local target=$1 port=$2 sess=$3 tag=${4:-$1-$3} r
  r=$("$PY" "$HERE/smtp_client.py" --port "$port" --sessions "$sess" --count "$LAT_MSGS" \
        --size 4096 --tag "$tag" --timeout "$RUN_TIMEOUT" --log "$OUT/logs/sent-$tag.jsonl") || r='{"error":"client failed"}'
  echo "$r" > "$OUT/logs/latency-$tag.json"
  record "lat.$target.$sess" "$(jfmt "$r" '{p50_ms} / {p99_ms} ms ({rate} msg/s, {errors} errors)')"
  log "$target latency $sess sessions: $r"
}
jfmt() { # JSON FORMAT -> format string filled from the JSON object
  "$PY" -c 'import json,sys
d=json.loads(sys.argv[1])
try: print(sys.argv[2].format(**d))
except Exception: print(d.get("error") or sys.argv[1])' "$1" "$2"
}

smtp_greets() { # PORT: a connection gets "220" within 5 s (a bound but dead listener does not)
  python3 -c 'import socket,sys
s=socket.create_connection(("127.0.0.1",int(sys.argv[1])),timeout=5)
sys.exit(0 if s.recv(512).startswith(b"220") else 1)' "$1" 2>/dev/null
}

# ---- references ----------------------------------------------------------------------------
run_smtp_sink() {
  local port pid
  port=$(free_port)
  "$SMTP_SINK" -u nobody 127.0.0.1:"$port" 1024 > "$OUT/logs/smtp-sink.log" 2>&1 &
  pid=$!; track smtp-sink "$pid" "smtp-sink"
  wait_port "$port" 10 "$pid" || { record smtp-sink.status "did not start"; stop_tracked smtp-sink; return; }
  log "smtp-sink (PID $pid) on 127.0.0.1:$port"
  local size sess
  for size in $SIZES; do for sess in $SESSIONS; do source_run smtp-sink "$port" "$size" "$sess"; done; done
  latency_run smtp-sink "$port" 1
  latency_run smtp-sink "$port" 20
  stop_tracked smtp-sink
}

postfix_wait_queue() { # wait (max 60 s) until the private Postfix has delivered everything
  local i n=0
  for i in $(seq 1 300); do
    n=$(find "$POSTFIX_DIR/spool/incoming" "$POSTFIX_DIR/spool/active" "$POSTFIX_DIR/spool/maildrop" \
          "$POSTFIX_DIR/spool/deferred" -type f 2>/dev/null | wc -l)
    [[ $n -eq 0 ]] && return 0
    sleep 0.2
  done
  log "postfix queue still holds $n files"
}
run_postfix() {
  local port pid
  port=$(free_port)
  if ! pid=$("$HERE/postfix-up.sh" "$POSTFIX_DIR" "$port" 2> "$OUT/logs/postfix-up.log" | tail -1); then
    record postfix.status "did not start (see $OUT/logs/postfix-up.log)"; cat "$OUT/logs/postfix-up.log" >&2; return
  fi
  log "private Postfix (master PID $pid) on 127.0.0.1:$port"
  local size sess
  for size in $SIZES; do for sess in $SESSIONS; do
    source_run postfix "$port" "$size" "$sess"; postfix_wait_queue
  done; done
  latency_run postfix "$port" 1; postfix_wait_queue
  latency_run postfix "$port" 20; postfix_wait_queue
  stop_postfix
}

# ---- postdesk ------------------------------------------------------------------------------
PD_PID= PD_SMTP= PD_WEB= PD_DIR= PD_SINK_PID= LAST_WALL=
start_postdesk() { # TAG: fresh data dir, own ack sink; sets PD_*
  local tag=$1 sinkport
  PD_DIR=$OUT/postdesk/$tag
  rm -rf "$PD_DIR"; mkdir -p "$PD_DIR/data"
  PD_SMTP=$(free_port); PD_WEB=$(free_port); sinkport=$(free_port)
  if [[ $SINK == postfix ]]; then
    # C sink: one dump file per accepted message (its mtime is the arrival time).
    mkdir -p "$PD_DIR/dump"; chmod 777 "$PD_DIR/dump"
    "$SMTP_SINK" -u nobody -d "$PD_DIR/dump/%H%M%S." "127.0.0.1:$sinkport" 1000 > "$PD_DIR/ack-sink.log" 2>&1 &
    PD_SINK_PID=$!; track ack-sink "$PD_SINK_PID" "smtp-sink"
  else
    "$PY" "$HERE/ack_sink.py" "$sinkport" "$PD_DIR/acks.jsonl" > "$PD_DIR/ack-sink.log" 2>&1 &
    PD_SINK_PID=$!; track ack-sink "$PD_SINK_PID" "ack_sink.py"
  fi
  wait_port "$sinkport" 20 "$PD_SINK_PID" || { log "ack sink did not start"; cat "$PD_DIR/ack-sink.log" >&2; return 1; }
  cat > "$PD_DIR/config.toml" <<EOF
# postdesk benchmark config (generated by bench/run.sh)
[server]
hostname = "support.example.test"
data_dir = "data"
rules_dir = "$ROOT/rules"

[smtp]
listen = ["127.0.0.1:$PD_SMTP"]
max_connections = 300
max_connections_per_ip = 300          # every load generator connects from 127.0.0.1
max_message_size = 26214400
shutdown_grace = "2s"

[[mailbox]]
address = "support@example.test"
queue = "general"

[outbound]
relay = "smtp://127.0.0.1:$sinkport"
from = "Example Support <support@example.test>"
concurrency = 8
retry_initial = "1s"
retry_max = "5s"

[web]
listen = "127.0.0.1:$PD_WEB"
api_token = "bench"

[acknowledgement]
enabled = true
max_per_address_per_hour = 1000000

[agents]
# The figures are for the acknowledgement path. BENCH_NOTIFY=true adds the
# agents' notifications (two more mails per ticket with the example agents).
notify = $NOTIFY

[auth]
# No sender verification: it would ask the system's DNS for every message
# (README, "What sender verification costs", has its own figures).
verify = false
EOF
  if ! "$POSTDESK_BIN" check -c "$PD_DIR/config.toml" > "$PD_DIR/check.log" 2>&1; then
    log "postdesk check rejects the bench config:"; cat "$PD_DIR/check.log" >&2; return 1
  fi
  POSTDESK_LOG=${POSTDESK_LOG:-warn} "$POSTDESK_BIN" serve -c "$PD_DIR/config.toml" > "$PD_DIR/postdesk.log" 2>&1 &
  PD_PID=$!; track postdesk "$PD_PID" "$PD_DIR/config.toml"
  local h
  if ! h=$("$PY" "$HERE/health.py" "http://127.0.0.1:$PD_WEB" bench ready 30 "$PD_PID"); then
    log "postdesk did not become ready: $h"; tail -20 "$PD_DIR/postdesk.log" >&2; return 1
  fi
  wait_port "$PD_SMTP" 10 "$PD_PID" || { log "postdesk SMTP port not open"; return 1; }
  if ! smtp_greets "$PD_SMTP"; then
    log "postdesk accepts connections on :$PD_SMTP but sends no 220 greeting within 5 s"
    tail -20 "$PD_DIR/postdesk.log" >&2; return 1
  fi
  log "postdesk $tag (PID $PD_PID) smtp :$PD_SMTP web :$PD_WEB, ready after $(jfmt "$h" '{waited_s}') s"
}
stop_postdesk() { # TAG: records drain time, acks, tickets and peak RSS; then stops both
  local tag=$1 h hwm acks
  if kill -0 "$PD_PID" 2>/dev/null; then
    if h=$("$PY" "$HERE/health.py" "http://127.0.0.1:$PD_WEB" bench drain "$DRAIN_TIMEOUT" "$PD_PID"); then
      record "drain.postdesk.$tag" "$(jfmt "$h" '{waited_s} s (tickets {tickets})')"
      if [[ -n $LAST_WALL ]]; then  # intake + processing + acknowledgement, all messages
        record "pipe.postdesk.$tag" "$(jfmt "$h" "{tickets}/($LAST_WALL+{waited_s})" | awk -F'[/()+]' '($3+$4)>0{printf "%.0f", $1/($3+$4)}')"
      fi
    else
      record "drain.postdesk.$tag" "NOT drained after $DRAIN_TIMEOUT s: $h"
    fi
    LAST_WALL=
    sleep 0.5   # the sink flushes its log every 0.2 s
    acks=$(ack_count)
    record "acks.postdesk.$tag" "$acks"
    hwm=$(awk '/^VmHWM/{print $2}' "/proc/$PD_PID/status" 2>/dev/null || echo "")
    [[ -n $hwm ]] && record "rss.postdesk.$tag" "$hwm"
    log "postdesk $tag: drain ${h:-?}; acks $acks; VmHWM ${hwm:-?} kB"
  else
    record "drain.postdesk.$tag" "postdesk exited (see $PD_DIR/postdesk.log)"
    tail -20 "$PD_DIR/postdesk.log" >&2
  fi
  stop_tracked postdesk
  stop_tracked ack-sink
}
ack_count() { # messages the current postdesk run's sink has accepted
  if [[ $SINK == postfix ]]; then
    find "$PD_DIR/dump" -type f 2>/dev/null | wc -l
  else
    wc -l < "$PD_DIR/acks.jsonl" 2>/dev/null || echo 0
  fi
}
wait_acks() { # ACKLOG EXPECTED TIMEOUT_S: until the sink has logged EXPECTED acks (or timeout)
  local i n=0 want=${2//[^0-9]/}
  for i in $(seq 1 $(($3 * 5))); do
    n=$(ack_count)
    [[ $n -ge ${want:-0} ]] && return 0
    sleep 0.2
  done
  log "only $n of $want acknowledgements arrived within $3 s"
}
postdesk_failed() { # TAG: record why, stop what runs, and leave postdesk out from here on
  record postdesk.status "did not start or does not speak SMTP (run $1; see $PD_DIR/postdesk.log); later postdesk runs skipped"
  stop_tracked postdesk; stop_tracked ack-sink
}
run_postdesk() {
  local size sess tag
  for size in $SIZES; do for sess in $SESSIONS; do
    tag=$size.$sess
    start_postdesk "$tag" || { postdesk_failed "$tag"; return 0; }
    source_run postdesk "$PD_SMTP" "$size" "$sess"
    stop_postdesk "$tag"
  done; done
  for sess in 1 20; do
    tag=lat.$sess
    start_postdesk "$tag" || { postdesk_failed "$tag"; return 0; }
    latency_run postdesk "$PD_SMTP" "$sess" "postdesk-lat-$sess"
    stop_postdesk "$tag"
  done
  # end-to-end: 250 -> acknowledgement at the sink, at about half the max durable load
  local max pipe
  max=$(awk -F'\t' '$1=="tput.postdesk.4096.20"{print $2+0}' "$RESULTS")
  e2e_run e2e "${E2E_RATE:-$(( ${max:-0} / 2 ))}" "half of the 4 KiB x 20 intake rate ${max:-?} msg/s" || return 0
  # and at half the rate the whole pipeline sustained (intake + processing + ack) in that run
  pipe=$(awk -F'\t' '$1=="pipe.postdesk.4096.20"{print $2+0}' "$RESULTS")
  if [[ -z $E2E_RATE && ${pipe:-0} -ge 2 ]]; then
    e2e_run e2e-sustained $(( pipe / 2 )) "half of the sustained pipeline rate $pipe msg/s" || return 0
  fi
}
e2e_run() { # TAG RATE WHY: paced 4 KiB load over 20 sessions for E2E_SECS; records TAG.* keys
  local tag=$1 rate=$2 why=$3 n r
  [[ $rate -ge 1 ]] || rate=50
  n=$(( rate * E2E_SECS ))
  start_postdesk "$tag" || { postdesk_failed "$tag"; return 1; }
  r=$("$PY" "$HERE/smtp_client.py" --port "$PD_SMTP" --sessions 20 --count "$n" --size 4096 \
        --rate "$rate" --tag "$tag" --timeout "$RUN_TIMEOUT" --log "$PD_DIR/sent.jsonl") || r='{"error":"client failed"}'
  echo "$r" > "$OUT/logs/$tag-client.json"
  record "$tag.offered" "$rate msg/s x ${E2E_SECS} s over 20 sessions ($why)"
  record "$tag.client" "$(jfmt "$r" '{rate} msg/s accepted, accept p50 {p50_ms} / p99 {p99_ms} ms, {errors} errors')"
  wait_acks "$PD_DIR/acks.jsonl" "$(jfmt "$r" '{ok}')" "$DRAIN_TIMEOUT"
  stop_postdesk "$tag"
  [[ $SINK == postfix ]] && "$PY" "$HERE/dump_acks.py" "$PD_DIR/dump" "$PD_DIR/acks.jsonl"
  r=$("$PY" "$HERE/e2e_match.py" "$PD_DIR/sent.jsonl" "$PD_DIR/acks.jsonl")
  echo "$r" > "$OUT/logs/$tag-match.json"
  record "$tag.result" "$(jfmt "$r" '{p50_ms} / {p99_ms} ms (max {max_ms} ms; {acked} of {sent} acked)')"
  record "$tag.p99" "$(jfmt "$r" '{p99_ms}')"
  log "$tag: $r"
}

# ---- the run -------------------------------------------------------------------------------
log "targets: $TARGETS; results in $OUT"
fsync_probe before
if has_target smtp-sink; then run_smtp_sink; fi
if has_target postfix; then run_postfix; fi
if has_target postdesk; then run_postdesk; fi
fsync_probe after
"$PY" "$HERE/report.py" "$RESULTS" "$OUT/results.md"
