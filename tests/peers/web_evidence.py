#!/usr/bin/env python3
"""The delivery evidence under a sent message, in Debian's chromium (headless, Playwright).

    web_evidence.py BASE_URL PASSWORD TICKET_ID OUT_DIR

Logs in as alice, opens the ticket, reads each `.evidence li` (its text, and whether it fits
the message's width), takes screenshots at 1280 and 360 px, and prints "REPORT {json}".
Never downloads a browser: it launches /usr/bin/chromium.
"""
import json
import sys

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


def main():
    base, password, ticket, out_dir = sys.argv[1:5]
    report = {"script_errors": [], "items": [], "overflow": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        for width in (1280, 360):
            ctx = browser.new_context(viewport={"width": width, "height": 800})
            page = ctx.new_page()
            page.on("pageerror", lambda e: report["script_errors"].append(str(e)))
            page.on(
                "console",
                lambda m: m.type == "error"
                and "Failed to load resource" not in m.text
                and report["script_errors"].append(m.text),
            )
            page.on(
                "response",
                lambda r: r.status >= 400
                and not r.url.endswith("/favicon.ico")
                and report["script_errors"].append(f"{r.status} {r.url}"),
            )
            page.goto(base + "/login")
            page.fill("input[name=username]", "alice")
            page.fill("input[name=password]", password)
            with page.expect_navigation():
                page.click("button[type=submit]")
            page.goto(f"{base}/tickets/{ticket}")
            items = page.locator(".evidence li")
            for i in range(items.count()):
                item = items.nth(i)
                if width == 1280:
                    report["items"].append(item.inner_text())
                # Wider than its message: the text would run off the card.
                if page.evaluate(
                    "e => e.scrollWidth > e.closest('article').clientWidth",
                    item.element_handle(),
                ):
                    report["overflow"].append(width)
            if items.count():
                items.first.scroll_into_view_if_needed()
            page.screenshot(path=f"{out_dir}/evidence-{width}.png", full_page=True)
            ctx.close()
        browser.close()
    print("REPORT " + json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
