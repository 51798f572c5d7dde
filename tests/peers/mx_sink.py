"""An MX host for the direct-delivery tests: aiosmtpd on one loopback address, storing each
message it accepts as a file (with X-RcptTo and X-Queue-Id headers), optionally offering
STARTTLS, refusing some recipients for good, or answering MAIL FROM with 451 a number of
times before it accepts (or while the hold file exists).

    python mx_sink.py --listen 127.0.0.2 --port P --dir D [--cert C --key K]
                      [--reject ADDR]... [--tempfail N] [--hold-file F]

Every SMTP session and command is appended to D/log (one line each), so a test can count
connections and see which commands came in clear text or over TLS.
"""

import argparse
import asyncio
import itertools
import os
import ssl

from aiosmtpd.smtp import SMTP


class Handler:
    def __init__(self, args):
        self.dir = args.dir
        self.reject = {a.lower() for a in args.reject}
        self.tempfail = args.tempfail
        self.hold_file = args.hold_file
        self.ids = itertools.count(1)
        self.prefix = "Q" + args.listen.replace(".", "")

    def log(self, line):
        with open(os.path.join(self.dir, "log"), "a", encoding="utf-8") as f:
            f.write(line + "\n")

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        tls = "tls" if session.ssl else "clear"
        self.log(f"EHLO {hostname} {tls}")
        session.host_name = hostname
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        tls = "tls" if session.ssl else "clear"
        self.log(f"MAIL {address} {tls}")
        if self.tempfail > 0:
            self.tempfail -= 1
            return "451 4.3.0 Try again later"
        if self.hold_file and os.path.exists(self.hold_file):
            return "451 4.3.0 Try again later (held)"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.log(f"RCPT {address}")
        if address.lower() in self.reject:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        qid = f"{self.prefix}{next(self.ids):04d}"
        tls = "tls" if session.ssl else "clear"
        self.log(f"DATA {qid} {tls} {','.join(envelope.rcpt_tos)}")
        head = (
            f"X-MailFrom: {envelope.mail_from}\r\n"
            f"X-RcptTo: {', '.join(envelope.rcpt_tos)}\r\n"
            f"X-Queue-Id: {qid}\r\n"
        ).encode()
        tmp = os.path.join(self.dir, "tmp", qid)
        with open(tmp, "wb") as f:
            f.write(head + envelope.original_content)
        os.rename(tmp, os.path.join(self.dir, "new", qid))
        return f"250 2.0.0 Ok: queued as {qid}"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--reject", action="append", default=[])
    p.add_argument("--tempfail", type=int, default=0)
    p.add_argument("--hold-file")
    args = p.parse_args()
    for sub in ("new", "tmp"):
        os.makedirs(os.path.join(args.dir, sub), exist_ok=True)
    context = None
    if args.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
    handler = Handler(args)

    def factory():
        return SMTP(
            handler,
            hostname=f"sink-{args.listen}",
            tls_context=context,
            require_starttls=False,
            decode_data=False,
        )

    async def serve():
        server = await asyncio.get_running_loop().create_server(
            factory, host=args.listen, port=args.port
        )
        handler.log("READY")
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
