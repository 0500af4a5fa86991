"""R1 and R2: a redelivered message is stored once however it arrives; concurrent first messages from a
new contact open one conversation. On SQLite and (marked postgres) on PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from caredesk.services import Services
from tests.conftest import AccountFixture, post_inbound

pytestmark = pytest.mark.postgres


async def _counts(services: Services, account_id: int) -> dict[str, int]:
    def q(s: Any) -> dict[str, int]:
        one = lambda sql: s.execute(sa.text(sql), {"a": account_id}).scalar()  # noqa: E731
        return {
            "messages": one("SELECT count(*) FROM messages WHERE account_id = :a AND type = 'incoming'"),
            "conversations": one("SELECT count(*) FROM conversations WHERE account_id = :a"),
            "contacts": one("SELECT count(*) FROM contacts WHERE account_id = :a"),
        }

    return await services.db.read(q)


async def test_same_provider_id_1000_times_in_a_row_is_one_message(
    client: httpx.AsyncClient, services: Services, account: AccountFixture
) -> None:
    statuses = []
    ids = set()
    for _ in range(1000):
        r = await post_inbound(client, account, "hello once", msg_id="prov-1")
        statuses.append(r.status_code)
        ids.add(r.json()["message_id"])
    assert statuses[0] == 201 and set(statuses[1:]) == {200}
    assert len(ids) == 1
    assert await _counts(services, account.id) == {"messages": 1, "conversations": 1, "contacts": 1}


async def test_same_provider_id_50_times_concurrently_is_one_message(
    client: httpx.AsyncClient, services: Services, account: AccountFixture
) -> None:
    rs = await asyncio.gather(
        *(post_inbound(client, account, "hello at once", msg_id="prov-2") for _ in range(50))
    )
    assert all(r.status_code in (200, 201) for r in rs), [
        (r.status_code, r.text) for r in rs if r.status_code >= 300
    ]
    assert sorted(r.status_code for r in rs) == [200] * 49 + [201]
    assert len({r.json()["message_id"] for r in rs}) == 1
    assert await _counts(services, account.id) == {"messages": 1, "conversations": 1, "contacts": 1}


async def test_ten_concurrent_first_messages_from_a_new_contact_open_one_conversation(
    client: httpx.AsyncClient, services: Services, account: AccountFixture
) -> None:
    rs = await asyncio.gather(
        *(
            post_inbound(client, account, f"part {i}", msg_id=f"first-{i}", sender="new@example.com")
            for i in range(10)
        )
    )
    assert [r.status_code for r in rs] == [201] * 10, [r.text for r in rs]
    assert len({r.json()["conversation_id"] for r in rs}) == 1
    assert len({r.json()["contact_id"] for r in rs}) == 1
    assert await _counts(services, account.id) == {"messages": 10, "conversations": 1, "contacts": 1}
    conv = rs[0].json()["conversation_id"]
    r = await client.get(f"/api/v1/conversations/{conv}/messages", headers=account.auth)
    texts = [m["content"] for m in r.json()["items"] if m["type"] == "incoming"]
    assert sorted(texts) == sorted(f"part {i}" for i in range(10))
    # Each message is stored in the order it was committed: ids ascend in the conversation's timeline.
    ids = [m["id"] for m in r.json()["items"]]
    assert ids == sorted(ids)


async def test_concurrent_redeliveries_of_several_ids_store_each_once(
    client: httpx.AsyncClient, services: Services, account: AccountFixture
) -> None:
    """A provider retrying a batch while new messages arrive: 5 ids x 10 deliveries, interleaved."""
    rs = await asyncio.gather(
        *(
            post_inbound(client, account, f"m{i % 5}", msg_id=f"batch-{i % 5}", sender="b@example.com")
            for i in range(50)
        )
    )
    assert all(r.status_code in (200, 201) for r in rs)
    assert sum(r.status_code == 201 for r in rs) == 5
    assert await _counts(services, account.id) == {"messages": 5, "conversations": 1, "contacts": 1}
