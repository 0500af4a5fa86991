"""Tables the channel adapters keep: provider delivery ids seen (replay/dedupe), poll cursors, and the
accounts' outbound webhook endpoints."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from caredesk.platform.models import Base, BigId, utcnow


class WebhookReceipt(Base):
    """A provider delivery id (Telegram update_id, Standard Webhooks webhook-id) already committed.

    Inserted with ON CONFLICT DO NOTHING in the acknowledging transaction: a redelivery or a replayed
    request finds its id here and writes nothing else (RELIABILITY rule 2).
    """

    __tablename__ = "channel_webhook_receipts"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    inbox_id: Mapped[int] = mapped_column(BigId, ForeignKey("inboxes.id", ondelete="CASCADE"))
    delivery_id: Mapped[str] = mapped_column(String(200))
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("inbox_id", "delivery_id"),)


class ChannelCursor(Base):
    """Where a poller stopped (IMAP: UIDVALIDITY and the last UID seen), per inbox and name."""

    __tablename__ = "channel_cursors"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    inbox_id: Mapped[int] = mapped_column(BigId, ForeignKey("inboxes.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(String(200), default="")
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("inbox_id", "name"),)


class WebhookEndpoint(Base):
    """An account's outbound webhook: where its domain events are POSTed, Standard-Webhooks signed.

    `cursor` is the last event seq of the account's stream that was turned into delivery jobs for this
    endpoint; the dispatcher moves it forward in the same transaction as it enqueues the jobs, so no
    event is skipped and none is enqueued twice (the job key is endpoint + seq).
    """

    __tablename__ = "webhook_endpoints"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(200))
    event_types: Mapped[list[str]] = mapped_column(default=list)
    description: Mapped[str] = mapped_column(String(200), default="")
    active: Mapped[bool] = mapped_column(default=True)
    cursor: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
