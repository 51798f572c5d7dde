#!/usr/bin/env python3
"""OAuth2 token introspection endpoint (RFC 7662) for Dovecot's oauth2 passdb in tests.

Usage: oauth2_introspect.py PORT TOKEN USER
POST /introspect with token=TOKEN answers {"active": true, "username": USER};
any other token answers {"active": false}. Every request is logged to stdout.
"""
import json, sys, urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer

port, good, user = int(sys.argv[1]), sys.argv[2], sys.argv[3]


class H(BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(n).decode())
        token = (form.get("token") or [""])[0]
        if not token:
            auth = self.headers.get("Authorization", "")
            token = auth[7:] if auth.startswith("Bearer ") else ""
        body = {"active": True, "username": user} if token == good else {"active": False}
        print("introspect", token == good, flush=True)
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST

    def log_message(self, *a):
        pass


print("ready", flush=True)
HTTPServer(("127.0.0.1", port), H).serve_forever()
