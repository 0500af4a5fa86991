from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from caredesk.platform.models import Base, BigId, utcnow

IDENTITY_KINDS = ("email", "phone", "whatsapp", "telegram", "messenger", "visitor", "api")


class Contact(Base):
    __tablename__ = "contacts"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(32), nullable=True)
    language: Mapped[str | None] = mapped_column(String(16), nullable=True)
    vip: Mapped[bool] = mapped_column(Boolean, default=False)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    facts: Mapped[dict[str, Any]] = mapped_column(
        default=dict
    )  # what the customer told us, reused everywhere
    labels: Mapped[list[str]] = mapped_column(default=list)
    merged_into_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_contacts_account", "account_id", "id"),
        Index("ix_contacts_account_email", "account_id", "email"),
        Index("ix_contacts_account_phone", "account_id", "phone"),
    )


class Identity(Base):
    __tablename__ = "identities"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("accounts.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(320))
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("account_id", "kind", "value"),
        Index("ix_identities_contact", "contact_id"),
    )


class ContactMerge(Base):
    """A merge, recorded with exactly what moved, so that it can be undone."""

    __tablename__ = "contact_merges"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("accounts.id", ondelete="CASCADE"))
    survivor_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id", ondelete="CASCADE"))
    merged_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id", ondelete="CASCADE"))
    moved: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    undone_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


LINK_STATUSES = ("open", "accepted", "dismissed")


class LinkSuggestion(Base):
    """Two contacts that may be one person (same phone number via SMS and WhatsApp, same email), for an
    agent to merge or dismiss. Kept once per pair, whatever its status: a dismissed pair is never
    suggested again. `contact_id` is always the lower id of the two (the pair's canonical order)."""

    __tablename__ = "contact_link_suggestions"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("accounts.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id", ondelete="CASCADE"))
    other_contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(String(300), default="")
    status: Mapped[str] = mapped_column(String(16), default="open")
    merge_id: Mapped[int | None] = mapped_column(BigId, nullable=True)  # the merge that accepted it
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)

    __table_args__ = (
        UniqueConstraint("contact_id", "other_contact_id"),
        Index("ix_contact_link_suggestions_other", "other_contact_id"),
    )
