"""Serving the queue costs one look per team once its agents are full, not one per waiting conversation.

Every customer message drains its account's queue on the one writer that all writes share, so a long
queue behind busy agents used to count every agent's load again for each waiting conversation and held
every other write back (customer and agent sends included) while it did."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import event, select

from caredesk.accounts.models import Agent
from caredesk.contacts.models import Contact
from caredesk.conversations.models import Conversation
from caredesk.platform.models import utcnow
from caredesk.platform.security import new_token
from caredesk.routing import router
from caredesk.routing.models import QueueEntry
from caredesk.services import Services
from tests.conftest import AccountFixture

pytestmark = pytest.mark.postgres


def _queue(s: Any, account_id: int, inbox_id: int, waiting: int) -> list[int]:
    s.add(
        Agent(
            account_id=account_id,
            email="drain@cost.test",
            name="Drain",
            capacity=1,
            availability="online",
            skills=[],
            languages=[],
        )
    )
    contact = Contact(account_id=account_id, name="c", facts={}, attributes={}, labels=[])
    s.add(contact)
    s.flush()
    base = utcnow() - dt.timedelta(minutes=10)
    ids = []
    for j in range(waiting):
        conv = Conversation(
            account_id=account_id,
            contact_id=contact.id,
            inbox_id=inbox_id,
            public_token=new_token(nbytes=15),
            custom_attributes={},
            case_brief={},
            signals={},
        )
        s.add(conv)
        s.flush()
        s.add(
            QueueEntry(
                conversation_id=conv.id,
                account_id=account_id,
                team_id=None,
                rank=1,
                queued_at=base + dt.timedelta(seconds=j),
            )
        )
        ids.append(conv.id)
    # Agents other than the one above are offline, so it is the only one with capacity.
    for a in s.execute(select(Agent).where(Agent.account_id == account_id)).scalars():
        if a.email != "drain@cost.test":
            a.availability = "offline"
    return ids


async def test_drain_stops_looking_at_a_full_team_and_still_cleans_the_queue(
    services: Services, account: AccountFixture
) -> None:
    inbox_id = next(iter(account.inbox_ids.values()))
    ids = await services.db.write(_queue, account.id, inbox_id, 30)

    def resolve_last(s: Any) -> None:
        s.get(Conversation, ids[-1]).status = "resolved"

    await services.db.write(resolve_last)

    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement.lower())

    event.listen(services.db.engine, "before_cursor_execute", count)
    try:
        placed = await services.db.write(router.drain, account.id)
    finally:
        event.remove(services.db.engine, "before_cursor_execute", count)

    # The oldest is served; the agent is then full, which is looked up twice (once with room, once
    # without), not once for each of the 28 still waiting, and those 28 are not even loaded one by one.
    assert [p.conversation_id for p in placed] == [ids[0]]
    assert len([q for q in statements if "count(conversations.id)" in q]) == 2
    assert len(statements) < 30  # about 200 when each waiting entry was loaded and its team counted

    def queued(s: Any) -> list[int]:
        return list(
            s.execute(
                select(QueueEntry.conversation_id)
                .where(QueueEntry.account_id == account.id)
                .order_by(QueueEntry.queued_at)
            ).scalars()
        )

    # Still waiting, in order; the resolved conversation's entry was removed all the same.
    assert await services.db.read(queued) == ids[1:-1]
