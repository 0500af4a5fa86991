"""The bot's handoff seen from the workspace, in a real browser: a customer on /demo asks for a person;
the agent it goes to gets a notification, opens the conversation, sees the case brief and the facts
(the order number the customer gave the bot), and runs an action from the customer panel; the result
is shown and the run is audited."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select, update

from caredesk.accounts.models import Agent
from caredesk.automation.models import ActionRun
from caredesk.automation.secrets import set_secret
from caredesk.demo.seed import seed_demo
from caredesk.demo.shop_api import DEMO_API_KEY
from caredesk.migrate import upgrade
from caredesk.platform.db import Database
from caredesk.settings import Settings
from tests.conftest import LiveServer, free_port, server_env, start_server
from tests.ui.test_browser import MAYA, _agent, _customer, _ensure_assets, _ensure_chromium, _say, browser

pytestmark = pytest.mark.browser
__all__ = ["browser"]  # the Playwright browser fixture, shared with test_browser.py


@pytest.fixture
def handoff_live(settings: Settings) -> Iterator[tuple[LiveServer, Database]]:
    _ensure_assets()
    _ensure_chromium()
    db = Database(settings.database_url)
    upgrade(db)
    info = seed_demo(db, conversations=12)

    def only_maya(s: Any) -> None:  # one agent online, with room: the handoff goes to her
        acc = info["account_id"]
        s.execute(update(Agent).where(Agent.account_id == acc).values(availability="offline"))
        s.execute(
            update(Agent)
            .where(Agent.account_id == acc, Agent.email == MAYA)
            .values(availability="online", capacity=50)
        )
        # seed_demo encrypts the shop's key with this process's settings; the server has the test's key.
        set_secret(s, acc, settings.secret_key, "shop_api_key", DEMO_API_KEY)

    db.write_sync(only_maya)
    port = free_port()
    env = {
        **server_env(settings),
        "CAREDESK_LOGIN_ATTEMPTS_PER_MINUTE": "1000",
        "CAREDESK_PUBLIC_URL": f"http://127.0.0.1:{port}",  # the demo shop connector calls this server
    }
    server = start_server(env, port=port)
    yield server, db
    server.stop()
    db.close()


async def test_handoff_notification_brief_and_agent_action(
    handoff_live: tuple[LiveServer, Database], browser: Any
) -> None:
    live, db = handoff_live
    url = live.url
    maya = await _agent(browser, url, MAYA)
    _customer_page, frame = await _customer(browser, url)

    await _say(frame, "Where is my order TH-10001? I want to talk to a person please")
    # The bot says who takes over; the agent is told on screen.
    await frame.locator(".cd-theirs .cd-text", has_text="automated assistant").wait_for()
    toast = maya.locator("#toast", has_text="Handed over to you")
    await toast.wait_for()
    m = re.search(r"#(\d+)", await toast.inner_text())
    assert m is not None
    conv_id = int(m.group(1))

    await maya.goto(f"{url}/c/{conv_id}")
    brief = maya.locator("[data-testid=case-brief]")
    await brief.wait_for()
    text = await brief.inner_text()
    assert "TH-10001" in text and "asked for a person" in text.lower()

    # The order number is prefilled in the panel's action; the agent runs the order lookup.
    action = maya.locator("details.action[data-action-name=order_status]")
    await action.locator("summary").click()
    assert await action.locator("input[name='slot.order_number']").input_value() == "TH-10001"
    await maya.click("[data-testid=action-run-order_status]")
    result = maya.locator("[data-testid=action-result]")
    await result.wait_for()
    shown = await result.inner_text()
    assert "Order status: ok" in shown and "TH-10001" in shown
    await maya.locator("[data-testid=action-runs]", has_text="order_status: ok · agent").wait_for()
    await maya.locator("#timeline", has_text="ran Order status: ok").wait_for()

    runs = db.read_sync(
        lambda s: [
            (r.action, r.status, r.actor_type)
            for r in s.execute(select(ActionRun).where(ActionRun.conversation_id == conv_id)).scalars()
        ]
    )
    assert ("order_status", "ok", "agent") in runs
