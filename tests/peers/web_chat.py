#!/usr/bin/env python3
"""Drives Debian's chromium (headless, through Playwright) through a live chat.

    web_chat.py PAGE_URL EVIL_URL WEB_BASE USERNAME PASSWORD OUT_DIR PUBLIC_BASE

Two browser contexts. The visitor opens PAGE_URL (a page on another origin
that embeds /chat/loader.js), presses the chat button, gives an address,
writes a line with the keyboard (Enter sends) and waits for the agent's
answer in the frame. The agent logs in to the web view (WEB_BASE), opens
the chat's ticket, sees the line and answers with the reply form. The
visitor then ends the chat. A third context opens EVIL_URL, a page on an
origin the site does not list, which embeds the same loader: its frame must
stay empty. Prints one JSON object with what it saw; screenshots go to
OUT_DIR. Never downloads a browser: it launches /usr/bin/chromium.
"""
import json
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

VISITOR_LINE = "Hello, my printer only prints blank pages."
AGENT_LINE = "Please check the toner cartridge."


def main():
    page_url, evil_url, web_base, username, password, out_dir, public_base = sys.argv[1:8]
    report = {"visitor_console": [], "agent_console": [], "evil_console": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        try:
            visitor_ctx = browser.new_context(viewport={"width": 1000, "height": 760})
            visitor = visitor_ctx.new_page()
            visitor.on("console", lambda m: report["visitor_console"].append(m.text))
            visitor.goto(page_url)
            visitor.get_by_role("button", name="Chat with us").click()
            frame = visitor.frame_locator("#postdesk-chat-frame")
            frame.get_by_label("Your email address").fill("ann@example.org")
            frame.get_by_label("Your name (optional)").fill("Ann Visitor")
            frame.get_by_role("button", name="Start chat").click()
            text = frame.get_by_label("Your message")
            text.wait_for()
            report["greeting"] = frame.locator("#greeting").inner_text()
            report["lines_aria_live"] = frame.locator("#lines").get_attribute("aria-live")
            text.fill(VISITOR_LINE)
            text.press("Enter")
            frame.locator("#lines li.visitor", has_text="blank pages").wait_for(timeout=20000)
            report["visitor_sees_own_line"] = True

            agent_ctx = browser.new_context(viewport={"width": 1280, "height": 800})
            agent = agent_ctx.new_page()
            agent.on("console", lambda m: report["agent_console"].append(m.text))
            agent.goto(web_base + "/login")
            agent.fill("input[name=username]", username)
            agent.fill("input[name=password]", password)
            agent.click("button[type=submit]")
            agent.wait_for_load_state()
            link = agent.locator('a[href^="/tickets/"]', has_text="Chat:").first
            for _ in range(20):
                if link.count() > 0:
                    break
                time.sleep(0.5)
                agent.reload()
            report["ticket_href"] = link.get_attribute("href")
            link.click()
            agent.wait_for_load_state()
            report["agent_messages"] = agent.locator("article.msg .text").all_inner_texts()
            agent.fill("#reply", AGENT_LINE)
            agent.locator("form.reply button[type=submit]").click()
            agent.wait_for_load_state()

            frame.locator("#lines li.agent", has_text="toner").wait_for(timeout=20000)
            report["visitor_sees_agent_line"] = frame.locator("#lines li.agent").inner_text()
            visitor.screenshot(path=f"{out_dir}/visitor.png", full_page=True)
            agent.screenshot(path=f"{out_dir}/agent.png", full_page=True)

            frame.get_by_role("button", name="End the chat and mail me the transcript").click()
            frame.locator("#status", has_text="transcript").wait_for(timeout=20000)
            report["visitor_status"] = frame.locator("#status").inner_text()

            evil_ctx = browser.new_context(viewport={"width": 1000, "height": 760})
            evil = evil_ctx.new_page()
            evil.on("console", lambda m: report["evil_console"].append(m.text))
            evil.goto(evil_url)
            evil.get_by_role("button", name="Chat with us").click()
            time.sleep(2)
            inner = evil.frame_locator("#postdesk-chat-frame").locator("#chat")
            report["evil_frame_has_chat"] = inner.count() > 0
            # The page's own script trying the API directly.
            report["evil_fetch"] = evil.evaluate(
                """async (base) => {
                    try {
                        const r = await fetch(base + '/chat/start', {method: 'POST',
                            headers: {'Content-Type': 'application/json'},
                            body: JSON.stringify({site: 'www', address: 'm@example.org'})});
                        return 'status ' + r.status;
                    } catch (e) { return 'failed: ' + e.message; }
                }""",
                public_base,
            )
            evil.screenshot(path=f"{out_dir}/evil.png", full_page=True)
        finally:
            browser.close()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
