"""Property-based tests of routing (hypothesis): capacity never exceeded, nothing left waiting while an
eligible agent has capacity, priority order respected. Each example runs on a real database through
the same write path as production (Database.write), including concurrent routers."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select

from caredesk.accounts.models import Agent, Team, TeamMember
from caredesk.contacts.models import Contact
from caredesk.conversations.models import Conversation
from caredesk.platform.models import utcnow
from caredesk.platform.security import new_token
from caredesk.routing import router
from caredesk.routing.models import Assignment, QueueEntry
from caredesk.services import Services
from tests.conftest import AccountFixture

# The whole module runs on PostgreSQL too (make test), not only on SQLite.
pytestmark = pytest.mark.postgres

agent_st = st.fixed_dictionaries(
    {
        "capacity": st.integers(0, 3),
        "online": st.booleans(),
        "team": st.sampled_from([0, 1, None]),
        "load": st.integers(0, 3),
    }
)
conv_st = st.fixed_dictionaries({"team": st.sampled_from([0, 1, None]), "rank": st.integers(0, 3)})
world_st = st.tuples(st.lists(agent_st, min_size=1, max_size=6), st.lists(conv_st, min_size=1, max_size=14))


def _build(
    s: Any, account_id: int, inbox_id: int, agents: list[dict[str, Any]], convs: list[dict[str, Any]]
) -> dict[str, Any]:
    for table in (Assignment, QueueEntry, Conversation, TeamMember, Team, Contact):
        s.execute(
            delete(table).where(table.account_id == account_id)
            if hasattr(table, "account_id")
            else delete(table)
        )
    s.execute(delete(Agent).where(Agent.account_id == account_id, Agent.email.like("p%@prop.test")))
    teams = [Team(account_id=account_id, name=f"T{i}", skills=[]) for i in range(2)]
    s.add_all(teams)
    contact = Contact(account_id=account_id, name="c", facts={}, attributes={}, labels=[])
    s.add(contact)
    s.flush()
    agent_rows = []
    for i, a in enumerate(agents):
        row = Agent(
            account_id=account_id,
            email=f"p{i}@prop.test",
            name=f"P{i}",
            capacity=a["capacity"],
            availability="online" if a["online"] else "offline",
            skills=[],
            languages=[],
        )
        s.add(row)
        s.flush()
        if a["team"] is not None:
            s.add(TeamMember(team_id=teams[a["team"]].id, agent_id=row.id))
        agent_rows.append(row)
        for _ in range(a["load"]):  # existing open conversations (may exceed a capacity lowered since)
            s.add(
                Conversation(
                    account_id=account_id,
                    contact_id=contact.id,
                    inbox_id=inbox_id,
                    public_token=new_token(nbytes=15),
                    assignee_id=row.id,
                    custom_attributes={},
                    case_brief={},
                    signals={},
                )
            )
    s.flush()
    base = utcnow() - dt.timedelta(minutes=100)
    ids = []
    for j, c in enumerate(convs):
        conv = Conversation(
            account_id=account_id,
            contact_id=contact.id,
            inbox_id=inbox_id,
            public_token=new_token(nbytes=15),
            custom_attributes={},
            case_brief={},
            signals={},
            team_id=teams[c["team"]].id if c["team"] is not None else None,
        )
        s.add(conv)
        s.flush()
        s.add(
            QueueEntry(
                conversation_id=conv.id,
                account_id=account_id,
                team_id=conv.team_id,
                rank=c["rank"],
                queued_at=base + dt.timedelta(seconds=j),
            )
        )
        ids.append(conv.id)
    s.flush()
    return {
        "agents": [a.id for a in agent_rows],
        "convs": ids,
        "before": router.loads(s, account_id, [a.id for a in agent_rows]),
    }


def _check(s: Any, account_id: int, built: dict[str, Any]) -> None:
    agents = {a.id: a for a in s.execute(select(Agent).where(Agent.id.in_(built["agents"]))).scalars()}
    load = router.loads(s, account_id, list(agents))
    # 1. Capacity is never exceeded by routing (an agent already above a lowered capacity gets nothing new).
    for aid, a in agents.items():
        assert load[aid] <= max(a.capacity, built["before"][aid]), (aid, load[aid], a.capacity)
        if built["before"][aid] >= a.capacity:
            assert load[aid] == built["before"][aid]
    waiting = list(s.execute(select(QueueEntry).where(QueueEntry.account_id == account_id)).scalars())
    assigned = {
        c.id: c
        for c in s.execute(
            select(Conversation).where(
                Conversation.id.in_(built["convs"]), Conversation.assignee_id.is_not(None)
            )
        ).scalars()
    }
    members: dict[int | None, set[int]] = {}
    for team_id, agent_id in s.execute(select(TeamMember.team_id, TeamMember.agent_id)):
        members.setdefault(team_id, set()).add(agent_id)

    def eligible(team_id: int | None) -> set[int]:
        pool = members.get(team_id) if team_id is not None and members.get(team_id) else set(agents)
        return {a for a in pool if agents[a].availability == "online" and load[a] < agents[a].capacity}

    # 2. Nothing waits while someone eligible has capacity.
    for e in waiting:
        assert not eligible(e.team_id), (e.conversation_id, e.team_id, eligible(e.team_id))
    # 3. Priority: no lower-priority conversation was served while a higher one of the same team still waits.
    assigned_ranks: dict[int | None, list[int]] = {}
    ranks = {e.conversation_id: e.rank for e in waiting}
    for cid, conv in assigned.items():
        assigned_ranks.setdefault(conv.team_id, []).append(built["rank"][cid])
    for e in waiting:
        assert all(r >= ranks[e.conversation_id] for r in assigned_ranks.get(e.team_id, [])), (
            "priority inverted"
        )
    # Every assignment went to an online member of the right team (or anyone when the team has no members).
    for conv in assigned.values():
        pool = (
            members.get(conv.team_id)
            if conv.team_id is not None and members.get(conv.team_id)
            else set(agents)
        )
        assert conv.assignee_id in pool and agents[conv.assignee_id].availability == "online"


def _ranks(convs: list[dict[str, Any]], ids: list[int]) -> dict[int, int]:
    return {cid: c["rank"] for cid, c in zip(ids, convs, strict=True)}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(world=world_st)
async def test_drain_respects_capacity_priority_and_leaves_nobody_waiting(
    services: Services, account: AccountFixture, world: tuple[list[dict[str, Any]], list[dict[str, Any]]]
) -> None:
    agents, convs = world
    built = await services.db.write(_build, account.id, account.inbox_ids["api"], agents, convs)
    built["rank"] = _ranks(convs, built["convs"])
    await services.db.write(router.drain, account.id)
    await services.db.read(_check, account.id, built)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(world=world_st)
async def test_concurrent_routers_never_exceed_capacity(
    services: Services, account: AccountFixture, world: tuple[list[dict[str, Any]], list[dict[str, Any]]]
) -> None:
    """Many routers at once (each conversation routed in its own transaction, all submitted together)."""
    agents, convs = world
    built = await services.db.write(_build, account.id, account.inbox_ids["api"], agents, convs)
    built["rank"] = _ranks(convs, built["convs"])
    await asyncio.gather(*(services.db.write(router.try_assign, cid) for cid in built["convs"]))
    await services.db.write(router.drain, account.id)  # a later sweep serves what a lost race left waiting
    await services.db.read(_check, account.id, built)


async def test_least_loaded_then_round_robin(services: Services, account: AccountFixture) -> None:
    agents = [{"capacity": 5, "online": True, "team": None, "load": 0} for _ in range(3)]
    convs = [{"team": None, "rank": 1} for _ in range(6)]
    built = await services.db.write(_build, account.id, account.inbox_ids["api"], agents, convs)
    placements = []
    for cid in built["convs"]:
        placements.append(await services.db.write(router.try_assign, cid))
    order = [p.agent_id for p in placements]
    assert order == built["agents"] * 2  # equal loads: each agent in turn

    def count(s: Any) -> int:
        return int(
            s.execute(
                select(func.count()).select_from(Assignment).where(Assignment.account_id == account.id)
            ).scalar()
            or 0
        )

    assert await services.db.read(count) == 6
