"""Tables of routing: the waiting queue and the log of assignments (throughput, round robin)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from caredesk.platform.models import Base, BigId, utcnow


class QueueEntry(Base):
    """A conversation waiting for a person. Removed when it is assigned (or resolved)."""

    __tablename__ = "routing_queue"
    conversation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("accounts.id", ondelete="CASCADE"))
    team_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("teams.id", ondelete="SET NULL"), nullable=True
    )
    language: Mapped[str | None] = mapped_column(String(16), nullable=True)
    rank: Mapped[int] = mapped_column(default=1)  # 0 low, 1 normal, 2 high, 3 urgent
    reason: Mapped[str] = mapped_column(String(64), default="")
    queued_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_routing_queue_account", "account_id", "rank", "queued_at"),)


class Assignment(Base):
    __tablename__ = "routing_assignments"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("accounts.id", ondelete="CASCADE"))
    conversation_id: Mapped[int] = mapped_column(BigId, ForeignKey("conversations.id", ondelete="CASCADE"))
    agent_id: Mapped[int] = mapped_column(BigId, ForeignKey("agents.id", ondelete="CASCADE"))
    team_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    waited_seconds: Mapped[float] = mapped_column(default=0.0)
    assigned_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_routing_assignments_account", "account_id", "assigned_at"),
        Index("ix_routing_assignments_agent", "agent_id", "assigned_at"),
    )
