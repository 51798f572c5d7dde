#!/usr/bin/env python3
"""sender_auth.py - what sender verification (SPF, DKIM, DMARC on SMTP intake) costs per
message, against a private dnsmasq on loopback (nothing leaves the machine).

Usage (from the repository, with the test venv from scripts/test-deps.sh for dkimpy):
  .venv-test/bin/python bench/sender_auth.py [POSTDESK_BIN] [COUNT]
      POSTDESK_BIN defaults to target/release/postdesk (else target/debug/postdesk),
      COUNT to 300 messages.

Starts dnsmasq with an SPF, a DKIM key (from `postdesk dkim-keygen`) and a DMARC p=reject
record, then postdesk twice (auth.verify = true, then false) and sends COUNT dkimpy-signed
4 KiB messages over one SMTP connection to each. Prints the daemon's own time per
verification (its `sender verified` debug lines: all lookups and the RSA-2048 check;
dnsmasq's records have TTL 0, so every message's lookups reach it) and the client's time
per SMTP transaction with and without verification.
"""
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time

import dkim

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what):
    for _ in range(300):
        if proc.poll() is not None:
            sys.exit(f"{what} exited")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"{what} did not listen on {port}")


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, max(0, round(p / 100 * len(v)) - 1))]


def run(binary, tmp, dns_port, verify, messages):
    smtp, web = free_port(), free_port()
    data = os.path.join(tmp, f"data-{verify}")
    cfg = os.path.join(tmp, f"config-{verify}.toml")
    with open(cfg, "w") as f:
        f.write(f"""[server]
hostname = "support.example.test"
data_dir = "{data}"
rules_dir = "{ROOT}/rules"
[smtp]
listen = ["127.0.0.1:{smtp}"]
[[mailbox]]
address = "support@example.test"
[outbound]
relay = "maildir:{data}/outbox"
from = "Example Support <support@example.test>"
[web]
listen = "127.0.0.1:{web}"
api_token = "bench"
[acknowledgement]
enabled = false
[agents]
notify = false
[auth]
verify = {"true" if verify else "false"}
dns_server = "127.0.0.1:{dns_port}"
""")
    log = open(os.path.join(tmp, f"postdesk-{verify}.log"), "w")
    env = dict(os.environ, POSTDESK_LOG="warn,postdesk::sender_auth=debug")
    proc = subprocess.Popen([binary, "serve", "-c", cfg], stdout=log, stderr=log, env=env)
    try:
        wait_port(smtp, proc, "postdesk")
        took = []
        with smtplib.SMTP("127.0.0.1", smtp, local_hostname="mail.signed.example") as s:
            for m in messages:
                t = time.perf_counter()
                s.sendmail("carla@signed.example", ["support@example.test"], m)
                took.append(time.perf_counter() - t)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        log.close()
    text = re.sub(r"\x1b\[[0-9;]*m", "", open(log.name).read())  # tracing's colours
    micros = [int(x) for x in re.findall(r"sender verified.*?micros=(\d+)", text)]
    return took, micros


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else None
    if binary is None:
        for b in ("target/release/postdesk", "target/debug/postdesk"):
            if os.path.exists(os.path.join(ROOT, b)):
                binary = os.path.join(ROOT, b)
                break
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    tmp = tempfile.mkdtemp(prefix="pd-sender-auth-")
    key = os.path.join(tmp, "s1.pem")
    out = subprocess.run(
        [binary, "dkim-keygen", "--selector", "s1", "--domain", "signed.example",
         "--key-file", key], capture_output=True, text=True, check=True).stdout
    zone = next(l for l in out.splitlines() if l.startswith("s1._domainkey"))
    txt = "".join(zone.split('"')[1::2])
    chunks = [txt[i:i + 250] for i in range(0, len(txt), 250)]
    dns_port = free_port()
    dns = subprocess.Popen(
        ["dnsmasq", "--keep-in-foreground", "--no-daemon", "--conf-file=/dev/null",
         "--no-resolv", "--no-hosts", "--no-poll", "--bind-interfaces",
         "--listen-address=127.0.0.1", "--user=", "--pid-file=", f"--port={dns_port}",
         "--local=/example/", "--local=/test/",
         "--txt-record=s1._domainkey.signed.example," + ",".join(chunks),
         "--txt-record=signed.example,v=spf1 ip4:127.0.0.1 -all",
         "--txt-record=_dmarc.signed.example,v=DMARC1; p=reject"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        body = ("The printer on the third floor is on fire again. " * 80 + "\r\n")[:4000]
        messages = []
        for i in range(count):
            raw = (f"From: Carla <carla@signed.example>\r\nTo: support@example.test\r\n"
                   f"Subject: Printer {i}\r\nMessage-ID: <bench-{i}@signed.example>\r\n"
                   f"Date: Thu, 03 Dec 2026 10:00:00 +0000\r\n\r\n{body}\r\n").encode()
            sig = dkim.sign(raw, b"s1", b"signed.example", open(key, "rb").read(),
                            canonicalize=(b"relaxed", b"relaxed"),
                            include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
            messages.append(sig + raw)
        on, micros = run(binary, tmp, dns_port, True, messages)
        off, _ = run(binary, tmp, dns_port, False, messages)
    finally:
        dns.send_signal(signal.SIGTERM)
        dns.wait(10)
    print(f"postdesk: {binary}; {count} signed 4 KiB messages, one SMTP connection each run")
    if micros:
        warm = [m / 1000 for m in micros[1:]]
        print(f"verification (daemon): first {micros[0] / 1000:.2f} ms; then "
              f"p50 {pct(warm, 50):.2f} ms, p99 {pct(warm, 99):.2f} ms")
    for name, t in (("verify on ", on), ("verify off", off)):
        ms = [x * 1000 for x in t[1:]]
        print(f"SMTP transaction, {name}: p50 {pct(ms, 50):.2f} ms, p99 {pct(ms, 99):.2f} ms")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
