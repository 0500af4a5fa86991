"""The workspace's conversation view in a real browser (Debian's Chromium via Playwright): the case brief
sits above the timeline and never hides a message, an outgoing message's delivery status changes live
(queued -> sent, failed with its reason and a Retry that really re-sends), agents attach files, dead
letters are listed and retried, and the main flows work with the keyboard alone."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from caredesk.accounts.models import Account, Inbox
from caredesk.conversations.inbound import Inbound, receive_inbound
from caredesk.conversations.models import Conversation
from caredesk.demo.seed import ADMIN_EMAIL, DEMO_SLUG, seed_demo
from caredesk.migrate import upgrade
from caredesk.platform.db import Database
from caredesk.settings import Settings
from tests.conftest import LiveServer, free_port, server_env, start_server
from tests.ui.test_browser import _agent, _ensure_assets, _ensure_chromium, browser

pytestmark = pytest.mark.browser
__all__ = ["browser"]  # the Playwright browser fixture, shared with test_browser.py

BRIEF_STEPS = 30  # a long brief: taller than the room the timeline has
MESSAGES = 25


@dataclass
class FakeProvider:
    """The business's webhook for the API inbox: refuses (400) while `refuse` is set, records every body."""

    url: str = ""
    refuse: bool = False
    bodies: list[bytes] = field(default_factory=list)
    gate: threading.Event = field(default_factory=threading.Event)  # answers wait until it is set

    def __post_init__(self) -> None:
        self.gate.set()


@dataclass
class World:
    live: LiveServer
    db: Database
    provider: FakeProvider
    conv_id: int


def _provider() -> tuple[ThreadingHTTPServer, FakeProvider]:
    fake = FakeProvider()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            fake.gate.wait(60)
            fake.bodies.append(body)
            status = 400 if fake.refuse else 200
            self.send_response(status)
            self.send_header("content-type", "text/plain")
            self.end_headers()
            self.wfile.write(b"refused: test provider is closed" if fake.refuse else b"ok")

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, fake


@pytest.fixture
def world(settings: Settings) -> Iterator[World]:
    _ensure_assets()
    _ensure_chromium()
    db = Database(settings.database_url)
    upgrade(db)
    seed_demo(db, conversations=12)
    http, fake = _provider()

    def setup(s: Any) -> int:
        account_id = s.execute(select(Account.id).where(Account.slug == DEMO_SLUG)).scalar_one()
        inbox = s.execute(
            select(Inbox).where(Inbox.account_id == account_id, Inbox.channel == "api")
        ).scalar_one()
        inbox.config = {**inbox.config, "webhook_url": fake.url, "webhook_secret": "whsec_dGVzdHNlY3JldA=="}
        conv_id = 0
        for i in range(MESSAGES):
            r = receive_inbound(
                s,
                Inbound(
                    account_id=account_id,
                    inbox_id=inbox.id,
                    identity_kind="email",
                    identity_value="brenda.brief@mail.example",
                    contact_name="Brenda Brief",
                    text=f"timeline message {i}",
                    channel_message_id=f"brief-{i}",
                ),
            )
            conv_id = r.conversation_id
        conv = s.get(Conversation, conv_id)
        conv.case_brief = {
            "goal": "get the tent delivered before the trip on Friday",
            "facts": {"order": "TH-55555", "address": "Lindenstr. 1, Berlin"},
            "steps": [{"by": "bot", "what": f"tried step {i}"} for i in range(BRIEF_STEPS)],
            "promises": [{"by": "agent", "what": "call back by noon"}],
            "mood": "impatient",
            "handoffs": [{"by": "Maya", "note": "wants delivery before Friday", "at": "2024-05-01T10:00:00"}],
        }
        return conv_id

    conv_id = db.write_sync(setup)
    port = free_port()
    env = {
        **server_env(settings),
        "CAREDESK_LOGIN_ATTEMPTS_PER_MINUTE": "1000",
        "CAREDESK_PUBLIC_URL": f"http://127.0.0.1:{port}",  # the customers' download links point here
    }
    server = start_server(env, port=port)
    yield World(server, db, fake, conv_id)
    server.stop()
    http.shutdown()
    db.close()


async def _boxes(page: Any, msg: str) -> dict[str, Any]:
    """Boxes of the brief, the timeline and one message; `hit`: the element drawn at the message's top
    and bottom edges is the message itself."""
    return await page.eval_on_selector(
        msg,
        """m => {
          const r = (el) => { const b = el.getBoundingClientRect();
            return {top: b.top, bottom: b.bottom, height: b.height}; };
          const at = (y) => { const el = document.elementFromPoint(m.getBoundingClientRect().left + 8, y);
            return !!el && m.contains(el); };
          const b = m.getBoundingClientRect();
          return {
            brief: r(document.querySelector('[data-testid=case-brief]')),
            timeline: r(document.getElementById('timeline')), msg: r(m),
            hit: at(b.top + 3) && at(b.bottom - 3),
          };
        }""",
    )


@pytest.mark.parametrize("height", [820, 600])
async def test_case_brief_never_hides_a_message(world: World, browser: Any, height: int) -> None:
    page = await _agent(browser, world.live.url, ADMIN_EMAIL)
    await page.set_viewport_size({"width": 1366, "height": height})
    await page.goto(f"{world.live.url}/c/{world.conv_id}")
    await page.locator("[data-testid=case-brief]").wait_for()
    await page.locator("#timeline .msg", has_text="timeline message 24").wait_for()
    # Opened at the end of the timeline: the newest message is visible, below the brief.
    b = await _boxes(page, "#timeline .msg:last-of-type")
    assert b["brief"]["bottom"] <= b["timeline"]["top"], b
    assert b["timeline"]["height"] >= 120, b  # a long brief never squeezes the timeline away
    assert b["msg"]["bottom"] <= b["timeline"]["bottom"] + 1 and b["hit"], b
    # Scrolled to the top: the first message is below the brief and really visible (the element at its
    # top edge is the message itself, not the brief drawn over it), and it stays there when the
    # customer panel's actions finish loading (no jump back to the end).
    await page.eval_on_selector("#timeline", "tl => { tl.scrollTop = 0; }")
    await page.locator("details.action").first.wait_for()
    await page.wait_for_function("() => !document.querySelector('.htmx-request')")
    assert await page.eval_on_selector("#timeline", "tl => tl.scrollTop") == 0
    b = await _boxes(page, "#timeline .msg")
    assert b["msg"]["top"] >= b["timeline"]["top"] >= b["brief"]["bottom"], b
    assert b["hit"], b
    await page.screenshot(path=f"/tmp/caredesk-brief-{height}.png")
    # The agent can fold the brief away and open it again.
    await page.click("[data-testid=case-brief] > summary")
    assert await page.eval_on_selector("[data-testid=case-brief]", "d => d.open") is False
    b = await _boxes(page, "#timeline .msg")
    assert b["msg"]["top"] >= b["brief"]["bottom"] and b["hit"], b


async def test_delivery_status_changes_live(world: World, browser: Any) -> None:
    page = await _agent(browser, world.live.url, ADMIN_EMAIL)
    await page.goto(f"{world.live.url}/c/{world.conv_id}")
    world.provider.gate.clear()  # the business's webhook holds the delivery until the test lets it go
    await page.fill("[data-testid=reply-box]", "Your tent ships today.")
    await page.click("[data-testid=send-reply]")
    msg = page.locator("#timeline .msg-outgoing", has_text="Your tent ships today.")
    await msg.locator("[data-testid=delivery-status]", has_text="queued").wait_for()
    world.provider.gate.set()
    await msg.locator("[data-testid=delivery-status]", has_text="sent").wait_for()
    assert await msg.locator("[data-testid=delivery-status]").inner_text() == "sent"
    assert len(world.provider.bodies) == 1 and b"Your tent ships today." in world.provider.bodies[0]


async def test_agent_attaches_files_from_the_composer(world: World, browser: Any) -> None:
    page = await _agent(browser, world.live.url, ADMIN_EMAIL)
    await page.goto(f"{world.live.url}/c/{world.conv_id}")
    pdf = b"%PDF-1.4\n% a shipping label\n"
    await page.set_input_files(
        "[data-testid=reply-files]",
        [
            {"name": "label.pdf", "mimeType": "application/pdf", "buffer": pdf},
            {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"fragile"},
        ],
    )
    await page.fill("[data-testid=reply-box]", "Here is your return label.")
    await page.click("[data-testid=send-reply]")
    msg = page.locator("#timeline .msg-outgoing", has_text="Here is your return label.")
    link = msg.locator("[data-testid=file-link]", has_text="label.pdf")
    await link.wait_for()
    await msg.locator("[data-testid=file-link]", has_text="notes.txt").wait_for()
    # The composer is empty again (text and files) for the next message.
    assert await page.input_value("[data-testid=reply-box]") == ""
    assert await page.eval_on_selector("[data-testid=reply-files]", "i => i.files.length") == 0
    r = await page.request.get(world.live.url + str(await link.get_attribute("href")))
    assert r.status == 200 and await r.body() == pdf
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["content-disposition"] == 'attachment; filename="label.pdf"'
    # Delivered to the business's webhook with download links; the status turns to sent on screen.
    await msg.locator("[data-testid=delivery-status]", has_text="sent").wait_for()
    body = json.loads(world.provider.bodies[-1])
    names = [a["filename"] for a in body["data"]["attachments"]]
    assert names == ["label.pdf", "notes.txt"]
    urls = [a["url"] for a in body["data"]["attachments"]]
    assert all(u.startswith(world.live.url + "/files/") for u in urls), urls
    # The customer's link works without a login.
    anonymous = await browser.new_context()
    got = await anonymous.request.get(urls[0])
    assert got.status == 200 and await got.body() == pdf
    assert got.headers["content-disposition"] == 'attachment; filename="label.pdf"'
    await anonymous.close()
    # A file of the wrong type is refused with the reason, and nothing is sent.
    await page.set_input_files(
        "[data-testid=reply-files]", [{"name": "page.html", "mimeType": "text/html", "buffer": b"<b>x</b>"}]
    )
    await page.fill("[data-testid=reply-box]", "with a page")
    await page.click("[data-testid=send-reply]")
    await page.locator("#toast", has_text="this file type is not accepted").wait_for()
    assert await page.locator("#timeline .msg", has_text="with a page").count() == 0


async def test_failed_reply_shows_the_reason_and_retry_resends(world: World, browser: Any) -> None:
    page = await _agent(browser, world.live.url, ADMIN_EMAIL)
    await page.goto(f"{world.live.url}/c/{world.conv_id}")
    world.provider.refuse = True
    await page.fill("[data-testid=reply-box]", "This one bounces first.")
    await page.click("[data-testid=send-reply]")
    msg = page.locator("#timeline .msg-outgoing", has_text="This one bounces first.")
    # Failed, live, with the provider's reason and a Retry action.
    await msg.locator("[data-testid=delivery-status]", has_text="failed").wait_for()
    failed = msg.locator("[data-testid=delivery-failed]")
    assert "refused: test provider is closed" in await failed.inner_text()
    world.provider.refuse = False
    await msg.locator("[data-testid=retry-delivery]").click()
    await msg.locator("[data-testid=delivery-status]", has_text="sent").wait_for()
    assert await msg.locator("[data-testid=delivery-failed]").count() == 0
    sent = [b for b in world.provider.bodies if b"This one bounces first." in b]
    assert len(sent) == 2  # refused once, then really sent again

    # The admin's dead letters: a refused reply is listed with its conversation and retried from there.
    world.provider.refuse = True
    await page.fill("[data-testid=reply-box]", "Dead letter, then retried.")
    await page.click("[data-testid=send-reply]")
    second = page.locator("#timeline .msg-outgoing", has_text="Dead letter, then retried.")
    await second.locator("[data-testid=delivery-status]", has_text="failed").wait_for()
    await page.click("nav[aria-label=Main] >> text=Admin")
    await page.click("nav[aria-label=Admin] >> text=Dead letters")
    row = page.locator("[data-testid=dead-letters] tr", has_text="Dead letter, then retried.")
    await row.wait_for()
    assert "message.deliver" in await row.inner_text()
    world.provider.refuse = False
    await row.locator("[data-testid=retry-job]").click()
    await page.wait_for_url("**/admin/dead-letters")
    assert (
        await page.locator("[data-testid=dead-letters] tr", has_text="Dead letter, then retried.").count()
        == 0
    )
    await page.goto(f"{world.live.url}/c/{world.conv_id}")
    await second.locator("[data-testid=delivery-status]", has_text="sent").wait_for()


# ---------------------------------------------------------------- accessibility

FOCUS = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return {tag: 'BODY', ring: false};
  // A view tab's radio is drawn by its label: the ring is on the label.
  const carrier = el.matches('.view-tab input') ? el.closest('.view-tab') : el;
  const s = getComputedStyle(carrier);
  const ring = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2;
  return {tag: el.tagName, id: el.id, cls: el.className, text: (el.innerText || el.value || '').slice(0, 40),
          ring};
}"""


async def _tab_until(
    page: Any, selector: str, *, back: bool = False, limit: int = 80
) -> list[dict[str, Any]]:
    """Presses Tab (or Shift+Tab) until `selector` has the focus; every stop on the way shows a focus ring."""
    stops: list[dict[str, Any]] = []
    for _ in range(limit):
        await page.keyboard.press("Shift+Tab" if back else "Tab")
        info = await page.evaluate(FOCUS)
        stops.append(info)
        assert info["ring"], f"no visible focus on {info} (after {stops[:-1]})"
        if await page.evaluate("(sel) => document.activeElement.matches(sel)", selector):
            return stops
    raise AssertionError(f"{selector} never got the focus; stops: {stops}")


async def test_keyboard_only_open_reply_and_assign(world: World, browser: Any) -> None:
    page = await _agent(browser, world.live.url, ADMIN_EMAIL)
    item = page.locator(".conv-item", has=page.locator("em", has_text="Unassigned")).first
    conv_id = int(str(await item.get_attribute("data-conversation-id")))
    await page.locator("body").focus()
    # Tab to the conversation in the list and open it with Enter.
    await _tab_until(page, f'.conv-item[data-conversation-id="{conv_id}"] .conv-link')
    await page.keyboard.press("Enter")
    await page.locator(f'#conversation[data-conversation-id="{conv_id}"]').wait_for()
    # Tab on to the reply box, write, send with Ctrl+Enter.
    await _tab_until(page, "#reply-box")
    await page.keyboard.type("Typed with the keyboard alone.")
    await page.keyboard.press("Control+Enter")
    await page.locator("#timeline .msg-outgoing", has_text="Typed with the keyboard alone.").wait_for()
    assert await page.evaluate("() => document.activeElement.id") == "reply-box"
    # Back to the toolbar with Shift+Tab and assign the conversation to me.
    await _tab_until(page, "[data-action=assign-me]", back=True)
    await page.keyboard.press("Enter")
    await page.locator(".conv-head .assignee", has_text="Assigned to Alex Admin").wait_for()
    # The re-rendered view keeps the keyboard user's place (not thrown back to the top of the page).
    await page.wait_for_function(
        "() => document.activeElement && document.activeElement.dataset.action === 'assign-me'"
    )
    info = await page.evaluate(FOCUS)
    assert info["ring"], info
    # The shortcut works too, and the help dialog opens and closes from the keyboard.
    await page.keyboard.press("Escape")
    await page.keyboard.press("?")
    await page.locator("#shortcuts[open]").wait_for()
    await page.keyboard.press("Escape")
    await page.wait_for_function("() => !document.getElementById('shortcuts').open")


async def _unnamed_controls(page: Any) -> list[str]:
    """Form controls (as Chromium's accessibility tree computes them) that have no accessible name."""
    cdp = await page.context.new_cdp_session(page)
    tree = await cdp.send("Accessibility.getFullAXTree")
    roles = {
        "textbox",
        "combobox",
        "checkbox",
        "radio",
        "button",
        "listbox",
        "spinbutton",
        "searchbox",
        "switch",
    }
    bad = []
    for node in tree["nodes"]:
        if node.get("ignored"):
            continue
        role = (node.get("role") or {}).get("value")
        name = ((node.get("name") or {}).get("value") or "").strip()
        if role in roles and not name:
            bad.append(role)
            if "backendDOMNodeId" in node:  # say which element it is
                d = await cdp.send("DOM.describeNode", {"backendNodeId": node["backendDOMNodeId"]})
                bad[-1] += f" <{d['node']['nodeName'].lower()} {d['node'].get('attributes', [])}>"
    await cdp.detach()
    return bad


async def test_every_form_control_has_an_accessible_name(world: World, browser: Any) -> None:
    ctx = await browser.new_context(viewport={"width": 1366, "height": 820})
    login = await ctx.new_page()
    await login.goto(world.live.url + "/login")
    assert await _unnamed_controls(login) == []
    await ctx.close()
    page = await _agent(browser, world.live.url, ADMIN_EMAIL)
    await page.goto(f"{world.live.url}/c/{world.conv_id}")
    await page.locator("details.action").first.wait_for()
    # Controls inside closed boxes (transfer, snooze, labels, actions, merge) count too.
    await page.evaluate("() => document.querySelectorAll('details').forEach((d) => { d.open = true; })")
    controls = await page.locator("input:not([type=hidden]), select, textarea, button").count()
    assert controls > 30
    assert await _unnamed_controls(page) == []
    for section in ("agents", "teams", "inboxes", "account", "dead-letters"):
        await page.goto(f"{world.live.url}/admin/{section}")
        assert await _unnamed_controls(page) == [], section
