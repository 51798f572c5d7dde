#!/usr/bin/env python3
"""Drives Debian's chromium (headless, through Playwright) over the queue page.

    web_queue.py BASE_URL USERNAME PASSWORD SMTP_PORT OUT_DIR

Logs in, opens the queue, selects the first ticket, marks the window, then
sends a new customer mail over SMTP (smtplib) and waits for its subject to
appear in the open page. Reports on stdout as one JSON object: whether the
ticket appeared, whether the page reloaded (the mark is gone), whether the
selection survived the refresh, the folder count before and after, console
CSP violations, and whether the page overflows at 360 px. Screenshots of
the queue at 1280 and 360 px go to OUT_DIR. Never downloads a browser.
"""
import json
import smtplib
import sys
import time

from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def login(page, base, username, password):
    page.goto(base + "/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def main():
    base, username, password, smtp_port, out_dir = sys.argv[1:6]
    subject = f"Live arrival {int(time.time() * 1000)}"
    report = {"console": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        try:
            ctx = browser.new_context(viewport={"width": 1280, "height": 800})
            page = ctx.new_page()
            page.on("console", lambda m: report["console"].append(m.text))
            login(page, base, username, password)
            report["count_before"] = int(page.inner_text("#folder-count"))
            report["listed_before"] = page.get_by_text(subject).count() > 0
            first = page.locator('input[name="ticket"]').first
            chosen = first.get_attribute("value")
            first.check()
            page.evaluate("window.__postdeskMark = 42")

            msg = (
                f"From: Nina <nina@customer.test>\r\nTo: support@example.test\r\n"
                f"Subject: {subject}\r\nMessage-ID: <{subject.replace(' ', '.')}@customer.test>\r\n"
                f"Date: Thu, 26 Nov 2026 10:00:00 +0000\r\n\r\nHello.\r\n"
            )
            with smtplib.SMTP("127.0.0.1", int(smtp_port), timeout=30) as s:
                s.sendmail("nina@customer.test", ["support@example.test"], msg)

            try:
                page.get_by_text(subject).first.wait_for(timeout=20000)
                report["appeared"] = True
            except Exception:  # noqa: BLE001 - reported, the test asserts
                report["appeared"] = False
            report["reloaded"] = page.evaluate("window.__postdeskMark !== 42")
            report["selection_kept"] = page.locator(
                f'input[name="ticket"][value="{chosen}"]'
            ).is_checked()
            report["count_after"] = int(page.inner_text("#folder-count"))
            # Rows the refresh brought: their times in the viewer's zone too.
            report["utc_times_after_refresh"] = page.evaluate(
                "document.querySelectorAll('time[datetime]:not([data-local])').length"
            )
            page.screenshot(path=f"{out_dir}/queue-desktop.png", full_page=True)
            ctx.close()

            ctx = browser.new_context(viewport={"width": 360, "height": 740})
            page = ctx.new_page()
            page.on("console", lambda m: report["console"].append(m.text))
            login(page, base, username, password)
            page.screenshot(path=f"{out_dir}/queue-phone.png", full_page=True)
            report["phone_overflows"] = page.evaluate(
                "document.documentElement.scrollWidth > window.innerWidth"
            )
            ctx.close()
        finally:
            browser.close()
    report["csp_violations"] = [
        c for c in report["console"] if "Content Security Policy" in c
    ]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
