from __future__ import annotations

from typing import Any

import httpx
import pytest

from caredesk.accounts.models import Agent
from tests.automation.conftest import Desk

# The whole module runs on PostgreSQL too (make test), not only on SQLite.
pytestmark = pytest.mark.postgres


async def test_queue_position_wait_and_callback_offer(desk: Desk) -> None:
    # Nobody online: honest about it, and offers email/callback instead of waiting.
    first = await desk.say("I want a person", sender="a@mail.example")
    second = await desk.say("human please", sender="b@mail.example")
    msg = (await desk.bot_messages(second["conversation_id"]))[-1]
    assert "Nobody from our team is available right now; you're number 2 in line." in msg
    assert "email me" in msg
    q = (
        await desk.client.get(
            f"/api/v1/conversations/{second['conversation_id']}/queue", headers=desk.account.auth
        )
    ).json()
    assert (
        q["queued"] and q["position"] == 2 and q["offer_callback"] is True and q["basis"] == "nobody_online"
    )
    await desk.say("email me please", sender="b@mail.example")
    assert "We'll answer by email" in (await desk.bot_messages(second["conversation_id"]))[-1]
    # Jonas comes online: the sweep serves the queue in order.
    await desk.set_online("jonas", capacity=1)
    r = await desk.client.post("/api/v1/routing/sweep", headers=desk.account.auth)
    assert r.status_code == 200 and r.json()["assigned"] == [first["conversation_id"]]
    assert (await desk.conversation(first["conversation_id"])).assignee_id == desk.agents["jonas"]
    q = (
        await desk.client.get(
            f"/api/v1/conversations/{second['conversation_id']}/queue", headers=desk.account.auth
        )
    ).json()
    assert q["position"] == 1 and q["agents_online"] == 1 and q["basis"] == "throughput"


async def test_offline_agent_conversations_are_rerouted(desk: Desk) -> None:
    await desk.set_online("jonas", "maya")
    r = await desk.say("talk to a person please", sender="c@mail.example")
    cid = r["conversation_id"]
    first = (await desk.conversation(cid)).assignee_id
    assert first is not None

    def offline(s: Any) -> None:
        s.get(Agent, first).availability = "offline"

    await desk.services.db.write(offline)
    out = (await desk.client.post("/api/v1/routing/sweep", headers=desk.account.auth)).json()
    assert out["requeued"] == [cid] and out["assigned"] == [cid]
    now = (await desk.conversation(cid)).assignee_id
    assert now is not None and now != first


async def test_routing_endpoints_are_scoped_to_the_account(
    desk: Desk, other_account: Any, client: httpx.AsyncClient
) -> None:
    r = await desk.say("I want a human", sender="d@mail.example")
    cid = r["conversation_id"]
    for path in (
        f"/api/v1/conversations/{cid}/queue",
        f"/api/v1/conversations/{cid}/sla",
        f"/api/v1/conversations/{cid}/actions",
    ):
        assert (await client.get(path, headers=other_account.auth)).status_code == 404
    run = await client.post(
        f"/api/v1/conversations/{cid}/actions/order_status",
        json={"slots": {"order_number": "TH-10001"}},
        headers=other_account.auth,
    )
    assert run.status_code == 404
    assert (await client.get("/api/v1/routing/queue", headers=other_account.auth)).json()["items"] == []
