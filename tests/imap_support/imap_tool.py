#!/usr/bin/env python3
"""Small IMAP client for postdesk's IMAP tests (stdlib imaplib only).

Usage: imap_tool.py PORT USER PASS CMD [ARGS...]
  append FOLDER FILE...   APPEND each file (creates FOLDER first if needed)
  append-dated FOLDER DATE FILE...
                          the same with an INTERNALDATE ("15-Jan-2018 10:00:00 +0000")
  create FOLDER | delete FOLDER
  list FOLDER             JSON: [{"uid": N, "flags": [...]}, ...] ([] if FOLDER is missing)
  uidvalidity FOLDER      prints the folder's UIDVALIDITY
"""
import imaplib, json, re, sys

port, user, pw, cmd, *args = sys.argv[1:]
m = imaplib.IMAP4("127.0.0.1", int(port))
m.login(user, pw)


def q(folder):
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


if cmd in ("append", "append-dated"):
    folder, files = args[0], args[1:]
    date = None
    if cmd == "append-dated":
        date, files = '"' + files[0] + '"', files[1:]
    if folder.upper() != "INBOX":
        m.create(q(folder))  # NO if it exists: fine
    for f in files:
        with open(f, "rb") as fh:
            typ, data = m.append(q(folder), None, date, fh.read())
            if typ != "OK":
                sys.exit(f"APPEND failed: {data}")
elif cmd == "create":
    typ, data = m.create(q(args[0]))
    if typ != "OK":
        sys.exit(f"CREATE failed: {data}")
elif cmd == "delete":
    typ, data = m.delete(q(args[0]))
    if typ != "OK":
        sys.exit(f"DELETE failed: {data}")
elif cmd == "list":
    typ, _ = m.select(q(args[0]), readonly=True)
    out = []
    if typ == "OK":
        typ, data = m.uid("FETCH", "1:*", "(UID FLAGS)")
        for line in data or []:
            if not line:
                continue
            s = line.decode() if isinstance(line, bytes) else str(line)
            u = re.search(r"UID (\d+)", s)
            f = re.search(r"FLAGS \(([^)]*)\)", s)
            if u:
                out.append({"uid": int(u.group(1)), "flags": f.group(1).split() if f else []})
    print(json.dumps(out))
elif cmd == "uidvalidity":
    typ, data = m.status(q(args[0]), "(UIDVALIDITY)")
    print(re.search(rb"UIDVALIDITY (\d+)", data[0]).group(1).decode())
else:
    sys.exit(f"unknown command {cmd}")
m.logout()
