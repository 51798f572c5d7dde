#!/usr/bin/env python3
"""alignment.py DIR… — how often real mail's envelope sender (Return-Path) is of the same
organisational domain as its From: the measurement behind postdesk's rule that a From is
vouched for by an aligned envelope sender (src/process/vouch.rs).

Prints, over every message with both headers under the given folders: aligned, aligned
through SRS, and unrelated, each unrelated one with its kind (list, bounce, auto-reply,
other) so that one can see what the rule would refuse an acknowledgement.
"""
import collections
import email
import email.policy
import email.utils
import os
import sys

GENERIC_2LD = {"co", "com", "net", "org", "gov", "ac", "edu", "ne", "or", "ltd", "plc"}


def organisational(domain):
    labels = domain.lower().strip(".").split(".")
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in GENERIC_2LD:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def srs_domain(local):
    up = local[:5].upper()
    if up.startswith("SRS0") and len(local) > 5:
        fields = local[5:].split("=")
    elif up.startswith("SRS1") and "==" in local:
        fields = local.split("==", 1)[1].split("=")
    else:
        return None
    return fields[2] if len(fields) > 3 else None


def kind(msg, sender):
    local = sender.split("@")[0].lower()
    if msg.get("List-Id") or msg.get("List-Unsubscribe") or local.endswith(("-bounces", "-request", "-owner")) or local.startswith(("owner-", "bounce")):
        return "list or bulk"
    frm = (msg.get("From") or "").lower()
    if "mailer-daemon" in frm or "postmaster" in frm or "report-type=delivery-status" in (msg.get("Content-Type") or "").lower():
        return "bounce"
    if msg.get("Auto-Submitted", "no").lower() != "no" or "auto" in (msg.get("Subject") or "").lower()[:20]:
        return "auto-reply"
    return "other"


def main(dirs):
    counts = collections.Counter()
    unrelated = collections.Counter()
    examples = []
    for top in dirs:
        for root, _, files in os.walk(top):
            for name in files:
                if name.endswith((".md", ".toml", ".json", ".txt.expected")):
                    continue
                path = os.path.join(root, name)
                with open(path, "rb") as f:
                    msg = email.message_from_binary_file(f, policy=email.policy.compat32)
                rp, frm = msg.get("Return-Path"), msg.get("From")
                if not rp or not frm:
                    counts["without Return-Path or From"] += 1
                    continue
                sender = email.utils.parseaddr(str(rp))[1]
                author = email.utils.parseaddr(str(frm))[1]
                if not sender:
                    counts["null envelope sender"] += 1
                    continue
                if "@" not in sender or "@" not in author:
                    counts["unparseable"] += 1
                    continue
                local, domain = sender.rsplit("@", 1)
                srs = srs_domain(local)
                if organisational(srs or domain) == organisational(author.rsplit("@", 1)[1]):
                    counts["aligned through SRS" if srs else "aligned"] += 1
                else:
                    counts["unrelated"] += 1
                    k = kind(msg, sender)
                    unrelated[k] += 1
                    if k == "other":
                        examples.append(f"{path}: envelope {sender}, From {author}")
    for k, v in sorted(counts.items()):
        print(f"{k:32} {v}")
    for k, v in sorted(unrelated.items()):
        print(f"  unrelated, {k:22} {v}")
    for e in examples:
        print("   ", e)


if __name__ == "__main__":
    main(sys.argv[1:] or ["fixtures"])
