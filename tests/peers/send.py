#!/usr/bin/env python3
"""send.py - send one raw message over SMTP with Python's smtplib (a real client).

Usage:
  send.py HOST PORT MAIL_FROM RCPT [RCPT...] < message     (MAIL_FROM "" means <>)
  send.py --batch HOST PORT < jobs                          (one JSON job per line:
        {"from": "...", "rcpts": ["..."], "file": "/path"}; one connection per job)

The raw bytes go through smtp.sendmail() unchanged (smtplib dot-stuffs and turns bare
LF into CRLF; send CRLF text to get byte-exact storage).
Prints one JSON line per message:
  {"code": 250, "text": "2.0.0 Ok: queued as 17", "stage": "data", "refused": {}}
On failure "code" is the reply code at the stage that failed (mail/rcpt/data/connect),
or null when the connection itself failed.
"""
import json
import smtplib
import sys


class Client(smtplib.SMTP):
    last_data = None

    def data(self, msg):
        reply = super().data(msg)
        self.last_data = reply
        return reply


def text(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


def send(host, port, mail_from, rcpts, raw):
    result = {"code": None, "text": "", "stage": "connect", "refused": {}}
    try:
        with Client(host, int(port), timeout=60) as smtp:
            result["stage"] = "ehlo"
            smtp.ehlo_or_helo_if_needed()
            result["stage"] = "mail"
            refused = smtp.sendmail(mail_from, rcpts, raw)
            code, msg = smtp.last_data
            result.update(code=code, text=text(msg), stage="data",
                          refused={k: [c, text(m)] for k, (c, m) in refused.items()})
    except smtplib.SMTPRecipientsRefused as e:
        refused = {k: [c, text(m)] for k, (c, m) in e.recipients.items()}
        first = next(iter(refused.values()), [None, ""])
        result.update(code=first[0], text=first[1], stage="rcpt", refused=refused)
    except smtplib.SMTPSenderRefused as e:
        result.update(code=e.smtp_code, text=text(e.smtp_error), stage="mail")
    except smtplib.SMTPDataError as e:
        result.update(code=e.smtp_code, text=text(e.smtp_error), stage="data")
    except smtplib.SMTPResponseException as e:
        result.update(code=e.smtp_code, text=text(e.smtp_error))
    except (OSError, smtplib.SMTPException) as e:
        result.update(code=None, text=f"{type(e).__name__}: {e}")
    return result


def main():
    args = sys.argv[1:]
    if args and args[0] == "--batch":
        host, port = args[1], args[2]
        for line in sys.stdin:
            if not line.strip():
                continue
            job = json.loads(line)
            with open(job["file"], "rb") as f:
                raw = f.read()
            r = send(host, port, job["from"], job["rcpts"], raw)
            r["file"] = job["file"]
            print(json.dumps(r), flush=True)
        return 0
    if len(args) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    host, port, mail_from, rcpts = args[0], args[1], args[2], args[3:]
    raw = sys.stdin.buffer.read()
    print(json.dumps(send(host, port, mail_from, rcpts, raw)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
