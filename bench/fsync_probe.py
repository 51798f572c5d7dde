#!/usr/bin/env python3
"""fsync_probe.py — durable-write rate of a filesystem: append a block + fdatasync in a loop.

Usage: fsync_probe.py DIR [SECONDS] [BLOCK_BYTES]
Prints one line:  ops_per_s=N p50_ms=X p99_ms=Y
This is the ceiling for "persist each message before 250" without group commit.
The VM disk's rate varies up to 30x within minutes, so run.sh probes before and after.
"""
import os
import sys
import tempfile
import time

d = sys.argv[1]
secs = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
bs = int(sys.argv[3]) if len(sys.argv) > 3 else 4096
os.makedirs(d, exist_ok=True)
fd, path = tempfile.mkstemp(prefix="fsync-probe-", dir=d)
buf = os.urandom(bs)
lat = []
try:
    os.close(fd)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    end = time.perf_counter() + secs
    while True:
        t = time.perf_counter()
        if t >= end:
            break
        os.write(fd, buf)
        os.fdatasync(fd)
        lat.append(time.perf_counter() - t)
finally:
    os.close(fd)
    os.unlink(path)
lat.sort()
n = len(lat)
tot = sum(lat)
print(f"ops_per_s={n / tot:.0f} p50_ms={1000 * lat[n // 2]:.3f} p99_ms={1000 * lat[min(n - 1, int(n * 0.99))]:.3f}")
