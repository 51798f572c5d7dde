#!/usr/bin/env bash
# build.sh — makes the Debian package of postdesk with dpkg-deb alone (no extra tools).
#
#   packaging/deb/build.sh [BINARY] [OUTDIR]
#
# BINARY: the postdesk binary to package (default: target/release/postdesk, built with
# `cargo build --release --locked` when missing). OUTDIR: where the .deb goes (default:
# target/debian). Prints the path of the package. DEB_COMPRESS=gzip|none builds faster.
#
# What it installs: /usr/bin/postdesk; the hardened unit (systemd/postdesk.service, with
# ExecStart at /usr/bin); a commented /etc/postdesk/config.toml (the shipped config with
# Debian's paths: data in /var/lib/postdesk, rules in /etc/postdesk/rules, the API token as
# the systemd credential `api-token`) and the example rules, all conffiles; README and
# copyright under /usr/share/doc/postdesk. It enables and starts nothing: the postmaster
# configures first, then `systemctl enable --now postdesk`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${1:-$ROOT/target/release/postdesk}
OUT=${2:-$ROOT/target/debian}

if [[ ! -x $BIN ]]; then
  (cd "$ROOT" && cargo build --release --locked)
fi
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)
ARCH=$(dpkg --print-architecture)
# The newest glibc symbol version the binary needs: the one dependency of a Rust binary.
GLIBC=$(grep -aoE 'GLIBC_2\.[0-9]+' "$BIN" | sort -uV | tail -1 | sed 's/GLIBC_//')
GLIBC=${GLIBC:-2.31}

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
PKG=$STAGE/postdesk
install -d "$PKG/DEBIAN" "$PKG/usr/bin" "$PKG/lib/systemd/system" \
  "$PKG/etc/postdesk" "$PKG/usr/share/doc/postdesk"
install -m 0755 "$BIN" "$PKG/usr/bin/postdesk"
# Symbols are not needed to run it; backtraces keep function names through the symbol table
# of the release build only if you package an unstripped binary yourself.
command -v strip >/dev/null && strip --strip-debug "$PKG/usr/bin/postdesk"
sed 's#/usr/local/bin/postdesk#/usr/bin/postdesk#g' "$ROOT/systemd/postdesk.service" \
  > "$PKG/lib/systemd/system/postdesk.service"
install -m 0644 "$ROOT/systemd/postdesk.socket" "$PKG/lib/systemd/system/postdesk.socket"
chmod 0644 "$PKG/lib/systemd/system/postdesk.service"

# The shipped config with the paths and secrets of a system service.
{
  echo "# postdesk configuration, installed by the Debian package."
  echo "# Nothing runs until you enable the service: set [server] hostname, [[mailbox]],"
  echo "# [outbound] relay and from; create the API token"
  echo "#   install -d -m 0700 /etc/postdesk/credentials"
  echo "#   openssl rand -hex 32 > /etc/postdesk/credentials/api-token"
  echo "# check with \`postdesk check -c /etc/postdesk/config.toml\`, then"
  echo "#   systemctl enable --now postdesk"
  echo "# See /usr/share/doc/postdesk/README.md (Deployment)."
  echo
  sed -e '1,/^$/d' \
    -e 's#^data_dir = "data" *#data_dir = "/var/lib/postdesk"   #' \
    -e 's#^rules_dir = "rules" *#rules_dir = "/etc/postdesk/rules" #' \
    -e 's#^relay = "maildir:data/outbox"#relay = "maildir:/var/lib/postdesk/outbox"#' \
    -e 's#^api_token = "change-me" *#api_token_file = "credential:api-token" #' \
    "$ROOT/config.toml"
} > "$PKG/etc/postdesk/config.toml"
cp -r "$ROOT/rules" "$PKG/etc/postdesk/rules"
cp -r "$ROOT/kb" "$PKG/etc/postdesk/kb"
find "$PKG/etc/postdesk" -type d -exec chmod 0755 {} +
find "$PKG/etc/postdesk" -type f -exec chmod 0644 {} +

install -m 0644 "$ROOT/README.md" "$ROOT/ARCHITECTURE.md" "$PKG/usr/share/doc/postdesk/"
cat > "$PKG/usr/share/doc/postdesk/copyright" <<COPY
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: postdesk

Files: *
License: MIT or Apache-2.0
 postdesk is dual-licensed under the MIT licence and the Apache License 2.0,
 at your option. On Debian systems the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
COPY

(cd "$PKG" && find etc -type f | sed 's#^#/#' | sort) > "$PKG/DEBIAN/conffiles"
SIZE=$(du -sk --exclude=DEBIAN "$PKG" | cut -f1)
cat > "$PKG/DEBIAN/control" <<CONTROL
Package: postdesk
Version: $VERSION-1
Architecture: $ARCH
Maintainer: postdesk developers <postdesk@example.org>
Installed-Size: $SIZE
Depends: libc6 (>= $GLIBC)
Recommends: systemd
Suggests: postfix
Section: mail
Priority: optional
Homepage: https://github.com/postdesk/postdesk
Description: email-native help desk
 postdesk turns support mail into tracked tickets: an SMTP endpoint and IMAP
 polling for intake, threading, routing and SLA rules, agents working from
 their own mail client or a small web view, and a durable outbound queue.
 One binary, one config file, an embedded store.
CONTROL

cat > "$PKG/DEBIAN/postinst" <<'SCRIPT'
#!/bin/sh
# Starts nothing: postdesk needs its configuration first.
set -e
if [ "$1" = configure ]; then
  if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null 2>&1 || true
  fi
  echo "postdesk is installed and not started: edit /etc/postdesk/config.toml," >&2
  echo "create /etc/postdesk/credentials/api-token, then: systemctl enable --now postdesk" >&2
fi
exit 0
SCRIPT
cat > "$PKG/DEBIAN/prerm" <<'SCRIPT'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
  systemctl stop postdesk.service >/dev/null 2>&1 || true
fi
exit 0
SCRIPT
cat > "$PKG/DEBIAN/postrm" <<'SCRIPT'
#!/bin/sh
# Purging removes the configuration dpkg knows of; the tickets in /var/lib/postdesk stay
# (a help desk's history is not removed by a package command: delete it yourself).
set -e
if [ "$1" = purge ]; then
  rm -rf "${DPKG_ROOT:-}/etc/postdesk/credentials"
  if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null 2>&1 || true
  fi
fi
exit 0
SCRIPT
chmod 0755 "$PKG/DEBIAN/postinst" "$PKG/DEBIAN/prerm" "$PKG/DEBIAN/postrm"

mkdir -p "$OUT"
DEB="$OUT/postdesk_${VERSION}-1_${ARCH}.deb"
dpkg-deb --root-owner-group "-Z${DEB_COMPRESS:-xz}" --build "$PKG" "$DEB" >/dev/null
echo "$DEB"
