"""Tables the channel adapters keep: provider delivery ids seen (replay/dedupe) and poll cursors."""

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
