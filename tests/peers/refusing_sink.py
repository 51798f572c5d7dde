"""aiosmtpd's Mailbox handler that refuses some recipients at RCPT with 550, and can hold its
answer to DATA.

Run as `python -m aiosmtpd -c refusing_sink.RefusingMailbox MAILDIR REFUSE_FILE` (with this
directory on PYTHONPATH). REFUSE_FILE lists addresses, one a line; it is read at every RCPT, so
a test can start refusing an address while the sink runs. A missing file refuses nothing.
While REFUSE_FILE.hold exists, a message's DATA is answered only once it is removed;
REFUSE_FILE.holding exists while a message waits so.
"""

import asyncio
import os

from aiosmtpd.handlers import Mailbox


class RefusingMailbox(Mailbox):
    def __init__(self, mail_dir, refuse_file):
        super().__init__(mail_dir)
        self.refuse_file = refuse_file

    def refused(self):
        try:
            with open(self.refuse_file, encoding="utf-8") as f:
                return {line.strip().lower() for line in f if line.strip()}
        except FileNotFoundError:
            return set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.refused():
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        hold = self.refuse_file + ".hold"
        holding = self.refuse_file + ".holding"
        if os.path.exists(hold):
            open(holding, "w").close()
            while os.path.exists(hold):
                await asyncio.sleep(0.05)
            os.remove(holding)
        return await super().handle_DATA(server, session, envelope)

    @classmethod
    def from_cli(cls, parser, *args):
        if len(args) != 2:
            parser.error("usage: MAILDIR REFUSE_FILE")
        return cls(args[0], args[1])
