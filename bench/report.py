#!/usr/bin/env python3
"""report.py — turn bench/out/results.tsv (KEY<TAB>VALUE lines from run.sh) into the table.

Usage: report.py RESULTS_TSV [RESULTS_MD]
Prints the table to stdout and writes the same text to RESULTS_MD when given.
"""
import re
import sys

R = {}
with open(sys.argv[1]) as f:
    for line in f:
        if "\t" in line:
            k, v = line.rstrip("\n").split("\t", 1)
            R[k] = v


def g(k, default="–"):
    return R.get(k, default)


def num(v):
    m = re.match(r"\s*([0-9]+(?:\.[0-9]+)?)", v or "")
    return float(m.group(1)) if m else None


def fsync_rate(label):
    m = re.search(r"ops_per_s=(\d+)", R.get(f"fsync.{label}", ""))
    return int(m.group(1)) if m else None


def size_name(s):
    s = int(s)
    return f"{s // 1024} KiB" if s % 1024 == 0 else f"{s} B"


sizes = sorted({int(k.split(".")[2]) for k in R if k.startswith("tput.")})
sessions = sorted({int(k.split(".")[3]) for k in R if k.startswith("tput.")})
o = []
o.append(f"# postdesk benchmark, {g('machine.date')}")
o.append("")
o.append(f"- machine: {g('machine.nproc')} cores ({g('machine.cpu')}), {g('machine.mem')}, {g('machine.kernel')}")
o.append(f"- commit: {g('machine.commit')}")
o.append(f"- parameters: {g('params')}")
for t in ("postdesk", "postfix", "smtp-sink"):
    if f"{t}.status" in R:
        o.append(f"- **{t}: {R[t + '.status']}**")
o.append(f"- fsync reference (4 KiB append + fdatasync, same filesystem): "
         f"before `{g('fsync.before')}`, after `{g('fsync.after')}`")
o.append("")
o.append("## Durable intake throughput (msg/s = count / wall time, Postfix smtp-source)")
o.append("")
o.append("| size | sessions | postdesk | Postfix smtpd + durable queue | smtp-sink (no persistence) | postdesk / Postfix |")
o.append("|---|---:|---:|---:|---:|---:|")
for s in sizes:
    for n in sessions:
        pd, pf, sk = (g(f"tput.{t}.{s}.{n}") for t in ("postdesk", "postfix", "smtp-sink"))
        ratio = f"{num(pd) / num(pf):.2f}×" if num(pd) and num(pf) else "–"
        o.append(f"| {size_name(s)} | {n} | {pd} | {pf} | {sk} | {ratio} |")
o.append("")
o.append("## Accept latency, 4 KiB (own asyncio client: final \".\" sent → 250 read), p50 / p99")
o.append("")
o.append("| sessions | postdesk | Postfix durable | smtp-sink |")
o.append("|---:|---|---|---|")
for n in (1, 20):
    o.append(f"| {n} | {g(f'lat.postdesk.{n}')} | {g(f'lat.postfix.{n}')} | {g(f'lat.smtp-sink.{n}')} |")
o.append("")
o.append("## End-to-end latency (250 → acknowledgement arrives at the aiosmtpd sink), p50 / p99")
o.append("")
for tag, title in (("e2e", "at about half the max durable intake load (the target's condition)"),
                   ("e2e-sustained", "at half the rate the whole pipeline sustained (intake → processed → acknowledged)")):
    if f"{tag}.offered" in R or f"{tag}.result" in R:
        o.append(f"**{title}**")
        o.append("")
        o.append(f"- offered load: {g(f'{tag}.offered')}")
        o.append(f"- client: {g(f'{tag}.client')}")
        o.append(f"- **end-to-end: {g(f'{tag}.result')}**")
        o.append("")
runs = sorted({k.split(".", 2)[2] for k in R if k.startswith(("drain.postdesk.", "rss.postdesk."))},
              key=lambda t: (not t[0].isdigit(), [int(x) if x.isdigit() else x for x in t.split(".")]))
rss = [num(R[k]) for k in R if k.startswith("rss.postdesk.") and num(R[k])]
if runs:
    o.append("## postdesk per run (fresh data dir each): backlog drain after the client finished, acks, peak RSS")
    o.append("")
    o.append("| run (size.sessions) | drain (spool + outbound empty) | pipeline msg/s (tickets / (intake + drain)) | acks at sink | VmHWM |")
    o.append("|---|---|---:|---:|---:|")
    for t in runs:
        r = num(R.get(f"rss.postdesk.{t}"))
        o.append(f"| {t} | {g(f'drain.postdesk.{t}')} | {g(f'pipe.postdesk.{t}')} | {g(f'acks.postdesk.{t}')} | "
                 f"{f'{r / 1024:.1f} MiB' if r else '–'} |")
    o.append("")
    if rss:
        o.append(f"Peak RSS of postdesk over all runs: **{max(rss) / 1024:.1f} MiB**")
        o.append("")

o.append("## Targets")
o.append("")
o.append("| target | measured | verdict |")
o.append("|---|---|---|")


def verdict(ok):
    return "–" if ok is None else ("PASS" if ok else "FAIL")


for s in sizes:
    for n in sessions:
        pd, pf = num(R.get(f"tput.postdesk.{s}.{n}")), num(R.get(f"tput.postfix.{s}.{n}"))
        o.append(f"| durable intake ≥ Postfix durable ({size_name(s)}, {n} session{'s' if n > 1 else ''}) | "
                 f"{pd if pd is not None else '–'} vs {pf if pf is not None else '–'} msg/s | "
                 f"{verdict(None if pd is None or pf is None else pd >= pf)} |")
fb, fa = fsync_rate("before"), fsync_rate("after")
pd20 = num(R.get("tput.postdesk.4096.20"))
fmax = max([x for x in (fb, fa) if x] or [0]) or None
o.append(f"| 4 KiB × 20 sessions ≥ 5 × single-fsync rate (the higher of before {fb} / after {fa}) | "
         f"{pd20 if pd20 is not None else '–'} msg/s vs 5 × {fmax} = {5 * fmax if fmax else '–'} | "
         f"{verdict(None if pd20 is None or not fmax else pd20 >= 5 * fmax)} |")
p99 = num(R.get("e2e.p99"))
p99s = num(R.get("e2e-sustained.p99"))
o.append(f"| end-to-end p99 < 50 ms at half max load | {p99 if p99 is not None else '–'} ms | "
         f"{verdict(None if p99 is None else p99 < 50)} |")
if p99s is not None:
    o.append(f"| (for comparison) end-to-end p99 at half the sustained pipeline rate | {p99s} ms | "
             f"{verdict(p99s < 50)} |")
o.append("")
text = "\n".join(o)
print(text)
if len(sys.argv) > 2:
    with open(sys.argv[2], "w") as f:
        f.write(text)
