#!/usr/bin/env python3
"""smtp_client.py — asyncio SMTP load client that measures accept latency per message.

Usage: smtp_client.py --port P [--sessions N] [--count M] [--size BYTES] [--rate R]
                      [--tag TAG] [--log FILE]
  --sessions  concurrent SMTP sessions (each reuses its connection for many messages)
  --count     messages in total
  --size      approximate message size in bytes (headers + filler body)
  --rate      offered load in messages/s over all sessions (0 = as fast as possible);
              message i is due at start + i/rate, a session sends it when it is free and due
  --tag       goes into sender addresses and Message-IDs, unique per run
  --log       JSON lines, one per accepted message: {"mid","from","t250","lat"}
  --timeout   stop starting new messages after this many seconds (default 300); a reply
              that takes over 30 s counts as an error; after more than max(20, count/10)
              errors the run stops early
Every message has its own envelope sender c-TAG-I@example.org and Message-ID
<bench-TAG-I@example.org>, so acknowledgements can be matched and per-address ack limits
never apply. Accept latency = time from writing the final "." to reading the 250.
Prints one JSON object: count, ok, errors, wall_s, rate, p50_ms, p99_ms, max_ms.
"""
import argparse
import asyncio
import json
import time


def pct(sorted_vals, p):
    if not sorted_vals:
        return None
    return sorted_vals[min(len(sorted_vals) - 1, int(len(sorted_vals) * p))]


def make_message(tag, i, size):
    mid = f"<bench-{tag}-{i}@example.org>"
    sender = f"c-{tag}-{i}@example.org"
    head = (
        f"From: Bench Customer {i} <{sender}>\r\n"
        f"To: support@example.test\r\n"
        f"Subject: bench {tag} message {i}\r\n"
        f"Message-ID: {mid}\r\n"
        f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\r\n"
        f"MIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset=us-ascii\r\n"
        f"\r\n"
        f"Hello, this is benchmark message {i}. Please help.\r\n"
    ).encode()
    line = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
    need = max(0, size - len(head))
    body = line * (need // len(line)) + line[: need % len(line)].rstrip(b"\r\n")
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"
    return mid, sender, head + body + b".\r\n"


REPLY_TIMEOUT = 30.0


async def reply(reader):
    lines = []
    while True:
        line = await asyncio.wait_for(reader.readline(), REPLY_TIMEOUT)
        if not line:
            raise ConnectionError("connection closed")
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3]), b"".join(lines)


class Run:
    def __init__(self, a):
        self.a = a
        self.next = 0
        self.lat = []
        self.errors = 0
        self.err_samples = []
        self.log = open(a.log, "w") if a.log else None
        self.start = 0.0

    def take(self):
        if self.next >= self.a.count:
            return None
        if self.errors > max(20, self.a.count // 10):
            return None  # the server is failing: stop instead of timing out message by message
        if time.perf_counter() - self.start > self.a.timeout:
            return None
        i = self.next
        self.next += 1
        return i

    def error(self, what):
        self.errors += 1
        if len(self.err_samples) < 5:
            self.err_samples.append(what)

    async def session(self):
        a = self.a
        reader = writer = None
        i = None
        while True:
            if i is None:
                i = self.take()
                if i is None:
                    break
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", a.port)
                    code, text = await reply(reader)
                    if code != 220:
                        raise ConnectionError(f"greeting {text!r}")
                    writer.write(b"EHLO bench.example.org\r\n")
                    code, text = await reply(reader)
                    if code != 250:
                        raise ConnectionError(f"EHLO {text!r}")
                if a.rate > 0:
                    due = self.start + i / a.rate
                    delay = due - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                mid, sender, data = make_message(a.tag, i, a.size)
                writer.write(f"MAIL FROM:<{sender}>\r\n".encode())
                code, text = await reply(reader)
                if code != 250:
                    raise ValueError(f"MAIL {text!r}")
                writer.write(b"RCPT TO:<support@example.test>\r\n")
                code, text = await reply(reader)
                if code != 250:
                    raise ValueError(f"RCPT {text!r}")
                writer.write(b"DATA\r\n")
                code, text = await reply(reader)
                if code != 354:
                    raise ValueError(f"DATA {text!r}")
                writer.write(data[:-3])
                await writer.drain()
                writer.write(b".\r\n")
                t0 = time.perf_counter()
                await writer.drain()
                code, text = await reply(reader)
                t1 = time.perf_counter()
                wall = time.time()
                if code != 250:
                    raise ValueError(f"end of data {text!r}")
                self.lat.append(t1 - t0)
                if self.log:
                    self.log.write(json.dumps({"mid": mid, "from": sender, "t250": wall,
                                               "lat": t1 - t0}) + "\n")
                i = None
            except ValueError as e:  # rejected: count it, reset, go on with the next message
                self.error(str(e))
                i = None
                try:
                    writer.write(b"RSET\r\n")
                    await reply(reader)
                except Exception:
                    writer = None
            except (OSError, ConnectionError, asyncio.IncompleteReadError) as e:
                self.error(f"{type(e).__name__}: {e}")
                i = None
                if writer is not None:
                    writer.close()
                writer = None
                await asyncio.sleep(0.05)
        if writer is not None:
            try:
                writer.write(b"QUIT\r\n")
                await asyncio.wait_for(reply(reader), 5)
            except Exception:
                pass
            writer.close()

    async def main(self):
        self.start = time.perf_counter()
        await asyncio.gather(*(self.session() for _ in range(self.a.sessions)))
        wall = time.perf_counter() - self.start
        if self.log:
            self.log.close()
        lat = sorted(self.lat)
        ms = lambda v: None if v is None else round(v * 1000, 3)
        return {
            "count": self.a.count, "ok": len(lat), "errors": self.errors,
            "error_samples": self.err_samples, "wall_s": round(wall, 3),
            "rate": round(len(lat) / wall, 1) if wall > 0 else None,
            "p50_ms": ms(pct(lat, 0.50)), "p99_ms": ms(pct(lat, 0.99)),
            "max_ms": ms(lat[-1] if lat else None),
        }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--sessions", type=int, default=1)
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--rate", type=float, default=0.0)
    p.add_argument("--tag", default=str(int(time.time())))
    p.add_argument("--log")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="stop starting new messages after this many seconds")
    a = p.parse_args()
    print(json.dumps(asyncio.run(Run(a).main())))


if __name__ == "__main__":
    main()
