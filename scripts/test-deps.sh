#!/usr/bin/env bash
# test-deps.sh — install what the integration tests need, only when it is missing.
#
#   Debian packages: swaks (a real SMTP client used by some tests), mutt and tmux (an agent
#                    replying with real mutt, driven through tmux), dovecot-imapd and
#                    dovecot-core (a private IMAP server the IMAP intake tests start)
#                    postfix (a private instance delivers through pipe(8) to `postdesk deliver`
#                    in tests/postfix_pipe.rs; preseeded "No configuration", so the system's
#                    own Postfix is neither configured nor started)
#                    dnsmasq-base (a private DNS server on loopback: MX, A, TXT records for the
#                    delivery and sender-authentication tests; the binary only, no system resolver)
#   .venv-test/    : a Python venv with aiosmtpd (the outbound SMTP sink the tests read)
#                    and prometheus_client (parses /metrics) and playwright (drives Debian's
#                    /usr/bin/chromium, from apt; never `playwright install`) and dkimpy with
#                    PyNaCl (an independent DKIM verifier of what postdesk signs; PyNaCl for
#                    Ed25519)
#
# Idempotent and fast when everything is present. Runs as root on CI (no sudo);
# as a non-root user it uses sudo for apt-get when available.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV="$ROOT/.venv-test"
PYTHON=${PYTHON:-python3}

APT_PACKAGES=(swaks dovecot-imapd dovecot-core mutt tmux chromium postfix dnsmasq-base)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=
  [[ $(id -u) -eq 0 ]] || SUDO=sudo
  echo "test-deps: installing ${missing[*]}" >&2
  # Postfix asks how to configure the system's mail at install time: nothing (we run private ones).
  echo 'postfix postfix/main_mailer_type select No configuration' | $SUDO debconf-set-selections
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! "$VENV/bin/python3" -c 'import aiosmtpd' 2>/dev/null; then
  echo "test-deps: creating $VENV with aiosmtpd" >&2
  rm -rf "$VENV"
  if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
    # Debian's python3 without ensurepip: install python3-venv and use the system Python.
    rm -rf "$VENV"
    SUDO=
    [[ $(id -u) -eq 0 ]] || SUDO=sudo
    $SUDO apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends python3-venv >/dev/null
    /usr/bin/python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install -q --disable-pip-version-check aiosmtpd
fi

# prometheus_client parses /metrics in tests/metrics.rs (a real text-format parser).
if ! "$VENV/bin/python3" -c 'import prometheus_client' 2>/dev/null; then
  echo "test-deps: installing prometheus_client into $VENV" >&2
  "$VENV/bin/pip" install -q --disable-pip-version-check prometheus_client
fi

if ! "$VENV/bin/python3" -c 'import playwright' 2>/dev/null; then
  echo "test-deps: installing playwright (the Python driver only) into $VENV" >&2
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 "$VENV/bin/pip" install -q --disable-pip-version-check playwright
fi

# dkimpy verifies our DKIM signatures in tests/dkim.rs (PyNaCl: its Ed25519 support).
if ! "$VENV/bin/python3" -c 'import dkim, nacl' 2>/dev/null; then
  echo "test-deps: installing dkimpy and PyNaCl into $VENV" >&2
  "$VENV/bin/pip" install -q --disable-pip-version-check dkimpy pynacl
fi

command -v swaks >/dev/null || { echo "test-deps: swaks missing after install" >&2; exit 1; }
"$VENV/bin/python3" -c 'import aiosmtpd' || { echo "test-deps: aiosmtpd missing in $VENV" >&2; exit 1; }
"$VENV/bin/python3" -c 'import playwright' || { echo "test-deps: playwright missing in $VENV" >&2; exit 1; }
"$VENV/bin/python3" -c 'import dkim, nacl' || { echo "test-deps: dkimpy or PyNaCl missing in $VENV" >&2; exit 1; }
[[ -x /usr/bin/chromium ]] || { echo "test-deps: /usr/bin/chromium missing after install" >&2; exit 1; }
[[ -x /usr/sbin/postfix ]] || { echo "test-deps: /usr/sbin/postfix missing after install" >&2; exit 1; }
