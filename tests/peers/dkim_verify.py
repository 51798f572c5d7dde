#!/usr/bin/env python3
"""dkim_verify.py - verify the topmost DKIM signature of a message with dkimpy, an
independent DKIM implementation, without DNS: the public keys come from the command line
through dkimpy's dnsfunc hook.

Usage:
  dkim_verify.py MESSAGE_FILE NAME=TXT [NAME=TXT...]
      NAME is SELECTOR._domainkey.DOMAIN, TXT the record's text (the strings joined).

Prints one JSON line: {"verified": true|false, "selector": "...", "domain": "...",
"algorithm": "...", "log": "..."}; exits 0 when verified, 1 when not, 2 on usage errors.
A name the message asks for that is not given answers as an absent record.
"""
import io
import json
import logging
import sys

import dkim


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], "rb") as f:
        message = f.read()
    records = {}
    for arg in sys.argv[2:]:
        name, _, txt = arg.partition("=")
        records[name.rstrip(".").lower()] = txt.encode()
    asked = []

    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        name = name.rstrip(".").lower()
        asked.append(name)
        return records.get(name)

    log = io.StringIO()
    logger = logging.getLogger("dkim_verify")
    logger.addHandler(logging.StreamHandler(log))
    logger.setLevel(logging.DEBUG)
    d = dkim.DKIM(message, logger=logger)
    try:
        ok = d.verify(dnsfunc=dnsfunc)
    except dkim.DKIMException as e:
        log.write(f"DKIMException: {e}\n")
        ok = False
    out = {
        "verified": bool(ok),
        "selector": (d.selector or b"").decode() if isinstance(d.selector, bytes) else d.selector,
        "domain": (d.domain or b"").decode() if isinstance(d.domain, bytes) else d.domain,
        "algorithm": (d.signature_fields.get(b"a", b"").decode()
                      if getattr(d, "signature_fields", None) else None),
        "asked": asked,
        "log": log.getvalue(),
    }
    print(json.dumps(out))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
