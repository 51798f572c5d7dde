"""An MTA-STS policy host for the direct-delivery tests: HTTPS on one loopback address,
answering GET /.well-known/mta-sts.txt with the given file as text/plain (404 otherwise).
Each request is appended to FILE.log.

    python https_policy.py --listen 127.0.0.2 --port P --cert C --key K --policy FILE
"""

import argparse
import http.server
import ssl


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--policy", required=True)
    args = p.parse_args()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            with open(args.policy + ".log", "a", encoding="utf-8") as f:
                f.write(f"GET {self.path} Host={self.headers.get('Host')}\n")
            if self.path != "/.well-known/mta-sts.txt":
                self.send_error(404)
                return
            with open(args.policy, "rb") as f:
                body = f.read()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    server = http.server.HTTPServer((args.listen, args.port), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
