#!/usr/bin/env python3
"""flood.py - many concurrent smtplib clients sending distinct messages (crash test load).

Usage: flood.py HOST PORT COUNT CONNECTIONS OUTFILE [TAG]

Sends COUNT messages, each with a unique Message-ID <flood-TAG-I@customer.example>, over
CONNECTIONS parallel SMTP connections (each reused for many messages, reconnecting after an
error). Appends one JSON line per message to OUTFILE as soon as its outcome is known:
  {"i": 5, "message_id": "<...>", "code": 250, "seq": 17, "text": "..."}
  {"i": 6, "message_id": "<...>", "code": null, "seq": null, "text": "ConnectionRefusedError..."}
Failures (daemon killed, connection refused) are recorded and the script goes on; it never
retries a message, so every seq listed got a 250 for exactly one message.
Exit status 0 when every message was attempted.
"""
import json
import re
import smtplib
import sys
import threading

host, port, count, conns, outfile = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
tag = sys.argv[6] if len(sys.argv) > 6 else "run"

lock = threading.Lock()
next_i = 0
out = open(outfile, "a", buffering=1)
QUEUED = re.compile(r"queued as (\d+)")


class Client(smtplib.SMTP):
    last_data = None

    def data(self, msg):
        reply = super().data(msg)
        self.last_data = reply
        return reply


def take():
    global next_i
    with lock:
        if next_i >= count:
            return None
        i = next_i
        next_i += 1
        return i


def record(rec):
    with lock:
        out.write(json.dumps(rec) + "\n")


def message(i):
    mid = f"<flood-{tag}-{i}@customer.example>"
    sender = f"customer{i % 50}@flood.example"
    body = (
        f"From: Flood Customer {i % 50} <{sender}>\r\n"
        f"To: support@example.test\r\n"
        f"Subject: flood message {i}\r\n"
        f"Message-ID: {mid}\r\n"
        f"Date: Thu, 26 Nov 2026 12:00:00 +0000\r\n"
        f"\r\n"
        f"Hello, this is flood message {i}.\r\n" + ("Some padding text for the body.\r\n" * 20)
    )
    return mid, sender, body.encode()


def worker():
    smtp = None
    while True:
        i = take()
        if i is None:
            break
        mid, sender, raw = message(i)
        rec = {"i": i, "message_id": mid, "code": None, "seq": None, "text": ""}
        try:
            if smtp is None:
                smtp = Client(host, port, timeout=30)
            smtp.sendmail(sender, ["support@example.test"], raw)
            code, msg = smtp.last_data
            msg = msg.decode("utf-8", "replace")
            m = QUEUED.search(msg)
            rec.update(code=code, text=msg, seq=int(m.group(1)) if m else None)
        except smtplib.SMTPResponseException as e:
            rec.update(code=e.smtp_code, text=str(e.smtp_error))
            smtp = close(smtp)
        except smtplib.SMTPRecipientsRefused as e:
            rec.update(text=f"recipients refused: {e.recipients}")
            smtp = close(smtp)
        except (OSError, smtplib.SMTPException) as e:
            rec.update(text=f"{type(e).__name__}: {e}")
            smtp = close(smtp)
        record(rec)
    close(smtp)


def close(smtp):
    if smtp is not None:
        try:
            smtp.close()
        except Exception:
            pass
    return None


threads = [threading.Thread(target=worker) for _ in range(conns)]
for t in threads:
    t.start()
for t in threads:
    t.join()
out.close()
