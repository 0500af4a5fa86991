from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.routing import Mount

from caredesk.accounts.actions import create_agent, create_team, update_inbox
from caredesk.accounts.actors import system_actor
from caredesk.accounts.models import Agent
from caredesk.automation.demo import install_demo_automation
from caredesk.conversations.models import Conversation, Message
from caredesk.demo.shop_api import DemoShop, create_shop_app
from caredesk.services import Services
from tests.automation.keyword_understanding import KeywordUnderstanding
from tests.conftest import AccountFixture, post_inbound


@pytest.fixture
def shop(services: Services) -> DemoShop:
    shop = DemoShop()
    # The shop served as the real server serves it (under /demo-shop/api), through httpx's ASGI transport.
    host = Starlette(routes=[Mount("/demo-shop/api", app=create_shop_app(shop))])
    services.extras["connector_transports"] = {"shop": httpx.ASGITransport(app=host)}
    return shop


@pytest.fixture
def understanding(services: Services) -> KeywordUnderstanding:
    u = KeywordUnderstanding()
    services.extras["understander"] = u
    return u


@dataclass
class Desk:
    """The demo business's care setup on a test account: automation on the chat inbox, teams, agents."""

    services: Services
    client: httpx.AsyncClient
    account: AccountFixture
    shop: DemoShop
    agents: dict[str, int]
    teams: dict[str, int]

    async def say(
        self, text: str, *, sender: str = "anna@mail.example", channel: str = "webchat", kind: str = "email"
    ) -> dict[str, Any]:
        r = await post_inbound(self.client, self.account, text, sender=sender, kind=kind, channel=channel)
        assert r.status_code in (200, 201), r.text
        assert self.services.worker is not None
        await self.services.worker.run_until_idle()
        return dict(r.json())

    async def bot_messages(self, conversation_id: int) -> list[str]:
        def r(s: Any) -> list[str]:
            return list(
                s.execute(
                    select(Message.content)
                    .where(Message.conversation_id == conversation_id, Message.sender_type == "bot")
                    .order_by(Message.id)
                ).scalars()
            )

        return await self.services.db.read(r)

    async def conversation(self, conversation_id: int) -> Conversation:
        return await self.services.db.read(lambda s: s.get(Conversation, conversation_id))

    async def set_online(self, *names: str, capacity: int | None = None) -> None:
        def w(s: Any) -> None:
            for n in names:
                a = s.get(Agent, self.agents[n])
                a.availability = "online"
                if capacity is not None:
                    a.capacity = capacity

        await self.services.db.write(w)


@pytest.fixture
async def desk(
    services: Services,
    client: httpx.AsyncClient,
    account: AccountFixture,
    shop: DemoShop,
    understanding: KeywordUnderstanding,
) -> Desk:
    return await make_desk(services, client, account, shop)


async def make_desk(
    services: Services, client: httpx.AsyncClient, account: AccountFixture, shop: DemoShop
) -> Desk:
    def w(s: Any) -> tuple[dict[str, int], dict[str, int]]:
        actor = system_actor(account.id)
        update_inbox(s, actor, account.inbox_ids["webchat"], {"automation": True})
        update_inbox(s, actor, account.inbox_ids["email"], {"automation": True})
        agents = {
            "jonas": create_agent(
                s,
                actor,
                email="jonas@alpha.test",
                name="Jonas Weber",
                skills=["orders"],
                languages=["en", "de"],
                capacity=3,
            ).id,
            "priya": create_agent(
                s,
                actor,
                email="priya@alpha.test",
                name="Priya Raman",
                skills=["refunds"],
                languages=["en"],
                capacity=3,
            ).id,
            "maya": create_agent(
                s,
                actor,
                email="maya@alpha.test",
                name="Maya Okafor",
                role="supervisor",
                skills=["refunds"],
                capacity=3,
            ).id,
        }
        teams = {
            "orders": create_team(
                s, actor, "Orders & Delivery", skills=["orders"], agent_ids=[agents["jonas"]]
            )[0].id,
            "refunds": create_team(
                s,
                actor,
                "Returns & Refunds",
                skills=["refunds", "returns"],
                agent_ids=[agents["priya"], agents["maya"]],
            )[0].id,
            "care": create_team(
                s, actor, "Customer Care", skills=["account", "billing"], agent_ids=[agents["maya"]]
            )[0].id,
        }
        install_demo_automation(s, account.id, services.settings.secret_key)
        return agents, teams

    agents, teams = await services.db.write(w)
    return Desk(services, client, account, shop, agents, teams)


Say = Callable[[str], Awaitable[dict[str, Any]]]
