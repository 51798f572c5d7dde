#!/usr/bin/env python3
"""Drives Debian's chromium (headless, through Playwright) over postdesk's web view.

    web_browse.py BASE_URL USERNAME PASSWORD TICKET_ID OUT_DIR

Logs in through the /login form, opens the queue and the ticket at desktop
(1280 px) and phone (360 px) widths, writes screenshots to OUT_DIR, and
prints one JSON object on stdout with what it saw: page titles, whether the
ticket is listed, the ticket page's message texts, its HTML-version frames
(opened, with their text and script elements), script elements, dialogs
fired, requests to other origins, console CSP violations, and whether the
page overflows horizontally at 360 px. The Rust test (tests/web.rs) asserts
on it. Never downloads a browser: it launches /usr/bin/chromium.
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
    base, username, password, ticket, out_dir = sys.argv[1:6]
    origin = urlparse(base).netloc
    report = {"dialogs": [], "foreign_requests": [], "console": [], "widths": {}}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        try:
            for name, width, height in (("desktop", 1280, 800), ("phone", 360, 740)):
                ctx = browser.new_context(viewport={"width": width, "height": height})
                page = ctx.new_page()

                def on_dialog(d):
                    report["dialogs"].append(d.message)
                    d.dismiss()

                page.on("dialog", on_dialog)
                page.on(
                    "request",
                    lambda r: urlparse(r.url).netloc != origin
                    and report["foreign_requests"].append(r.url),
                )
                page.on("console", lambda m: report["console"].append(m.text))

                page.goto(base + "/")
                seen = {"redirected_to_login": page.url.endswith("/login")}
                page.fill("input[name=username]", username)
                page.fill("input[name=password]", password)
                page.click("button[type=submit]")
                page.wait_for_load_state()
                seen["after_login_url"] = page.url
                seen["queue_title"] = page.title()
                seen["queue_lists_ticket"] = (
                    page.locator(f'a[href="/tickets/{ticket}"]').count() > 0
                )
                seen["folders"] = page.locator("nav.folders a").all_inner_texts()
                page.screenshot(path=f"{out_dir}/queue-{name}.png", full_page=True)
                seen["queue_overflows"] = page.evaluate(
                    "document.documentElement.scrollWidth > window.innerWidth"
                )

                page.click(f'a[href="/tickets/{ticket}"]')
                page.wait_for_load_state()
                seen["ticket_url"] = page.url
                seen["ticket_title"] = page.title()
                seen["h1"] = page.locator("h1").inner_text()
                seen["messages"] = page.locator("article.msg .text").all_inner_texts()
                seen["message_kinds"] = page.locator("article.msg .kind").all_inner_texts()
                # Script elements but postdesk's own external app.js (the
                # one script the CSP allows; it runs nothing from the mail).
                seen["script_elements"] = page.locator(
                    'script:not([src="/static/app.js"])'
                ).count()
                seen["svg_elements"] = page.locator("svg").count()
                seen["meta_refresh"] = page.locator('meta[http-equiv="refresh" i]').count()
                seen["elements_with_on_attrs"] = page.evaluate(
                    "[...document.querySelectorAll('*')].filter(e => [...e.attributes]"
                    ".some(a => a.name.startsWith('on'))).length"
                )
                seen["javascript_links"] = page.evaluate(
                    "[...document.querySelectorAll('a[href]')].filter(a => "
                    "a.getAttribute('href').trim().toLowerCase().startsWith('javascript:')).length"
                )
                seen["reply_form"] = page.locator(
                    'form[action$="/reply"] textarea[name=body]'
                ).count()
                seen["note_form"] = page.locator(
                    'form[action$="/note"] textarea[name=body]'
                ).count()
                # Open every framed HTML version, so its payloads get their chance.
                for summary in page.locator("details.html summary").all():
                    summary.click()
                page.wait_for_timeout(500)
                page.screenshot(path=f"{out_dir}/ticket-{name}.png", full_page=True)
                # Give a refresh or a delayed handler time to fire, if anything did run.
                page.wait_for_timeout(1500)
                frames = []
                for f in page.frames:
                    if f == page.main_frame:
                        continue
                    frames.append(
                        {
                            "url": f.url,
                            "scripts": f.locator("script").count(),
                            "text": f.evaluate("document.body ? document.body.innerText : ''"),
                        }
                    )
                seen["frames"] = frames
                seen["url_after_wait"] = page.url
                seen["ticket_overflows"] = page.evaluate(
                    "document.documentElement.scrollWidth > window.innerWidth"
                )
                report["widths"][name] = seen
                ctx.close()
        finally:
            browser.close()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
