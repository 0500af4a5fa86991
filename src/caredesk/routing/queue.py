"""An honest queue: position and an expected wait computed from current throughput, business hours
and who is online; above a configurable wait the customer is offered a callback or an email reply."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from caredesk.accounts.models import Team
from caredesk.platform.models import utcnow
from caredesk.routing.hours import next_open, parse_hours
from caredesk.routing.models import Assignment, QueueEntry
from caredesk.routing.router import account_settings, candidates, loads

THROUGHPUT_WINDOW = dt.timedelta(minutes=60)
DEFAULT_HANDLE_MINUTES = 8.0


def queue_status(
    session: Session,
    account_id: int,
    conversation_id: int,
    *,
    callback_above_minutes: float = 15.0,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    now = now or utcnow()
    entry = session.get(QueueEntry, conversation_id)
    if entry is None or entry.account_id != account_id:
        return {"queued": False}
    same_team = (
        QueueEntry.team_id == entry.team_id if entry.team_id is not None else QueueEntry.team_id.is_(None)
    )
    ahead = (
        session.execute(
            select(func.count())
            .select_from(QueueEntry)
            .where(
                QueueEntry.account_id == account_id,
                same_team,
                or_(
                    QueueEntry.rank > entry.rank,
                    (QueueEntry.rank == entry.rank)
                    & (
                        (QueueEntry.queued_at < entry.queued_at)
                        | (
                            (QueueEntry.queued_at == entry.queued_at)
                            & (QueueEntry.conversation_id < entry.conversation_id)
                        )
                    ),
                ),
            )
        ).scalar()
        or 0
    )
    position = int(ahead) + 1
    settings = account_settings(session, account_id)
    hours = parse_hours(settings)
    opens = next_open(hours, now)
    online = candidates(session, account_id, entry.team_id)
    recent = select(func.count(Assignment.id)).where(
        Assignment.account_id == account_id, Assignment.assigned_at >= now - THROUGHPUT_WINDOW
    )
    if entry.team_id is not None:
        recent = recent.where(Assignment.team_id == entry.team_id)
    served = int(session.execute(recent).scalar() or 0)
    wait: float | None
    basis: str
    if opens is None:
        wait, basis = None, "closed"
    elif opens > now:
        wait, basis = (
            (opens - now).total_seconds() / 60 + position * DEFAULT_HANDLE_MINUTES,
            "closed_until_opening",
        )
    elif not online:
        wait, basis = None, "nobody_online"
    elif served > 0:
        per_minute = served / (THROUGHPUT_WINDOW.total_seconds() / 60)
        wait, basis = position / per_minute, "throughput"
    else:
        slots = sum(a.capacity for a in online) or 1
        free = sum(
            max(0, a.capacity - n)
            for a, n in zip(online, loads(session, account_id, [a.id for a in online]).values(), strict=False)
        )
        wait, basis = (0.0 if free else position * DEFAULT_HANDLE_MINUTES / slots), "capacity"
    team = session.get(Team, entry.team_id) if entry.team_id else None
    return {
        "queued": True,
        "position": position,
        "team": team.name if team else None,
        "agents_online": len(online),
        "expected_wait_minutes": None if wait is None else round(wait, 1),
        "basis": basis,
        "opens_at": None if opens is None or opens <= now else opens.isoformat() + "Z",
        "offer_callback": wait is None or wait > callback_above_minutes,
        "priority": entry.rank,
        "reason": entry.reason,
    }


def wait_phrase(status: dict[str, Any]) -> str:
    """Plain words for the customer about the wait (never a promise we can't keep)."""
    if not status.get("queued"):
        return ""
    minutes = status.get("expected_wait_minutes")
    who = f"our {status['team']} team" if status.get("team") else "our team"
    pos = status["position"]
    if status.get("basis") == "closed_until_opening" and status.get("opens_at"):
        opens = status["opens_at"][11:16]
        text = f"We're closed right now; {who} opens again at {opens} UTC and you're number {pos} in line."
    elif minutes is None:
        text = f"Nobody from {who} is available right now; you're number {pos} in line."
    elif minutes < 1.5:
        text = f"You're number {pos} in line for {who}; someone should be with you in about a minute."
    else:
        text = f"You're number {pos} in line for {who}; the expected wait is about {round(minutes)} minutes."
    if status.get("offer_callback"):
        text += (
            " If you'd rather not wait, reply \"email me\" and we'll answer by email,"
            ' or "call me" with your number for a callback.'
        )
    return text
