"""JSON shapes of conversations and messages, shared by the API, events and the UI."""

from __future__ import annotations

import datetime as dt
from typing import Any

from caredesk.conversations.models import Conversation, Message


def iso(d: dt.datetime | None) -> str | None:
    return None if d is None else d.isoformat() + "Z"


def message_json(m: Message) -> dict[str, Any]:
    return {
        "id": m.id,
        "conversation_id": m.conversation_id,
        "inbox_id": m.inbox_id,
        "type": m.type,
        "sender_type": m.sender_type,
        "sender_id": m.sender_id,
        "content": m.content,
        "html": m.html,
        "status": m.status,
        "error": m.error,
        "channel_message_id": m.channel_message_id,
        "meta": m.meta,
        "signals": m.signals,
        "spam": m.spam,
        "created_at": iso(m.created_at),
    }


def conversation_json(c: Conversation, labels: list[str] | None = None) -> dict[str, Any]:
    return {
        "id": c.id,
        "contact_id": c.contact_id,
        "inbox_id": c.inbox_id,
        "status": c.status,
        "priority": c.priority,
        "subject": c.subject,
        "assignee_id": c.assignee_id,
        "team_id": c.team_id,
        "labels": labels if labels is not None else [],
        "custom_attributes": c.custom_attributes,
        "case_brief": c.case_brief,
        "signals": c.signals,
        "snoozed_until": iso(c.snoozed_until),
        "waiting_since": iso(c.waiting_since),
        "first_reply_at": iso(c.first_reply_at),
        "resolved_at": iso(c.resolved_at),
        "last_activity_at": iso(c.last_activity_at),
        "message_count": c.message_count,
        "created_at": iso(c.created_at),
    }
