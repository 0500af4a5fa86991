"""Domain events: stored in the same transaction as the change, published after commit.

Each account is one stream with a dense, increasing `seq`. The sequence is taken from a counter row
(`event_streams`) that the transaction updates, so on PostgreSQL two transactions of one account
are ordered by that row lock: a committed seq N+1 implies seq N is committed too. That is what lets
a reconnecting client ask for "everything after N" and get no gap and no duplicate.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ForeignKey, Index, String, delete, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from caredesk.platform.db import SQL, pending_outcome, raw
from caredesk.platform.models import Base, BigId, utcnow


class EventStream(Base):
    __tablename__ = "event_streams"
    account_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    last_seq: Mapped[int] = mapped_column(default=0)


class EventRow(Base):
    __tablename__ = "events"
    account_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    type: Mapped[str] = mapped_column(String(64))
    conversation_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    contact_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_events_conversation", "account_id", "conversation_id", "seq"),)


@dataclass(frozen=True, slots=True)
class Event:
    account_id: int
    seq: int
    type: str
    data: dict[str, Any]
    conversation_id: int | None = None
    contact_id: int | None = None
    created_at: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.seq,
            "type": self.type,
            "conversation_id": self.conversation_id,
            "contact_id": self.contact_id,
            "created_at": self.created_at,
            "data": self.data,
        }


_OPEN_STREAM = SQL(
    "INSERT INTO event_streams (account_id, last_seq) VALUES (:a, 0) ON CONFLICT (account_id) DO NOTHING"
)


def open_stream(session: Session, account_id: int) -> None:
    raw(session).execute(_OPEN_STREAM, {"a": account_id})


_NEXT_SEQ = SQL("UPDATE event_streams SET last_seq = last_seq + 1 WHERE account_id = :a RETURNING last_seq")
_INSERT = SQL(
    "INSERT INTO events (account_id, seq, type, conversation_id, contact_id, data, created_at) "
    "VALUES (:a, :seq, :type, :cv, :ct, :data, :at)"
)


def record_event(
    session: Session,
    account_id: int,
    type: str,
    data: dict[str, Any],
    *,
    conversation_id: int | None = None,
    contact_id: int | None = None,
) -> Event:
    r = raw(session)
    row = r.one(_NEXT_SEQ, {"a": account_id})
    if row is None:
        raise LookupError(f"no event stream for account {account_id}")
    seq = int(row[0])
    now = utcnow()
    r.execute(
        _INSERT,
        {
            "a": account_id,
            "seq": seq,
            "type": type,
            "cv": conversation_id,
            "ct": contact_id,
            "data": r.json(data),
            "at": r.ts(now),
        },
    )
    ev = Event(account_id, seq, type, data, conversation_id, contact_id, now.isoformat() + "Z")
    pending_outcome(session).events.append(ev)
    return ev


def events_after(session: Session, account_id: int, after: int, limit: int = 1000) -> list[Event]:
    rows = session.execute(
        select(EventRow)
        .where(EventRow.account_id == account_id, EventRow.seq > after)
        .order_by(EventRow.seq)
        .limit(limit)
    ).scalars()
    return [
        Event(
            r.account_id,
            r.seq,
            r.type,
            r.data,
            r.conversation_id,
            r.contact_id,
            r.created_at.isoformat() + "Z",
        )
        for r in rows
    ]


def stream_bounds(session: Session, account_id: int) -> tuple[int, int]:
    """(oldest retained seq, last seq) of an account's stream; (0, 0) when empty."""
    last = session.execute(select(EventStream.last_seq).where(EventStream.account_id == account_id)).scalar()
    oldest = session.execute(select(func.min(EventRow.seq)).where(EventRow.account_id == account_id)).scalar()
    return (oldest or 0, last or 0)


def prune_events(session: Session, account_id: int, keep: int) -> int:
    last = (
        session.execute(select(EventStream.last_seq).where(EventStream.account_id == account_id)).scalar()
        or 0
    )
    res = session.execute(
        delete(EventRow).where(EventRow.account_id == account_id, EventRow.seq <= last - keep)
    )
    return int(res.rowcount or 0)  # type: ignore[attr-defined]
