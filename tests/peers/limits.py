#!/usr/bin/env python3
"""limits.py - smtplib clients that push postdesk's SMTP limits (tests/limits.rs).

Usage:
  limits.py noop HOST PORT INTERVAL MAX_NOOPS
      EHLO, then NOOP every INTERVAL seconds until a reply other than 250 or MAX_NOOPS.
      Prints {"noops": N, "code": C, "text": T, "closed": bool}; "closed" tells whether the
      server closed the connection after that reply. code is null if every NOOP got 250.
  limits.py concurrent HOST PORT COUNT SIZE
      COUNT sessions at once, each sending a distinct message of about SIZE bytes: all send
      their bodies, wait for each other, then all send the end of data together, so the
      server holds every body at the same moment. One JSON line per session:
      {"i": I, "code": C, "text": T, "closed": bool}; "closed": the session did not answer a
      NOOP after a refused message.
  limits.py retry HOST PORT SIZE I [I...]
      Sends the same messages again, one session after the other (a retrying MTA).
      One JSON line per message as above.
"""
import json
import smtplib
import sys
import threading
import time

SUPPORT = "support@example.test"


def text(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


def message(i, size):
    """A CRLF message of about `size` bytes; no line starts with a dot (no stuffing)."""
    head = (
        f"From: Big Sender {i} <big{i}@customer.example>\r\n"
        f"To: {SUPPORT}\r\n"
        f"Subject: large message {i}\r\n"
        f"Message-ID: <large-{i}@customer.example>\r\n"
        f"Date: Thu, 03 Dec 2026 08:00:00 +0000\r\n"
        f"\r\n"
    ).encode()
    line = (f"message {i} " + "x" * 64 + "\r\n").encode()
    return head + line * max(1, (size - len(head)) // len(line))


def noop(host, port, interval, max_noops):
    smtp = smtplib.SMTP(host, port, timeout=60)
    smtp.ehlo("noop.client.example")
    n = 0
    result = {"noops": 0, "code": None, "text": "", "closed": False}
    while n < max_noops:
        try:
            code, msg = smtp.noop()
        except smtplib.SMTPServerDisconnected as e:
            result.update(code=None, text=f"disconnected: {e}", closed=True)
            break
        n += 1
        if code != 250:
            result.update(code=code, text=text(msg))
            result["closed"] = closed(smtp)
            break
        time.sleep(interval)
    result["noops"] = n
    print(json.dumps(result), flush=True)


def closed(smtp):
    """True when the server has closed the connection (EOF on the next read)."""
    try:
        smtp.sock.settimeout(30)
        return smtp.sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


def still_serving(smtp):
    """True when the session still answers commands (a NOOP gets 250)."""
    try:
        return smtp.noop()[0] == 250
    except (OSError, smtplib.SMTPException):
        return False


def data_in_two_steps(smtp, i, raw, before_end):
    """MAIL, RCPT, DATA, the body; `before_end()`; then the end of data. Returns the reply."""
    smtp.ehlo(f"client{i}.example")
    code, msg = smtp.mail(f"big{i}@customer.example")
    if code != 250:
        return code, msg
    code, msg = smtp.rcpt(SUPPORT)
    if code != 250:
        return code, msg
    smtp.putcmd("data")
    code, msg = smtp.getreply()
    if code != 354:
        return code, msg
    smtp.send(raw)
    before_end()
    smtp.send(b".\r\n")
    return smtp.getreply()


def session(host, port, i, raw, before_end):
    rec = {"i": i, "code": None, "text": "", "closed": False}
    try:
        smtp = smtplib.SMTP(host, port, timeout=120)
        code, msg = data_in_two_steps(smtp, i, raw, before_end)
        rec.update(code=code, text=text(msg))
        if code == 250:
            smtp.quit()
        else:
            rec["closed"] = not still_serving(smtp)
            smtp.close()
    except (OSError, smtplib.SMTPException) as e:
        rec.update(text=f"{type(e).__name__}: {e}")
    return rec


def concurrent(host, port, count, size):
    barrier = threading.Barrier(count, timeout=300)
    results = [None] * count

    def before_end():
        # Every body is on its way; give the server a moment to read them all before
        # anybody ends its message (setup only: nothing is asserted about time).
        barrier.wait()
        time.sleep(1.0)

    def run(i):
        results[i] = session(host, port, i, message(i, size), before_end)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        print(json.dumps(r), flush=True)


def retry(host, port, size, ids):
    for i in ids:
        print(json.dumps(session(host, port, i, message(i, size), lambda: None)), flush=True)


def main():
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "noop":
        noop(host, port, float(sys.argv[4]), int(sys.argv[5]))
    elif mode == "concurrent":
        concurrent(host, port, int(sys.argv[4]), int(sys.argv[5]))
    elif mode == "retry":
        retry(host, port, int(sys.argv[4]), [int(a) for a in sys.argv[5:]])
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
