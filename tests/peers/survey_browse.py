#!/usr/bin/env python3
"""Answers postdesk's satisfaction survey in Debian's chromium (headless, Playwright).

    survey_browse.py OUT_DIR URL COMMENT [URL COMMENT ...]

For each survey link in turn: opens it as a customer clicking it in their
mail, records which answer the page shows chosen, fills the comment, submits
the form and reads the page that follows. Prints one JSON object on stdout:
per link the chosen value, the thank-you text and the HTTP status, plus
dialogs, requests to other origins and console messages (CSP complaints).
Screenshots go to OUT_DIR. Never downloads a browser: it launches
/usr/bin/chromium. SURVEY_LOCALE (e.g. de-DE) sets the browser's language,
which it sends as Accept-Language.
"""
import json
import os
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
    out_dir = sys.argv[1]
    pairs = list(zip(sys.argv[2::2], sys.argv[3::2]))
    origin = urlparse(pairs[0][0]).netloc
    report = {"answers": [], "dialogs": [], "foreign_requests": [], "console": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        try:
            locale = os.environ.get("SURVEY_LOCALE")
            ctx = browser.new_context(
                viewport={"width": 800, "height": 900},
                **({"locale": locale} if locale else {}),
            )
            page = ctx.new_page()
            page.on("dialog", lambda d: (report["dialogs"].append(d.message), d.dismiss()))
            page.on(
                "request",
                lambda r: urlparse(r.url).netloc != origin
                and report["foreign_requests"].append(r.url),
            )
            page.on("console", lambda m: report["console"].append(m.text))
            for i, (url, comment) in enumerate(pairs):
                page.goto(url)
                chosen = page.eval_on_selector_all(
                    "input[name=r]", "els => els.filter(e => e.checked).map(e => e.value)"
                )
                images = page.eval_on_selector_all("img", "els => els.length")
                page.screenshot(path=f"{out_dir}/survey-{i}-form.png", full_page=True)
                page.fill("textarea[name=comment]", comment)
                with page.expect_navigation():
                    response_holder = {}
                    page.once("response", lambda r: response_holder.setdefault("status", r.status))
                    page.click("button[type=submit]")
                page.screenshot(path=f"{out_dir}/survey-{i}-done.png", full_page=True)
                thanks = page.locator("#thanks")
                report["answers"].append(
                    {
                        "chosen": chosen,
                        "images": images,
                        "status": response_holder.get("status"),
                        "thanks": thanks.inner_text() if thanks.count() else None,
                        "body": page.inner_text("main"),
                    }
                )
            ctx.close()
        finally:
            browser.close()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
