"""Assigning conversations that need a person.

Team by intent (via skill) and language; agent among the team's members who are online, active and
below capacity: least loaded first, the one assigned longest ago breaks ties (round robin), then id.
The queue is served by priority (urgent > high > normal > low), oldest first within a priority.

Correct under concurrency: loads are counted inside the write transaction that assigns. SQLite has one
writer, so the count cannot go stale; on PostgreSQL the candidate agents' rows are locked (in id order,
so two routers never deadlock) before counting.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from caredesk.accounts.actors import Actor
from caredesk.accounts.models import Account, Agent, Team, TeamMember
from caredesk.conversations.actions import assign
from caredesk.conversations.models import Conversation
from caredesk.platform.events import record_event
from caredesk.platform.models import utcnow
from caredesk.routing.models import Assignment, QueueEntry

RANK = {"low": 0, "normal": 1, "high": 2, "urgent": 3}
PRIORITY = {v: k for k, v in RANK.items()}
LOAD_STATUSES = ("open", "pending")


def router_actor(account_id: int) -> Actor:
    return Actor(account_id=account_id, kind="system", role="admin", name="Routing")


@dataclass(frozen=True)
class Placement:
    conversation_id: int
    agent_id: int | None
    agent_name: str | None
    team_id: int | None
    team_name: str | None


def pick_team(session: Session, account_id: int, skill: str | None, language: str | None) -> Team | None:
    """The team whose skills include `skill`; among several, one with a member speaking the language."""
    if not skill:
        return None
    teams = [
        t
        for t in session.execute(
            select(Team).where(Team.account_id == account_id).order_by(Team.id)
        ).scalars()
        if skill in (t.skills or [])
    ]
    if len(teams) <= 1 or not language:
        return teams[0] if teams else None
    for t in teams:
        langs = session.execute(
            select(Agent.languages)
            .join(TeamMember, TeamMember.agent_id == Agent.id)
            .where(TeamMember.team_id == t.id)
        ).scalars()
        if any(language in (ls or []) for ls in langs):
            return t
    return teams[0]


def loads(session: Session, account_id: int, agent_ids: list[int]) -> dict[int, int]:
    out = dict.fromkeys(agent_ids, 0)
    if agent_ids:
        for aid, n in session.execute(
            select(Conversation.assignee_id, func.count(Conversation.id))
            .where(
                Conversation.account_id == account_id,
                Conversation.assignee_id.in_(agent_ids),
                Conversation.status.in_(LOAD_STATUSES),
            )
            .group_by(Conversation.assignee_id)
        ):
            if aid is not None:
                out[int(aid)] = int(n)
    return out


def _last_assigned(session: Session, agent_ids: list[int]) -> dict[int, dt.datetime]:
    if not agent_ids:
        return {}
    rows = session.execute(
        select(Assignment.agent_id, func.max(Assignment.assigned_at))
        .where(Assignment.agent_id.in_(agent_ids))
        .group_by(Assignment.agent_id)
    )
    return {int(a): t for a, t in rows}


def candidates(session: Session, account_id: int, team_id: int | None) -> list[Agent]:
    """Online, active agents who may take this team's conversations (all agents when the team has no
    members)."""
    q = select(Agent).where(
        Agent.account_id == account_id, Agent.active.is_(True), Agent.availability == "online"
    )
    if team_id is not None:
        members = select(TeamMember.agent_id).where(TeamMember.team_id == team_id)
        if session.execute(members.limit(1)).first() is not None:
            q = q.where(Agent.id.in_(members))
    q = q.order_by(Agent.id)
    if session.get_bind().dialect.name == "postgresql":
        q = q.with_for_update()
    return list(session.execute(q).scalars())


def choose_agent(
    session: Session, account_id: int, team_id: int | None, language: str | None
) -> Agent | None:
    agents = candidates(session, account_id, team_id)
    if not agents:
        return None
    ids = [a.id for a in agents]
    load = loads(session, account_id, ids)
    last = _last_assigned(session, ids)
    free = [a for a in agents if load[a.id] < a.capacity]
    if not free:
        return None
    epoch = dt.datetime(1970, 1, 1)

    def key(a: Agent) -> tuple[bool, int, dt.datetime, int]:
        speaks = not language or not a.languages or language in a.languages
        return (not speaks, load[a.id], last.get(a.id, epoch), a.id)

    return min(free, key=key)


def enqueue(
    session: Session,
    conv: Conversation,
    *,
    reason: str,
    rank: int | None = None,
    skill: str | None = None,
    language: str | None = None,
) -> QueueEntry:
    """Put a conversation in the queue for a person (idempotent; a higher rank raises its priority)."""
    entry = session.get(QueueEntry, conv.id)
    if conv.team_id is None and skill:
        team = pick_team(session, conv.account_id, skill, language)
        if team is not None:
            conv.team_id = team.id
    want = max(rank if rank is not None else 1, RANK.get(conv.priority, 1))
    if entry is None:
        entry = QueueEntry(
            conversation_id=conv.id,
            account_id=conv.account_id,
            team_id=conv.team_id,
            language=language,
            rank=want,
            reason=reason[:64],
            queued_at=utcnow(),
        )
        session.add(entry)
    else:
        entry.rank = max(entry.rank, want)
        entry.team_id = conv.team_id
    if RANK.get(conv.priority, 1) < entry.rank:
        conv.priority = PRIORITY[entry.rank]
    session.flush()
    return entry


def try_assign(session: Session, conversation_id: int) -> Placement | None:
    """Assign a queued conversation if an eligible agent has capacity now; else leave it queued.

    If conversations of the same team wait ahead of it (higher priority, or same priority and older),
    the queue is served in order instead, so a newcomer never jumps the line."""
    entry = session.get(QueueEntry, conversation_id)
    if entry is None:
        return None
    same_team = (
        QueueEntry.team_id == entry.team_id if entry.team_id is not None else QueueEntry.team_id.is_(None)
    )
    ahead = session.execute(
        select(QueueEntry.conversation_id)
        .where(
            QueueEntry.account_id == entry.account_id,
            same_team,
            QueueEntry.conversation_id != entry.conversation_id,
            (QueueEntry.rank > entry.rank)
            | ((QueueEntry.rank == entry.rank) & (QueueEntry.queued_at <= entry.queued_at)),
        )
        .limit(1)
    ).first()
    if ahead is not None:
        return next(
            (p for p in drain(session, entry.account_id) if p.conversation_id == conversation_id), None
        )
    return _assign_entry(session, conversation_id)


def _assign_entry(
    session: Session, conversation_id: int, full: set[int | None] | None = None
) -> Placement | None:
    """`full`: teams found without free capacity earlier in the same transaction (see `drain`)."""
    entry = session.get(QueueEntry, conversation_id)
    conv = session.get(Conversation, conversation_id)
    if entry is None or conv is None:
        return None
    if conv.status == "resolved" or conv.assignee_id is not None:
        session.delete(entry)
        session.flush()
        return None
    if full is not None and entry.team_id in full:
        return None
    agent = choose_agent(session, conv.account_id, entry.team_id, entry.language)
    if agent is None:
        if full is not None:
            full.add(entry.team_id)
        return None
    now = utcnow()
    assign(session, router_actor(conv.account_id), conv.id, agent.id, entry.team_id)
    session.add(
        Assignment(
            account_id=conv.account_id,
            conversation_id=conv.id,
            agent_id=agent.id,
            team_id=entry.team_id,
            waited_seconds=max(0.0, (now - entry.queued_at).total_seconds()),
            assigned_at=now,
        )
    )
    session.delete(entry)
    session.flush()
    team = session.get(Team, entry.team_id) if entry.team_id else None
    record_event(
        session,
        conv.account_id,
        "routing.assigned",
        {
            "conversation_id": conv.id,
            "agent_id": agent.id,
            "team_id": entry.team_id,
            "reason": entry.reason,
            "case_brief": conv.case_brief,
        },
        conversation_id=conv.id,
        contact_id=conv.contact_id,
    )
    return Placement(conv.id, agent.id, agent.name, entry.team_id, team.name if team else None)


def drain(session: Session, account_id: int) -> list[Placement]:
    """Serve the queue in priority order while anyone eligible has capacity.

    Within this transaction a team's free capacity only shrinks (each placement adds load; the candidates
    and their capacities don't change), so once a team has no free agent its remaining entries are
    skipped instead of counting every agent's load again for each of them: a long queue behind busy
    agents costs one look per team, not one per waiting conversation, on the writer every message shares.
    """
    placed: list[Placement] = []
    full: set[int | None] = set()
    entries = list(
        session.execute(
            select(
                QueueEntry.conversation_id, QueueEntry.team_id, Conversation.status, Conversation.assignee_id
            )
            .join(Conversation, Conversation.id == QueueEntry.conversation_id, isouter=True)
            .where(QueueEntry.account_id == account_id)
            .order_by(QueueEntry.rank.desc(), QueueEntry.queued_at, QueueEntry.conversation_id)
        )
    )
    for cid, team_id, status, assignee_id in entries:
        # Only this loop changes these rows, once each: an entry still to clean up (its conversation
        # resolved or assigned elsewhere) is always visited; one of a full team is not even loaded.
        if team_id in full and status != "resolved" and assignee_id is None:
            continue
        p = _assign_entry(session, cid, full)
        if p is not None:
            placed.append(p)
    return placed


def requeue_offline(session: Session, account_id: int) -> list[int]:
    """Conversations of agents who went offline go back to the queue, ahead of newer ones (original wait
    kept)."""
    rows = list(
        session.execute(
            select(Conversation)
            .join(Agent, Agent.id == Conversation.assignee_id)
            .where(
                Conversation.account_id == account_id,
                Conversation.status == "open",
                (Agent.availability == "offline") | Agent.active.is_(False),
            )
        ).scalars()
    )
    actor = router_actor(account_id)
    out = []
    for conv in rows:
        agent_id = conv.assignee_id
        assign(session, actor, conv.id, None)
        entry = enqueue(session, conv, reason="agent_offline")
        entry.queued_at = conv.waiting_since or conv.created_at
        record_event(
            session,
            account_id,
            "routing.requeued",
            {"conversation_id": conv.id, "from_agent_id": agent_id},
            conversation_id=conv.id,
            contact_id=conv.contact_id,
        )
        out.append(conv.id)
    session.flush()
    return out


def dequeue(session: Session, conversation_id: int) -> None:
    session.execute(delete(QueueEntry).where(QueueEntry.conversation_id == conversation_id))


def account_settings(session: Session, account_id: int) -> dict[str, Any]:
    acc = session.get(Account, account_id)
    return dict(acc.settings) if acc else {}
