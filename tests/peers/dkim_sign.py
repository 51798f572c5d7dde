#!/usr/bin/env python3
"""dkim_sign.py - DKIM-sign a message with dkimpy (an independent DKIM implementation),
as a customer's or an agent's mail server would before sending it to postdesk.

Usage:
  dkim_sign.py KEY_FILE SELECTOR DOMAIN < message > signed-message
      KEY_FILE: PEM private key (RSA, PKCS#8 or PKCS#1). Signs relaxed/relaxed over
      From, To, Subject, Date, Message-ID, In-Reply-To and References.

Writes the message with its DKIM-Signature header on top; exits 1 when signing fails.
"""
import sys

import dkim

HEADERS = [b"from", b"to", b"subject", b"date", b"message-id", b"in-reply-to", b"references"]


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    key_file, selector, domain = sys.argv[1:]
    with open(key_file, "rb") as f:
        key = f.read()
    message = sys.stdin.buffer.read()
    try:
        sig = dkim.sign(
            message,
            selector.encode(),
            domain.encode(),
            key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=HEADERS,
        )
    except dkim.DKIMException as e:
        print(f"dkim_sign.py: {e}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(sig.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
