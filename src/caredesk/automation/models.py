"""Tables of automation: versioned action configuration, encrypted connector secrets, audited action runs."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from caredesk.platform.models import Base, BigId, utcnow


class AutomationConfig(Base):
    """One version of an account's connectors + actions YAML; the highest version is the active one."""

    __tablename__ = "automation_configs"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("accounts.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column()
    source: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("account_id", "version"),)


class AutomationSecret(Base):
    """A connector credential, Fernet-encrypted with a key derived from settings.secret_key."""

    __tablename__ = "automation_secrets"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    ciphertext: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("account_id", "name"),)


class ActionRun(Base):
    """Every execution (or refusal) of an action, by the bot or an agent: the audit trail and the policy
    memory."""

    __tablename__ = "action_runs"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("accounts.id", ondelete="CASCADE"))
    conversation_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="SET NULL"), nullable=True
    )
    action: Mapped[str] = mapped_column(String(100))
    actor_type: Mapped[str] = mapped_column(String(16))  # bot | agent | token
    actor_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    slots: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16))  # ok | failed | refused
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # "once per order": the policy key (e.g. the order number) a successful run uses up.
    policy_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # A retried job finds the run it already made instead of calling the business's system twice.
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_action_runs_policy", "account_id", "action", "policy_key"),
        Index("ix_action_runs_conversation", "conversation_id", "id"),
    )
