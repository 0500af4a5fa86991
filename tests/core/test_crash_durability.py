"""R3: the server is killed with SIGKILL again and again under load; every message it acknowledged is
still there after the restarts (acknowledge only after a durable write), and none is stored twice."""

from __future__ import annotations

import asyncio
import signal

import httpx
import pytest
from sqlalchemy import func, select

from caredesk.conversations.models import Message
from caredesk.services import Services
from caredesk.settings import Settings
from tests.conftest import AccountFixture, server_env, start_server

pytestmark = pytest.mark.postgres


async def test_no_acknowledged_message_lost_across_kill_9(
    settings: Settings, services: Services, account: AccountFixture
) -> None:
    env = server_env(settings)
    server = start_server(env)
    acked: set[str] = set()
    attempted: set[str] = set()
    counter = 0

    async def sender(stop: asyncio.Event, url: str) -> None:
        nonlocal counter
        async with httpx.AsyncClient(base_url=url, timeout=5) as c:
            while not stop.is_set():
                counter += 1
                mid = f"r3-{counter}"
                attempted.add(mid)
                try:
                    r = await c.post(
                        f"/api/v1/inboxes/{account.inbox_ids['api']}/inbound",
                        headers=account.auth,
                        json={
                            "id": mid,
                            "from": {"kind": "email", "value": f"c{counter % 7}@example.com"},
                            "text": f"message {mid}",
                        },
                    )
                except httpx.HTTPError:
                    continue  # the server died mid-request: not acknowledged, may or may not be stored
                if r.status_code in (200, 201):
                    acked.add(mid)

    try:
        for _round in range(3):
            stop = asyncio.Event()
            tasks = [asyncio.create_task(sender(stop, server.url)) for _ in range(6)]
            before = len(acked)
            while len(acked) < before + 60:
                await asyncio.sleep(0.02)
            server.stop(signal.SIGKILL)  # mid-flight: some requests are cut off
            stop.set()
            await asyncio.gather(*tasks)
            server = start_server(env, port=server.port)
    finally:
        server.stop()

    stored = await services.db.read(
        lambda s: set(
            s.execute(select(Message.channel_message_id).where(Message.account_id == account.id)).scalars()
        )
    )
    assert len(acked) >= 180
    assert acked - stored == set(), "acknowledged messages were lost"
    assert stored <= attempted
    per_id = await services.db.read(
        lambda s: s.execute(
            select(func.count())
            .select_from(Message)
            .where(Message.account_id == account.id)
            .group_by(Message.channel_message_id)
            .having(func.count() > 1)
        ).all()
    )
    assert per_id == []
