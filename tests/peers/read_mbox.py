"""Reads an mboxrd file with Python's mailbox module (a real mbox reader,
the library many tools use) and prints one JSON line per message: the
envelope sender from its From_ line and the message bytes (hex) with
mboxrd's quoting undone (one '>' off every line matching ^>+From )."""
import json
import mailbox
import re
import sys

box = mailbox.mbox(sys.argv[1], create=False)
for msg in box:
    raw = msg.as_bytes()
    # mailbox keeps the quoting as it is in the file; mboxrd's reader removes one level.
    raw = re.sub(rb"(?m)^>(>*From )", rb"\1", raw)
    print(json.dumps({"from_": msg.get_from(), "raw": raw.hex()}))
