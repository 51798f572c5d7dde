#!/usr/bin/env python3
"""dump_acks.py — turn Postfix smtp-sink's message dumps into ack_sink.py's log format.

Usage: dump_acks.py DUMP_DIR OUT_LOG
With BENCH_SINK=postfix the benchmark's relay is Postfix's smtp-sink (C) started with
-d DUMP_DIR/...: one file per message, closed when the message is accepted. Its
modification time is the arrival time. Writes one JSON line per message,
{"t", "rcpt", "irt", "refs", "subject"}, so e2e_match.py reads it like ack_sink.py's log.
"""
import json
import os
import sys
from email.parser import BytesHeaderParser
from email.policy import compat32

dump_dir, out = sys.argv[1], sys.argv[2]
parser = BytesHeaderParser(policy=compat32)
with open(out, "w") as log:
    for name in sorted(os.listdir(dump_dir)):
        path = os.path.join(dump_dir, name)
        if not os.path.isfile(path):
            continue
        t = os.stat(path).st_mtime_ns / 1e9
        with open(path, "rb") as f:
            head = parser.parse(f)
        rcpt = [r.strip().strip("<>") for r in head.get_all("X-Rcpt-Args", [])]
        log.write(json.dumps({
            "t": t,
            "rcpt": rcpt,
            "irt": str(head.get("In-Reply-To", "")),
            "refs": str(head.get("References", "")),
            "subject": str(head.get("Subject", "")),
        }) + "\n")
