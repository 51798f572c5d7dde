#!/usr/bin/env python3
"""Drives Debian's chromium (headless, through Playwright) over postdesk's
customers' pages: the web form and the signed status page.

    public_form.py form BASE_URL OUT_DIR EMAIL_WITH_JS EMAIL_WITHOUT_JS
    public_form.py status STATUS_URL OUT_DIR

`form` fills /new and sends it twice: at desktop width (1280 px) with
JavaScript, at phone width (360 px) with JavaScript off, each with a file
attached. `status` opens the status page at both widths (JavaScript off at
phone width) and, at desktop width, adds a message with a file through its
form. Screenshots go to OUT_DIR. Prints one JSON object on stdout with what
it saw (headings, notices, whether the honeypot is visible, horizontal
overflow, console messages, failed loads, requests to other origins). The Rust test
(tests/public_form.rs) asserts on it. Never downloads a browser: it
launches /usr/bin/chromium.
"""
import json
import os
import sys
import tempfile
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

WIDTHS = (("desktop", 1280, 800, True), ("phone", 360, 740, False))


def context(browser, report, origin, width, height, js):
    ctx = browser.new_context(
        viewport={"width": width, "height": height}, java_script_enabled=js
    )
    page = ctx.new_page()
    # Failed loads are listed by URL (below), so that the browser's own
    # /favicon.ico probe can be told apart from a page's missing resource.
    page.on(
        "console",
        lambda m: m.text.startswith("Failed to load resource")
        or report["console"].append(m.text),
    )
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
    return ctx, page


def overflows(page):
    # Measured by layout, so it works with JavaScript off too.
    box = page.locator("html").bounding_box()
    return box is not None and box["width"] > page.viewport_size["width"] + 1


def form(browser, report, base, out_dir, emails, attachment):
    origin = urlparse(base).netloc
    for (name, width, height, js), email in zip(WIDTHS, emails):
        ctx, page = context(browser, report, origin, width, height, js)
        seen = {"javascript": js}
        page.goto(base + "/new")
        seen["title"] = page.title()
        seen["h1"] = page.locator("h1").inner_text()
        seen["honeypot_visible"] = page.locator("input[name=website]").is_visible()
        hp_box = page.locator("input[name=website]").bounding_box()
        seen["honeypot_on_screen"] = hp_box is not None and hp_box["x"] >= 0
        seen["new_overflows"] = overflows(page)
        page.screenshot(path=f"{out_dir}/new-{name}.png", full_page=True)
        page.fill("input[name=name]", f"Browser {name}")
        page.fill("input[name=email]", email)
        page.fill("input[name=subject]", f"Printer offline ({name})")
        page.fill("textarea[name=body]", f"The printer went offline. Sent from {name}.")
        page.set_input_files("input[name=attachment]", attachment)
        page.click("button[type=submit]")
        page.wait_for_load_state()
        seen["thanks_url"] = page.url
        seen["thanks_h1"] = page.locator("h1").inner_text()
        seen["thanks_text"] = page.locator("main").inner_text()
        seen["thanks_overflows"] = overflows(page)
        page.screenshot(path=f"{out_dir}/thanks-{name}.png", full_page=True)
        report["widths"][name] = seen
        ctx.close()


def status(browser, report, url, out_dir, attachment):
    origin = urlparse(url).netloc
    for name, width, height, js in WIDTHS:
        ctx, page = context(browser, report, origin, width, height, js)
        seen = {"javascript": js}
        page.goto(url)
        seen["title"] = page.title()
        seen["h1"] = page.locator("h1").inner_text()
        seen["status"] = page.locator(".summary").inner_text()
        seen["messages"] = page.locator("article.message pre").all_inner_texts()
        seen["overflows"] = overflows(page)
        page.screenshot(path=f"{out_dir}/status-{name}.png", full_page=True)
        if name == "desktop":
            page.fill("textarea[name=body]", "Added from the status page in the browser.")
            page.set_input_files("input[name=attachment]", attachment)
            page.click('form[action*="/message"] button[type=submit]')
            page.wait_for_load_state()
            seen["after_url"] = page.url
            seen["after_notice"] = page.locator(".done").inner_text()
            seen["after_messages"] = page.locator("article.message pre").all_inner_texts()
            page.screenshot(path=f"{out_dir}/status-after-{name}.png", full_page=True)
        report["widths"][name] = seen
        ctx.close()


def main():
    mode = sys.argv[1]
    report = {"console": [], "failed": [], "foreign_requests": [], "widths": {}}
    with tempfile.TemporaryDirectory() as tmp:
        attachment = os.path.join(tmp, "printer-log.txt")
        with open(attachment, "w") as f:
            f.write("printer log: offline since 09:14\n")
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
            )
            try:
                if mode == "form":
                    base, out_dir, with_js, without_js = sys.argv[2:6]
                    form(browser, report, base, out_dir, (with_js, without_js), attachment)
                elif mode == "status":
                    url, out_dir = sys.argv[2:4]
                    status(browser, report, url, out_dir, attachment)
                else:
                    sys.exit(f"unknown mode {mode}")
            finally:
                browser.close()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
