#!/usr/bin/env python3
"""Merges one ticket into another by clicking the ticket page's merge form in
Debian's chromium (headless, through Playwright).

    web_merge.py BASE_URL USERNAME PASSWORD TICKET_ID INTO_ID OUT_DIR

Logs in through /login, opens /tickets/TICKET_ID, types INTO_ID into the
merge form's ticket-number field and a reason, clicks "Merge", and prints
one JSON object: the URL it landed on, that page's h1, and what the merged
ticket's page says afterwards. Screenshots before and after go to OUT_DIR.
The Rust test (tests/merge.rs) asserts on it. Never downloads a browser: it
launches /usr/bin/chromium.
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
    base, username, password, ticket, into, out_dir = sys.argv[1:7]
    report = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            page.goto(base + "/login")
            page.fill("input[name=username]", username)
            page.fill("input[name=password]", password)
            page.click("button[type=submit]")
            page.wait_for_load_state()
            page.goto(f"{base}/tickets/{ticket}")
            page.screenshot(path=f"{out_dir}/before-merge.png", full_page=True)
            page.fill("#merge-into", into)
            page.fill("#merge-reason", "same question, asked twice")
            with page.expect_navigation():
                page.click("section.merge button[type=submit]")
            report["landed"] = page.url
            report["h1"] = page.locator("h1").inner_text()
            page.screenshot(path=f"{out_dir}/after-merge.png", full_page=True)
            page.goto(f"{base}/tickets/{ticket}")
            report["merged_page"] = page.locator("section.merge").inner_text()
        finally:
            browser.close()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
