#!/usr/bin/env python3
"""Two agents on one ticket page in Debian's chromium (headless, Playwright).

    web_ticket.py MODE BASE_URL PASSWORD TICKET_ID OUT_DIR

Agents alice and bob (both with PASSWORD) each get their own browser
context. Modes:

  presence  bob and alice open the ticket; what each one's presence line
            says; alice types a reply; alice leaves; bob's line after expiry.
  stale     both open the ticket, bob replies, then alice submits hers
            (written against the older version): her page shows the held
            panel; screenshots at 1280 and 360 px; she chooses "Send anyway".
  mail      alice opens the ticket and writes; the script prints OPENED and
            waits for a line on stdin (the test has bob reply by mail
            meanwhile); alice submits, sees the held panel, and revises.

Prints lines the test answers on stdin, then "REPORT {json}" with what it
saw. Never downloads a browser: it launches /usr/bin/chromium.
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

PRESENCE_TEXT = "document.getElementById('presence').textContent"


def log_in(browser, base, user, password, report, width=1280, zone=None):
    ctx = browser.new_context(viewport={"width": width, "height": 800}, timezone_id=zone)
    page = ctx.new_page()
    page.on("pageerror", lambda e: report["script_errors"].append(f"{user}: {e}"))
    # Errors of our script, CSP refusals, and failed requests (but the
    # favicon, which postdesk does not have).
    page.on(
        "console",
        lambda m: m.type == "error"
        and "Failed to load resource" not in m.text
        and report["script_errors"].append(f"{user}: {m.text}"),
    )
    page.on(
        "response",
        lambda r: r.status >= 400
        and not r.url.endswith("/favicon.ico")
        and report["script_errors"].append(f"{user}: {r.status} {r.url}"),
    )
    page.goto(base + "/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("button[type=submit]")
    return ctx, page


def submit(page, selector):
    with page.expect_navigation():
        page.click(selector)


def wait_presence(page, expected, timeout=15000):
    """Polls the presence line (page.evaluate, which the page's CSP does
    not restrict) until it reads `expected`; returns what it last read."""
    seen = None
    for _ in range(timeout // 100):
        seen = page.evaluate(PRESENCE_TEXT)
        if seen == expected:
            break
        page.wait_for_timeout(100)
    return seen


def presence(browser, base, password, ticket, out_dir, report):
    url = f"{base}/tickets/{ticket}"
    # Bob reads times in New York's zone; the server wrote them in UTC.
    ctx_b, bob = log_in(browser, base, "bob", password, report, zone="America/New_York")
    bob.goto(url)
    ctx_a, alice = log_in(browser, base, "alice", password, report)
    alice.goto(url)
    first = bob.locator("time[data-local]").first
    report["time_local_text"] = first.inner_text()
    report["time_utc_title"] = first.get_attribute("title")
    report["time_datetime"] = first.get_attribute("datetime")
    report["bob_sees_viewing"] = wait_presence(bob, "Alice Example is viewing")
    report["alice_sees"] = wait_presence(alice, "bob is viewing")
    report["local_times"] = bob.locator("time[data-local]").count()
    bob.screenshot(path=f"{out_dir}/presence-desktop.png", full_page=True)
    alice.click("#reply")
    alice.keyboard.type("Let me check the tray")
    report["bob_sees_replying"] = wait_presence(bob, "Alice Example is replying")
    ctx_a.close()
    report["bob_after_alice_left"] = wait_presence(bob, "", timeout=20000)
    ctx_b.close()


def stale(browser, base, password, ticket, out_dir, report):
    url = f"{base}/tickets/{ticket}"
    ctx_a, alice = log_in(browser, base, "alice", password, report)
    alice.goto(url)
    ctx_b, bob = log_in(browser, base, "bob", password, report)
    bob.goto(url)
    bob.fill("#reply", "Bob has the fix: restart the spooler.")
    submit(bob, "form.reply button[type=submit]")
    alice.fill("#reply", "Alice says: load letter paper.")
    submit(alice, "form.reply button[type=submit]")
    held_seen(alice, report)
    alice.screenshot(path=f"{out_dir}/held-desktop.png", full_page=True)
    alice.set_viewport_size({"width": 360, "height": 740})
    alice.screenshot(path=f"{out_dir}/held-phone.png", full_page=True)
    report["phone_overflows"] = alice.evaluate(
        "document.documentElement.scrollWidth > window.innerWidth"
    )
    alice.set_viewport_size({"width": 1280, "height": 800})
    submit(alice, "#held .send-anyway")
    report["after_send_url"] = alice.url
    report["held_panel_after_send"] = alice.locator("#held").count() > 0
    alice.screenshot(path=f"{out_dir}/after-send-desktop.png", full_page=True)
    ctx_a.close()
    ctx_b.close()


def held_seen(page, report):
    report["held_url"] = page.url
    report["held_panel"] = page.locator("#held").count() == 1
    if report["held_panel"]:
        report["panel_text"] = page.locator("#held").inner_text()
        report["revise_prefilled"] = page.input_value("#revise-body")


def by_mail(browser, base, password, ticket, out_dir, report):
    url = f"{base}/tickets/{ticket}"
    ctx_a, alice = log_in(browser, base, "alice", password, report)
    alice.goto(url)
    alice.fill("#reply", "Alice first draft: try turning it off and on.")
    print("OPENED", flush=True)
    sys.stdin.readline()
    submit(alice, "form.reply button[type=submit]")
    held_seen(alice, report)
    alice.set_viewport_size({"width": 360, "height": 740})
    alice.screenshot(path=f"{out_dir}/held-by-mail-phone.png", full_page=True)
    alice.screenshot(path=f"{out_dir}/held-by-mail-phone-top.png")
    alice.set_viewport_size({"width": 1280, "height": 800})
    if report["held_panel"]:
        alice.fill("#revise-body", "Revised: Bob is right, the tray was empty.")
        submit(alice, "form.revise button[type=submit]")
        report["after_revise_url"] = alice.url
        report["held_panel_after_revise"] = alice.locator("#held").count() > 0
    ctx_a.close()


def main():
    mode, base, password, ticket, out_dir = sys.argv[1:6]
    report = {"script_errors": []}
    run = {"presence": presence, "stale": stale, "mail": by_mail}[mode]
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        try:
            run(browser, base, password, ticket, out_dir, report)
        finally:
            browser.close()
    print("REPORT " + json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
