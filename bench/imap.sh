#!/usr/bin/env bash
# bench/imap.sh — IMAP ingest rate: a private Dovecot folder holding N waiting
# messages (default 10,000 of ~4 KiB), postdesk started on it, and the time until
# every message is committed to the spool (ingest) and until every one is a
# ticket (ingest + processing), with postdesk's peak RSS (VmHWM).
#
# Usage: bash bench/imap.sh
# Knobs: BENCH_IMAP_MSGS (10000), BENCH_IMAP_BATCH (postdesk batch_size, 200),
#        BENCH_IMAP_AFTER (after mode, "seen"), BENCH_SKIP_BUILD=1, POSTDESK_BIN,
#        BENCH_OUT (bench/out). Needs dovecot-imapd (scripts/test-deps.sh installs it).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
OUT=${BENCH_OUT:-$HERE/out}/imap
MSGS=${BENCH_IMAP_MSGS:-10000}
BATCH=${BENCH_IMAP_BATCH:-200}
AFTER=${BENCH_IMAP_AFTER:-seen}
POSTDESK_BIN=${POSTDESK_BIN:-$ROOT/target/release/postdesk}
TOKEN=bench-token
USER_NAME=bench
PASS=bench-secret

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

if [[ -z ${BENCH_SKIP_BUILD:-} ]]; then
  (cd "$ROOT" && cargo build --release --quiet)
fi
[[ -x /usr/sbin/dovecot ]] || { echo "bench/imap.sh: Dovecot missing (bash scripts/test-deps.sh installs it)" >&2; exit 1; }

rm -rf "$OUT"; mkdir -p "$OUT/postdesk"
IMAP_PORT=$(free_port); SMTP_PORT=$(free_port); WEB_PORT=$(free_port)
PD_PID=
cleanup() {
  [[ -n $PD_PID ]] && kill -TERM "$PD_PID" 2>/dev/null || true
  [[ -f $OUT/dovecot/run/master.pid ]] && kill -TERM "$(cat "$OUT/dovecot/run/master.pid")" 2>/dev/null || true
}
trap cleanup EXIT

bash "$ROOT/scripts/dovecot-up.sh" "$OUT/dovecot" "$IMAP_PORT" "$USER_NAME" "$PASS" > "$OUT/dovecot-up.log" 2>&1

# Deliver the backlog the way an MTA does (a file per message in Maildir/new).
python3 - "$OUT/dovecot/mail/$USER_NAME/Maildir" "$MSGS" <<'EOF'
import os, sys
md, n = sys.argv[1], int(sys.argv[2])
para = ("Our invoice export has been failing since this morning and the whole team "
        "is blocked; the log says the connection was reset. ") * 4
body = "\r\n".join(para for _ in range(10))
for i in range(n):
    raw = (f"From: Customer {i} <customer{i}@example.org>\r\n"
           f"To: support@example.test\r\n"
           f"Subject: Benchmark question {i}\r\n"
           f"Message-ID: <bench-imap-{i}@example.org>\r\n"
           f"Date: Thu, 26 Nov 2026 10:00:00 +0000\r\n\r\n{body}\r\n")
    tmp = os.path.join(md, "tmp", f"{i}.bench")
    with open(tmp, "w") as f:
        f.write(raw)
    if os.geteuid() == 0:
        os.chown(tmp, 65534, 65534)
    os.rename(tmp, os.path.join(md, "new", f"{i}.bench"))
EOF

cat > "$OUT/postdesk/config.toml" <<EOF
[server]
hostname = "support.example.test"
data_dir = "data"
rules_dir = "$ROOT/rules"

[smtp]
listen = ["127.0.0.1:$SMTP_PORT"]

[[mailbox]]
address = "support@example.test"

[outbound]
relay = "maildir:outbox"
from = "Example Support <support@example.test>"

[web]
listen = "127.0.0.1:$WEB_PORT"
api_token = "$TOKEN"

[auth]
verify = false                      # IMAP intake is never verified; no DNS from the bench

[[imap]]
host = "127.0.0.1"
port = $IMAP_PORT
tls = "none"
username = "$USER_NAME"
password = "$PASS"
mailbox = "support@example.test"
after = "$AFTER"
batch_size = $BATCH
EOF

start=$(date +%s.%N)
"$POSTDESK_BIN" serve -c "$OUT/postdesk/config.toml" > "$OUT/postdesk.log" 2>&1 &
PD_PID=$!

# Poll health: time to all ingested, then to all processed (tickets), peak RSS.
python3 - "$WEB_PORT" "$TOKEN" "$MSGS" "$PD_PID" "$start" "$BATCH" "$AFTER" <<'EOF'
import json, sys, time, urllib.request
port, token, n, pid, start, batch, after = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), sys.argv[6], sys.argv[7]
def health():
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/health",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)
def hwm():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
ingested = processed = None
deadline = time.time() + 900
while time.time() < deadline:
    try:
        h = health()
    except OSError:
        time.sleep(0.05); continue
    got = sum(i.get("messages_ingested", 0) for i in h.get("imap", []))
    if ingested is None and got >= n:
        ingested = time.time() - start
    if ingested is not None and h.get("tickets", 0) >= n and h.get("spool_pending", 1) == 0:
        processed = time.time() - start
        break
    time.sleep(0.05)
if processed is None:
    sys.exit(f"timed out: {h}")
print(f"IMAP ingest, {n} waiting messages of ~4 KiB (batch_size {batch}, after = \"{after}\"):")
print(f"  all committed to the spool : {ingested:7.2f} s  {n / ingested:8.0f} msg/s (from process start, incl. connect)")
print(f"  all turned into tickets    : {processed:7.2f} s  {n / processed:8.0f} msg/s (ingest + processing + acknowledgements queued)")
print(f"  postdesk peak RSS (VmHWM)  : {hwm():7.1f} MiB")
EOF
