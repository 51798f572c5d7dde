#!/usr/bin/env python3
"""e2e_match.py — end-to-end latency: 250 at the client -> acknowledgement at the sink.

Usage: e2e_match.py SENT_LOG ACK_LOG
  SENT_LOG  JSON lines from smtp_client.py --log   ({"mid","from","t250",...})
  ACK_LOG   JSON lines from ack_sink.py            ({"t","rcpt","irt","refs",...})
An acknowledgement belongs to a sent message when its In-Reply-To or References names the
sent Message-ID, or else when one of its recipients is the message's (unique) sender.
The first acknowledgement per sent message counts.
Prints one JSON object: sent, acked, unmatched_acks, p50_ms, p99_ms, max_ms.
"""
import json
import re
import sys


def lines(path):
    try:
        with open(path) as f:
            for ln in f:
                ln = ln.strip()
                if ln:
                    try:
                        yield json.loads(ln)
                    except json.JSONDecodeError:
                        pass  # a half-written last line
    except FileNotFoundError:
        return


sent = list(lines(sys.argv[1]))
by_mid = {s["mid"].strip("<>").lower(): s for s in sent}
by_from = {s["from"].lower(): s for s in sent}
first = {}
unmatched = 0
for a in lines(sys.argv[2]):
    s = None
    for ref in re.findall(r"<([^>]+)>", a.get("irt", "") + " " + a.get("refs", "")):
        s = by_mid.get(ref.lower())
        if s:
            break
    if s is None:
        for r in a.get("rcpt", []):
            s = by_from.get(r.lower())
            if s:
                break
    if s is None:
        unmatched += 1
        continue
    key = s["mid"]
    if key not in first or a["t"] < first[key]:
        first[key] = a["t"]
lat = sorted(first[s["mid"]] - s["t250"] for s in sent if s["mid"] in first)


def pct(p):
    return round(1000 * lat[min(len(lat) - 1, int(len(lat) * p))], 1) if lat else None


print(json.dumps({"sent": len(sent), "acked": len(lat), "unmatched_acks": unmatched,
                  "p50_ms": pct(0.5), "p99_ms": pct(0.99),
                  "max_ms": round(1000 * lat[-1], 1) if lat else None}))
