#!/usr/bin/env python3
"""Opens postdesk's reports page in Debian's chromium (headless, Playwright).

    web_reports.py BASE_URL USERNAME PASSWORD QUERY OUT_DIR

Logs in, opens /reports?QUERY at desktop width, writes a full-page
screenshot to OUT_DIR/reports-desktop.png, and prints one JSON object: the
charts drawn (each SVG's class, rendered width and number of rects), the
tables shown, script errors, console messages (CSP violations), failed
requests other than the favicon, requests
to other origins, and the CSV link of the first table followed from the
page (its status and first line). tests/reports.rs asserts on it. Never
downloads a browser: it launches /usr/bin/chromium.
"""
import json
import sys
from urllib.parse import urlparse

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
    base, username, password, query, out_dir = sys.argv[1:6]
    origin = urlparse(base).netloc
    report = {"console": [], "page_errors": [], "foreign_requests": [], "failed": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        try:
            ctx = browser.new_context(viewport={"width": 1280, "height": 800})
            page = ctx.new_page()
            page.on(
                "console",
                lambda m: "Failed to load resource" not in m.text
                and report["console"].append(m.text),
            )
            page.on("pageerror", lambda e: report["page_errors"].append(str(e)))
            # The browser's own favicon request is not the page's.
            page.on(
                "response",
                lambda r: r.status >= 400
                and not r.url.endswith("/favicon.ico")
                and report["failed"].append(f"{r.status} {r.url}"),
            )
            page.on(
                "request",
                lambda r: urlparse(r.url).netloc != origin
                and report["foreign_requests"].append(r.url),
            )
            page.goto(base + "/login")
            page.fill("input[name=username]", username)
            page.fill("input[name=password]", password)
            page.click("button[type=submit]")
            page.wait_for_load_state()
            page.click("a.reports")
            page.wait_for_load_state()
            report["reached_by_link"] = page.url.endswith("/reports")
            page.goto(base + "/reports?" + query)
            report["charts"] = page.eval_on_selector_all(
                "svg.chart",
                "els => els.map(e => ({cls: e.getAttribute('class'),"
                " width: e.getBoundingClientRect().width,"
                " rects: e.querySelectorAll('rect').length}))",
            )
            report["tables"] = page.eval_on_selector_all(
                "table.report-table", "els => els.map(e => e.id)"
            )
            href = page.get_attribute("a.csv", "href")
            resp = ctx.request.get(base + href)
            report["csv"] = {
                "status": resp.status,
                "first_line": resp.text().split("\r\n")[0],
            }
            page.screenshot(path=f"{out_dir}/reports-desktop.png", full_page=True)
        finally:
            browser.close()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
