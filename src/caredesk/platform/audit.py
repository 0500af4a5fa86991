"""The audit log: every change made by a person or an API token, per account."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, Session, mapped_column

from caredesk.platform.models import Base, BigId, utcnow


class AuditEntry(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("accounts.id", ondelete="CASCADE"))
    actor_type: Mapped[str] = mapped_column(String(16))  # agent | token | system | contact
    actor_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_audit_account_id", "account_id", "id"),)


def audit(
    session: Session,
    account_id: int,
    actor: tuple[str, int | None],
    action: str,
    target_type: str,
    target_id: int | None,
    data: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditEntry(
            account_id=account_id,
            actor_type=actor[0],
            actor_id=actor[1],
            action=action,
            target_type=target_type,
            target_id=target_id,
            data=data or {},
        )
    )
