"""The whole story in a real browser (Debian's Chromium via Playwright): a customer on /demo writes
through the widget, agents answer, transfer with a note and resolve; reloads, network drops and XSS
payloads change nothing they shouldn't. Takes the user guide's screenshots from the real pages."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from caredesk.demo.seed import ADMIN_EMAIL, DEMO_PASSWORD, seed_demo
from caredesk.migrate import upgrade
from caredesk.platform.db import Database
from caredesk.settings import Settings
from tests.conftest import REPO, LiveServer, server_env, start_server

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
# The user guide's screenshots are refreshed with CAREDESK_UPDATE_SCREENSHOTS=1; otherwise they go to a
# temporary folder, so a test run never leaves the working tree changed.
SHOTS = (
    REPO / "docs" / "screenshots"
    if os.environ.get("CAREDESK_UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "caredesk-screenshots"
)
SHOTS.mkdir(parents=True, exist_ok=True)
XSS = "<img src=x onerror=window.__xss=1><script>window.__xss=1</script>"
MAYA = "maya@demo.caredesk.test"


def _ensure_assets() -> None:
    built = [
        REPO / "src/caredesk/web/static/widget/loader.js",
        REPO / "src/caredesk/ui/static/dist/workspace.js",
    ]
    if not all(p.is_file() for p in built):
        subprocess.run([str(REPO / "scripts" / "build_frontend.sh")], check=True, cwd=REPO)


def _ensure_chromium() -> None:
    if not Path(CHROMIUM).exists() and shutil.which("apt-get"):
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "chromium"],
            check=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )


@pytest.fixture
def live(settings: Settings) -> Iterator[LiveServer]:
    _ensure_assets()
    _ensure_chromium()
    db = Database(settings.database_url)
    upgrade(db)
    seed_demo(db, conversations=12)
    db.close()
    # Two agents log in from one address within seconds; the throttle itself is tested in test_workspace.py.
    server = start_server({**server_env(settings), "CAREDESK_LOGIN_ATTEMPTS_PER_MINUTE": "1000"})
    yield server
    server.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        await b.close()


async def _agent(browser: Any, url: str, email: str) -> Any:
    ctx = await browser.new_context(viewport={"width": 1366, "height": 820})
    page = await ctx.new_page()
    page.set_default_timeout(15_000)
    await page.goto(url + "/login")
    await page.fill("#email", email)
    await page.fill("#password", DEMO_PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(url + "/")
    await page.wait_for_selector("#live-dot.on")
    return page


async def _customer(browser: Any, url: str) -> tuple[Any, Any]:
    ctx = await browser.new_context(viewport={"width": 1100, "height": 760})
    page = await ctx.new_page()
    page.set_default_timeout(15_000)
    await page.goto(url + "/demo")
    await page.click("[data-caredesk=launcher]")
    frame = page.frame_locator("iframe[data-caredesk=frame]")
    await frame.locator("[data-testid=composer]").wait_for()
    return page, frame


async def _say(frame: Any, text: str) -> None:
    await frame.locator("[data-testid=composer]").fill(text)
    await frame.locator("[data-testid=composer]").press("Enter")


async def _no_xss(*pages: Any) -> None:
    for p in pages:
        assert await p.evaluate("() => window.__xss") is None
        for f in p.frames:
            assert await f.evaluate("() => window.__xss") is None


async def test_customer_and_agents_end_to_end(live: LiveServer, browser: Any) -> None:
    try:
        await _story(live.url, browser)
    except Exception:
        # Leave the pages as they were for whoever reads the failure.
        for i, ctx in enumerate(browser.contexts):
            for j, p in enumerate(ctx.pages):
                await p.screenshot(path=f"/tmp/caredesk-browser-failure-{i}-{j}.png")
        raise


async def _story(url: str, browser: Any) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    alex = await _agent(browser, url, ADMIN_EMAIL)
    customer, frame = await _customer(browser, url)

    # The customer writes; the agent sees the conversation appear live and opens it.
    await _say(frame, "Hi! Where is my order TH-12345?")
    # A new web visitor has no name yet; the bot may already have answered (the list shows the last message).
    item = alex.locator(".conv-item", has_text=re.compile(r"Visitor #\d+"))
    await item.wait_for()
    await customer.screenshot(path=str(SHOTS / "widget.png"))
    await alex.screenshot(path=str(SHOTS / "conversation-list.png"))
    await item.locator("a").click()
    await alex.wait_for_url("**/c/*")
    conv_id = int(alex.url.rsplit("/", 1)[1])
    await alex.locator("#timeline .msg-incoming", has_text="Where is my order TH-12345").wait_for()

    # The agent replies; the customer sees it live.
    await alex.fill("[data-testid=reply-box]", "Hi! TH-12345 ships tomorrow morning.")
    await alex.click("[data-testid=send-reply]")
    await frame.locator(".cd-theirs .cd-text", has_text="ships tomorrow morning").wait_for()

    # Markup from either side is shown as text and runs nothing.
    await _say(frame, XSS)
    await alex.locator("#timeline .msg-incoming .text", has_text="<script>window.__xss=1</script>").wait_for()
    await alex.fill("[data-testid=reply-box]", "Echo: " + XSS)
    await alex.click("[data-testid=send-reply]")
    await frame.locator(".cd-theirs .cd-text", has_text="Echo: <img src=x").wait_for()
    await _no_xss(alex, customer)

    # The network drops and comes back: nothing lost, nothing doubled, in both directions.
    await customer.context.set_offline(True)
    await _say(frame, "sent while offline 1")
    await _say(frame, "sent while offline 2")
    await alex.fill("[data-testid=reply-box]", "replied while you were offline")
    await alex.click("[data-testid=send-reply]")
    await alex.locator("#timeline .msg-outgoing", has_text="replied while you were offline").wait_for()
    await customer.context.set_offline(False)
    await frame.locator(".cd-theirs .cd-text", has_text="replied while you were offline").wait_for()
    for text in ("sent while offline 1", "sent while offline 2"):
        await alex.locator("#timeline .msg-incoming .text", has_text=text).wait_for()
    await frame.locator(".cd-mine:not(.cd-pending) .cd-text", has_text="sent while offline 2").wait_for()
    for text in ("sent while offline 1", "sent while offline 2"):
        assert await alex.locator("#timeline .msg-incoming .text", has_text=text).count() == 1
        assert await frame.locator(".cd-mine .cd-text", has_text=text).count() == 1
    assert await frame.locator(".cd-theirs .cd-text", has_text="replied while you were offline").count() == 1
    await alex.screenshot(path=str(SHOTS / "conversation.png"))

    # Transfer with a handoff note: the second agent sees the note.
    await alex.click("[data-action=transfer]")
    maya_option = await alex.locator("#transfer-target option", has_text="Maya Okafor").get_attribute("value")
    await alex.select_option("#transfer-target", maya_option)
    await alex.fill("#transfer-note", "Verified TH-12345; customer wants delivery before Friday.")
    await alex.click(".transfer-form button[type=submit]")
    await alex.locator(".conv-head .assignee", has_text="Maya Okafor").wait_for()
    maya = await _agent(browser, url, MAYA)
    await maya.goto(f"{url}/c/{conv_id}")
    await maya.locator(
        "[data-testid=case-brief]", has_text="customer wants delivery before Friday"
    ).wait_for()
    await maya.locator("#timeline .msg-activity", has_text="customer wants delivery before Friday").wait_for()

    # Resolve.
    await maya.click("[data-action=resolve]")
    await maya.locator("[data-testid=conversation-status]", has_text="resolved").wait_for()

    # The customer reloads the page and still sees the whole history (and the internal note never).
    await customer.reload()
    await customer.click("[data-caredesk=launcher]")
    frame = customer.frame_locator("iframe[data-caredesk=frame]")
    await frame.locator(".cd-text", has_text="Where is my order TH-12345").wait_for()
    await frame.locator(".cd-text", has_text="replied while you were offline").wait_for()
    assert await frame.locator(".cd-text", has_text="customer wants delivery before Friday").count() == 0
    assert await frame.locator(".cd-mine .cd-text", has_text="sent while offline 1").count() == 1
    await _no_xss(alex, maya, customer)

    # Admin pages for the user guide.
    for section in ("agents", "inboxes"):
        await alex.goto(f"{url}/admin/{section}")
        await alex.screenshot(path=str(SHOTS / f"admin-{section}.png"), full_page=True)
