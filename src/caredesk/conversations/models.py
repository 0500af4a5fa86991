from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from caredesk.platform.models import Base, BigId, utcnow

STATUSES = ("open", "pending", "snoozed", "resolved")
MESSAGE_TYPES = ("incoming", "outgoing", "activity", "note")
PRIORITIES = ("low", "normal", "high", "urgent")
DELIVERY = ("received", "queued", "sent", "delivered", "read", "failed")


class Conversation(Base):
    __tablename__ = "conversations"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("accounts.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id", ondelete="CASCADE"))
    inbox_id: Mapped[int] = mapped_column(BigId, ForeignKey("inboxes.id", ondelete="CASCADE"))
    # Unguessable id for email reply addresses (reply+<token>@) and widget links.
    public_token: Mapped[str] = mapped_column(String(40), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="open")
    priority: Mapped[str] = mapped_column(String(16), default="normal")
    subject: Mapped[str] = mapped_column(String(500), default="")
    assignee_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("agents.id", ondelete="SET NULL"), nullable=True
    )
    team_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("teams.id", ondelete="SET NULL"), nullable=True
    )
    custom_attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    case_brief: Mapped[dict[str, Any]] = mapped_column(default=dict)
    signals: Mapped[dict[str, Any]] = mapped_column(default=dict)
    snoozed_until: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    waiting_since: Mapped[dt.datetime | None] = mapped_column(nullable=True)  # customer waiting for us since
    first_reply_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    last_activity_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    message_count: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_conversations_account_status", "account_id", "status", "last_activity_at"),
        Index("ix_conversations_contact", "contact_id", "inbox_id", "status"),
        Index("ix_conversations_assignee", "account_id", "assignee_id", "status"),
    )


class ConversationLabel(Base):
    __tablename__ = "conversation_labels"
    conversation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    label: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("accounts.id", ondelete="CASCADE"))

    __table_args__ = (Index("ix_conversation_labels_account_label", "account_id", "label"),)


class Message(Base):
    __tablename__ = "messages"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("accounts.id", ondelete="CASCADE"))
    conversation_id: Mapped[int] = mapped_column(BigId, ForeignKey("conversations.id", ondelete="CASCADE"))
    inbox_id: Mapped[int] = mapped_column(BigId, ForeignKey("inboxes.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(16))  # incoming | outgoing | activity | note
    sender_type: Mapped[str] = mapped_column(String(16))  # contact | agent | bot | system
    sender_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    content: Mapped[str] = mapped_column(Text, default="")
    html: Mapped[str | None] = mapped_column(Text, nullable=True)  # sanitized
    # The channel's own id (provider message id, email Message-ID): unique per inbox = stored once.
    channel_message_id: Mapped[str | None] = mapped_column(String(500), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="received")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    signals: Mapped[dict[str, Any]] = mapped_column(default=dict)
    spam: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("inbox_id", "channel_message_id"),
        Index("ix_messages_conversation", "conversation_id", "id"),
        Index("ix_messages_account", "account_id", "id"),
    )


class Attachment(Base):
    __tablename__ = "attachments"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("accounts.id", ondelete="CASCADE"))
    message_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("messages.id", ondelete="CASCADE"), nullable=True
    )
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(127))
    size: Mapped[int] = mapped_column()
    storage_key: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_attachments_message", "message_id"),)


class RawInbound(Base):
    """Every inbound payload as received, kept for inspection (and for malformed ones, for repair)."""

    __tablename__ = "raw_inbound"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("accounts.id", ondelete="CASCADE"))
    inbox_id: Mapped[int] = mapped_column(BigId, ForeignKey("inboxes.id", ondelete="CASCADE"))
    message_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    content_type: Mapped[str] = mapped_column(String(127), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="ok")  # ok | malformed
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
