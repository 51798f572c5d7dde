#!/usr/bin/env python3
"""ack_sink.py — the outbound relay postdesk sends to during the benchmark.

Usage: ack_sink.py PORT LOGFILE
Accepts every message on 127.0.0.1:PORT (aiosmtpd), discards the body and appends one
JSON line per message to LOGFILE:
  {"t": arrival time (time.time(), seconds), "rcpt": [...], "irt": In-Reply-To,
   "refs": References, "subject": Subject}
so bench/latency.py can match each acknowledgement to the message that caused it
(In-Reply-To/References = the Message-ID we sent, or the recipient = our unique sender).
The log is flushed at least every 0.2 s and on SIGTERM.
"""
import asyncio
import json
import signal
import sys
import time
from email.parser import BytesHeaderParser
from email.policy import compat32

from aiosmtpd.controller import Controller

PORT = int(sys.argv[1])
LOG = open(sys.argv[2], "a", buffering=1 << 16)
parser = BytesHeaderParser(policy=compat32)


class Handler:
    count = 0

    async def handle_DATA(self, server, session, envelope):
        t = time.time()
        data = envelope.original_content or envelope.content or b""
        if isinstance(data, str):
            data = data.encode("utf-8", "replace")
        end = data.find(b"\r\n\r\n")
        if end < 0:
            end = data.find(b"\n\n")
        head = parser.parsebytes(data[: end if end >= 0 else len(data)])
        rec = {
            "t": t,
            "rcpt": list(envelope.rcpt_tos),
            "irt": " ".join(str(head.get("In-Reply-To", "")).split()),
            "refs": " ".join(str(head.get("References", "")).split()),
            "subject": str(head.get("Subject", ""))[:200],
        }
        LOG.write(json.dumps(rec) + "\n")
        Handler.count += 1
        return "250 OK"


async def main():
    ctl = Controller(Handler(), hostname="127.0.0.1", port=PORT, decode_data=False,
                     data_size_limit=60 * 1024 * 1024)
    ctl.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    print(f"ack_sink listening on 127.0.0.1:{PORT}", flush=True)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 0.2)
        except asyncio.TimeoutError:
            pass
        LOG.flush()
    ctl.stop()
    LOG.flush()
    LOG.close()


asyncio.run(main())
