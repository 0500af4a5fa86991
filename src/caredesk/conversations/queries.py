"""Read side: conversation lists with filters and counts, a conversation's messages, a contact's timeline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from caredesk.accounts.models import Inbox, TeamMember
from caredesk.conversations.actions import get_conversation, labels_of
from caredesk.conversations.attachments import attachments_json
from caredesk.conversations.models import Conversation, ConversationLabel, Message
from caredesk.conversations.serialize import conversation_json, message_json


@dataclass(slots=True)
class ConversationFilter:
    view: str = "all"  # mine | unassigned | my_teams | all
    status: str | None = "open"
    inbox_id: int | None = None
    channel: str | None = None
    label: str | None = None
    contact_id: int | None = None
    assignee_id: int | None = None
    team_id: int | None = None
    sort: str = "recent"  # recent | waiting_longest | newest
    limit: int = 25
    before: int | None = None  # keyset cursor: the `id` of the last row seen (for sort=newest) or offset


def _filtered(
    account_id: int, agent_id: int | None, f: ConversationFilter, *, for_counts: bool = False
) -> Select[Any]:
    q = select(Conversation).where(Conversation.account_id == account_id)
    if f.status and f.status != "all":
        q = q.where(Conversation.status == f.status)
    if f.inbox_id is not None:
        q = q.where(Conversation.inbox_id == f.inbox_id)
    if f.channel:
        q = q.where(
            Conversation.inbox_id.in_(
                select(Inbox.id).where(Inbox.account_id == account_id, Inbox.channel == f.channel)
            )
        )
    if f.label:
        q = q.where(
            Conversation.id.in_(
                select(ConversationLabel.conversation_id).where(
                    ConversationLabel.account_id == account_id, ConversationLabel.label == f.label
                )
            )
        )
    if f.contact_id is not None:
        q = q.where(Conversation.contact_id == f.contact_id)
    if f.assignee_id is not None:
        q = q.where(Conversation.assignee_id == f.assignee_id)
    if f.team_id is not None:
        q = q.where(Conversation.team_id == f.team_id)
    if not for_counts:
        q = _view(q, f.view, agent_id)
    return q


def _view(q: Select[Any], view: str, agent_id: int | None) -> Select[Any]:
    if view == "mine":
        return q.where(Conversation.assignee_id == (agent_id or -1))
    if view == "unassigned":
        return q.where(Conversation.assignee_id.is_(None))
    if view == "my_teams":
        return q.where(
            Conversation.team_id.in_(
                select(TeamMember.team_id).where(TeamMember.agent_id == (agent_id or -1))
            )
        )
    return q


def list_conversations(
    session: Session, account_id: int, agent_id: int | None, f: ConversationFilter
) -> dict[str, Any]:
    q = _filtered(account_id, agent_id, f)
    if f.sort == "waiting_longest":
        q = q.order_by(Conversation.waiting_since.is_(None), Conversation.waiting_since, Conversation.id)
    elif f.sort == "newest":
        q = q.order_by(Conversation.id.desc())
    else:
        q = q.order_by(Conversation.last_activity_at.desc(), Conversation.id.desc())
    offset = f.before or 0
    rows = list(session.execute(q.offset(offset).limit(f.limit + 1)).scalars())
    more = len(rows) > f.limit
    rows = rows[: f.limit]
    ids = [c.id for c in rows]
    labels = labels_of(session, ids)
    last = _last_messages(session, ids)
    items = []
    for c in rows:
        item = conversation_json(c, labels[c.id])
        item["last_message"] = last.get(c.id)
        items.append(item)
    return {"items": items, "next": offset + f.limit if more else None}


def _last_messages(session: Session, conversation_ids: list[int]) -> dict[int, dict[str, Any]]:
    if not conversation_ids:
        return {}
    latest = (
        select(func.max(Message.id))
        .where(Message.conversation_id.in_(conversation_ids), Message.type.in_(("incoming", "outgoing")))
        .group_by(Message.conversation_id)
    )
    out = {}
    for m in session.execute(select(Message).where(Message.id.in_(latest))).scalars():
        out[m.conversation_id] = {
            "content": m.content[:200],
            "type": m.type,
            "created_at": m.created_at.isoformat() + "Z",
        }
    return out


def conversation_counts(
    session: Session, account_id: int, agent_id: int | None, f: ConversationFilter
) -> dict[str, int]:
    """Counts per view for the same filters (status, inbox, label...), in one query per view."""
    base = _filtered(account_id, agent_id, f, for_counts=True)
    out = {}
    for view in ("mine", "unassigned", "my_teams", "all"):
        q = _view(base, view, agent_id).with_only_columns(func.count(Conversation.id)).order_by(None)
        out[view] = int(session.execute(q).scalar() or 0)
    return out


def conversation_detail(session: Session, account_id: int, conversation_id: int) -> dict[str, Any]:
    conv = get_conversation(session, account_id, conversation_id)
    return conversation_json(conv, labels_of(session, [conv.id])[conv.id])


def list_messages(
    session: Session, account_id: int, conversation_id: int, after_id: int = 0, limit: int = 100
) -> list[dict[str, Any]]:
    get_conversation(session, account_id, conversation_id)
    rows = session.execute(
        select(Message)
        .where(
            Message.conversation_id == conversation_id,
            Message.account_id == account_id,
            Message.id > after_id,
        )
        .order_by(Message.id)
        .limit(limit)
    ).scalars()
    items = [message_json(m) for m in rows]
    files = attachments_json(session, [m["id"] for m in items])
    for m in items:
        m["attachments"] = files.get(m["id"], [])
    return items


def contact_timeline(
    session: Session, account_id: int, contact_id: int, limit: int = 500
) -> list[dict[str, Any]]:
    """Every message of every conversation of this contact, across channels, oldest first."""
    conv_ids = select(Conversation.id).where(
        Conversation.account_id == account_id, Conversation.contact_id == contact_id
    )
    rows = session.execute(
        select(Message, Inbox.channel)
        .join(Inbox, Inbox.id == Message.inbox_id)
        .where(Message.conversation_id.in_(conv_ids))
        .order_by(Message.id.desc())
        .limit(limit)
    ).all()
    out = []
    for m, channel in reversed(rows):
        item = message_json(m)
        item["channel"] = channel
        out.append(item)
    return out
