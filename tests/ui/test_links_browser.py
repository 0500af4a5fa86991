""" "Possibly the same person" in a real browser (Debian's Chromium via Playwright): an agent looking at
an SMS conversation sees the suggestion appear live when the same number writes on WhatsApp, and
"Merge" brings both timelines together in the open view."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from caredesk.accounts.actions import create_api_token
from caredesk.accounts.actors import system_actor
from caredesk.accounts.models import Account, Inbox
from caredesk.conversations.inbound import Inbound, receive_inbound
from caredesk.demo.seed import ADMIN_EMAIL, DEMO_SLUG, seed_demo
from caredesk.migrate import upgrade
from caredesk.platform.db import Database
from caredesk.settings import Settings
from tests.conftest import LiveServer, server_env, start_server
from tests.ui.test_browser import _agent, _ensure_assets, _ensure_chromium, browser

pytestmark = pytest.mark.browser
__all__ = ["browser"]

NUMBER = "+4915112345678"


@dataclass
class World:
    live: LiveServer
    conv_id: int
    inbox_id: int
    token: str


@pytest.fixture
def world(settings: Settings) -> Iterator[World]:
    _ensure_assets()
    _ensure_chromium()
    db = Database(settings.database_url)
    upgrade(db)
    seed_demo(db, conversations=4)

    def setup(s: Any) -> tuple[int, int, str]:
        account_id = s.execute(select(Account.id).where(Account.slug == DEMO_SLUG)).scalar_one()
        inbox = s.execute(
            select(Inbox).where(Inbox.account_id == account_id, Inbox.channel == "api")
        ).scalar_one()
        r = receive_inbound(
            s,
            Inbound(
                account_id=account_id,
                inbox_id=inbox.id,
                identity_kind="phone",
                identity_value=NUMBER,
                contact_name="Lena Link",
                text="first by sms",
                channel_message_id="sms-1",
            ),
        )
        _tok, raw = create_api_token(s, system_actor(account_id), "links test")
        return r.conversation_id, inbox.id, raw

    conv_id, inbox_id, token = db.write_sync(setup)
    db.close()
    server = start_server({**server_env(settings), "CAREDESK_LOGIN_ATTEMPTS_PER_MINUTE": "1000"})
    yield World(server, conv_id, inbox_id, token)
    server.stop()


async def test_suggestion_appears_live_and_merge_joins_the_timelines(world: World, browser: Any) -> None:
    page = await _agent(browser, world.live.url, ADMIN_EMAIL)
    await page.goto(f"{world.live.url}/c/{world.conv_id}")
    await page.locator("#timeline", has_text="first by sms").wait_for()
    assert await page.locator("[data-testid=link-suggestion]").count() == 0
    async with httpx.AsyncClient(base_url=world.live.url) as api:
        r = await api.post(
            f"/api/v1/inboxes/{world.inbox_id}/inbound",
            headers={"authorization": f"Bearer {world.token}"},
            json={
                "id": "wa-1",
                "from": {"kind": "whatsapp", "value": NUMBER, "name": "Lena"},
                "text": "now on whatsapp",
            },
        )
        assert r.status_code == 201, r.text
    suggestion = page.locator("[data-testid=link-suggestion]")
    await suggestion.wait_for()  # live: the event re-reads the panel's block, no reload
    text = await suggestion.inner_text()
    assert "Possibly the same person as Lena" in text and "via SMS and WhatsApp" in text
    await suggestion.locator("[data-action=link-accept]").click()
    await page.locator("#timeline", has_text="now on whatsapp").wait_for()
    assert await page.locator("[data-testid=link-suggestion]").count() == 0
    timeline = await page.locator("#timeline").inner_text()
    assert timeline.index("first by sms") < timeline.index("now on whatsapp")
    identities = await page.locator(".identities").inner_text()
    assert "phone: " + NUMBER in identities and "whatsapp: " + NUMBER in identities
