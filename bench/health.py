#!/usr/bin/env python3
"""health.py — poll postdesk's GET /api/v1/health (bearer token).

Usage: health.py BASE_URL TOKEN MODE TIMEOUT_S [PID]
  MODE ready  wait until it answers 200 with status "ok"
       drain  wait until spool_pending == 0 and outbound_queued == 0
       once   one request
  PID         give up early when this process has exited
Prints the last health JSON plus "waited_s"; exit 0 on success, 1 on timeout or error,
2 in drain mode when the answer has neither spool_pending nor outbound_queued.
"""
import json
import os
import sys
import time
import urllib.request

base, token, mode, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
pid = int(sys.argv[5]) if len(sys.argv) > 5 else None


def alive(p):
    try:
        with open(f"/proc/{p}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


req = urllib.request.Request(base.rstrip("/") + "/api/v1/health",
                             headers={"Authorization": f"Bearer {token}"})
start = time.monotonic()
last, err = None, None
while True:
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            last = json.loads(r.read())
            err = None
    except Exception as e:  # not up yet, or an error answer
        err = f"{type(e).__name__}: {e}"
    ok = False
    if last is not None and err is None:
        if mode in ("ready", "once"):
            ok = last.get("status") == "ok"
        elif mode == "drain":
            if "spool_pending" not in last and "outbound_queued" not in last:
                print(json.dumps(dict(last, waited_s=0, error="health has no spool_pending/outbound_queued")))
                sys.exit(2)
            ok = last.get("spool_pending", 0) == 0 and last.get("outbound_queued", 0) == 0
    waited = time.monotonic() - start
    if ok or mode == "once" or waited >= timeout or (pid and not alive(pid)):
        out = dict(last or {}, waited_s=round(waited, 3))
        if err:
            out["error"] = err
        print(json.dumps(out))
        sys.exit(0 if ok else 1)
    time.sleep(0.05 if mode == "ready" else 0.2)
