"""WhatsApp's 24-hour customer-service window: free-form replies only within 24 hours of the
customer's last message; outside it, only approved templates may be sent."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from caredesk.accounts.models import Inbox
from caredesk.conversations.models import Conversation, Message
from caredesk.platform.models import utcnow

WINDOW = dt.timedelta(hours=24)
WINDOWED_CHANNELS = ("whatsapp_cloud", "twilio_whatsapp", "messenger")


def window_state(session: Session, account_id: int, conversation_id: int) -> dict[str, Any] | None:
    """None if the conversation is not this account's; otherwise what the agent UI shows."""
    row = session.execute(
        select(Conversation.id, Inbox.channel)
        .join(Inbox, Inbox.id == Conversation.inbox_id)
        .where(Conversation.id == conversation_id, Conversation.account_id == account_id)
    ).first()
    if row is None:
        return None
    channel = row[1]
    if channel not in WINDOWED_CHANNELS:
        return {
            "channel": channel,
            "applies": False,
            "open": True,
            "closes_at": None,
            "templates_only": False,
        }
    last = session.execute(
        select(func.max(Message.created_at)).where(
            Message.conversation_id == conversation_id, Message.type == "incoming"
        )
    ).scalar()
    closes = last + WINDOW if last is not None else None
    is_open = closes is not None and closes > utcnow()
    return {
        "channel": channel,
        "applies": True,
        "open": is_open,
        "closes_at": closes.isoformat() + "Z" if closes else None,
        "templates_only": not is_open,
        "notice": None
        if is_open
        else "The customer's last message is more than 24 hours old: only an approved "
        "template can be sent until they write again.",
    }
