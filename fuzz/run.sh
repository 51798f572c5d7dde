#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each, one after the
# other, and prints per target: executions, exec/s and crashes found.
#
#   bash fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 300 s, all targets)
#
# Needs only stable Rust: cargo-fuzz is installed from crates.io when missing,
# and RUSTC_BOOTSTRAP=1 lets stable rustc take the -Z flags cargo-fuzz passes
# (sanitizer coverage for libFuzzer). No sanitizer by default (the code under
# test is safe Rust; ASan halves the speed): FUZZ_SANITIZER=address to use it.
#
# Seeds: fuzz/corpus/<target>/seed-* (small, checked in), the repository's
# real mail under fixtures/, and the example rules/ (put together here).
# Inputs the fuzzer finds interesting are added to fuzz/corpus/<target>/ and
# crash reproducers go to fuzz/artifacts/<target>/ (both ignored by git).
# Reproduce a crash: RUSTC_BOOTSTRAP=1 cargo fuzz run -O -s none TARGET FILE
# (from fuzz/).
set -euo pipefail
cd "$(dirname "$0")"
FUZZ_DIR=$PWD
ROOT=$(cd .. && pwd)

SECS=${1:-300}
shift || true
ALL=(smtp_command smtp_data parse_classify reply_strip commands rules_load)
if [ $# -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL[@]}"); fi
SAN=${FUZZ_SANITIZER:-none}
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz (crates.io)"
    cargo install cargo-fuzz --locked
fi

echo "== building the fuzz targets (sanitizer: $SAN)"
cargo fuzz build -O -s "$SAN"

# Seeds assembled from the repository's files (rebuilt every run).
SEEDS=$FUZZ_DIR/target/seeds
rm -rf "$SEEDS"
mkdir -p "$SEEDS"/{smtp_command,smtp_data,rules_load}
for f in "$ROOT"/fixtures/rules-golden/messages/*.eml "$ROOT"/fixtures/python-email/msg_0*.txt; do
    name=$(basename "$f")
    # The message as an SMTP client sends it: CRLF lines, leading dots doubled.
    stuffed=$(sed -e 's/\r$//' -e 's/^\./../' -e 's/$/\r/' "$f")
    {
        printf 'EHLO client.example\r\nMAIL FROM:<ann@example.org>\r\nRCPT TO:<support@example.test>\r\nDATA\r\n'
        printf '%s\n.\r\nQUIT\r\n' "$stuffed"
    } >"$SEEDS/smtp_command/$name"
    { printf '\377\001\000'; printf '%s\n.\r\n' "$stuffed"; } >"$SEEDS/smtp_data/$name"
done
# rules_load reads agents, calendar, sla and routing separated by NUL bytes.
{
    cat "$ROOT/rules/agents.toml"; printf '\0'
    cat "$ROOT/rules/calendar.toml"; printf '\0'
    cat "$ROOT/rules/sla.toml"; printf '\0'
    cat "$ROOT/rules/routing.toml"
} >"$SEEDS/rules_load/repo-rules"

# Per target: extra (read-only) seed directories and the longest input.
extra_dirs() {
    case $1 in
        smtp_command | smtp_data | rules_load) echo "$SEEDS/$1" ;;
        parse_classify) echo "$ROOT/fixtures/corpus $ROOT/fixtures/python-email $ROOT/fixtures/rules-golden/messages" ;;
        reply_strip) echo "$ROOT/fixtures/reply-stripping $ROOT/fixtures/python-email" ;;
        commands) echo "$ROOT/fixtures/reply-stripping" ;;
    esac
}
max_len() {
    case $1 in
        parse_classify | reply_strip) echo 65536 ;;
        *) echo 16384 ;;
    esac
}

LOGS=$FUZZ_DIR/target/logs
mkdir -p "$LOGS"
SUMMARY=()
for t in "${TARGETS[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    before=$(find "artifacts/$t" -type f | wc -l)
    log=$LOGS/$t.log
    touch "$log.start"
    echo "== $t: ${SECS}s (log: $log)"
    set +e
    # shellcheck disable=SC2046 # the seed directories are split on purpose
    cargo fuzz run -O -s "$SAN" "$t" "corpus/$t" $(extra_dirs "$t") -- \
        -max_total_time="$SECS" -max_len="$(max_len "$t")" -timeout=30 \
        -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    if [ -z "$execs" ]; then
        # No final stats (e.g. killed): take the last status line.
        execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
        rate=$(grep -o 'exec/s: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    fi
    after=$(find "artifacts/$t" -type f | wc -l)
    crashes=$((after - before))
    if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        echo "   $t exited with $rc and left no artifact; see $log"
        tail -20 "$log"
        crashes="? (rc $rc)"
    fi
    if [ "$crashes" != 0 ]; then
        grep -m3 -E 'panicked at|ERROR: libFuzzer|SUMMARY' "$log" || true
        find "artifacts/$t" -type f -newer "$log.start"
    fi
    # The targets keep a store / rule files under /dev/shm or $TMPDIR per process.
    for d in /dev/shm/postdesk-fuzz-* "${TMPDIR:-/tmp}"/postdesk-fuzz-*; do
        if [ -d "$d" ] && ! kill -0 "${d##*-}" 2>/dev/null; then rm -rf "$d"; fi
    done
    SUMMARY+=("$(printf '%-15s %8s %12s %10s %8s' "$t" "$SECS" "${execs:-?}" "${rate:-?}" "$crashes")")
done

echo
echo "== fuzzing summary ($(date -u +%Y-%m-%d), sanitizer: $SAN)"
printf '%-15s %8s %12s %10s %8s\n' target seconds executions exec/s crashes
printf '%s\n' "${SUMMARY[@]}"
