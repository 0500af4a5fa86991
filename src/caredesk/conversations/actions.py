"""Agent-side actions on a conversation: reply, note, assign, transfer, snooze, resolve, reopen, label."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from caredesk.accounts.actions import get_agent, get_team
from caredesk.accounts.actors import Actor
from caredesk.conversations.attachments import add_attachments, attachments_json
from caredesk.conversations.inbound import InboundAttachment
from caredesk.conversations.models import PRIORITIES, Conversation, ConversationLabel, Message
from caredesk.conversations.serialize import conversation_json, message_json
from caredesk.platform.audit import audit
from caredesk.platform.errors import Conflict, Invalid, NotFound
from caredesk.platform.events import record_event
from caredesk.platform.jobs import enqueue
from caredesk.platform.models import utcnow
from caredesk.platform.storage import MAX_FILES

MAX_REPLY = 65_536


def get_conversation(
    session: Session, account_id: int, conversation_id: int, *, lock: bool = False
) -> Conversation:
    conv = session.get(
        Conversation,
        conversation_id,
        with_for_update=lock and session.get_bind().dialect.name == "postgresql",
    )
    if conv is None or conv.account_id != account_id:
        raise NotFound("conversation not found")
    return conv


def labels_of(session: Session, conversation_ids: list[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {c: [] for c in conversation_ids}
    if conversation_ids:
        for cid, label in session.execute(
            select(ConversationLabel.conversation_id, ConversationLabel.label)
            .where(ConversationLabel.conversation_id.in_(conversation_ids))
            .order_by(ConversationLabel.label)
        ):
            out[cid].append(label)
    return out


def _changed(session: Session, actor: Actor, conv: Conversation, action: str, data: dict[str, Any]) -> None:
    conv.updated_at = utcnow()
    session.flush()
    audit(session, actor.account_id, actor.audit_ref, f"conversation.{action}", "conversation", conv.id, data)
    record_event(
        session,
        actor.account_id,
        "conversation.updated",
        {**conversation_json(conv, labels_of(session, [conv.id])[conv.id]), "change": action},
        conversation_id=conv.id,
        contact_id=conv.contact_id,
    )


def add_activity(
    session: Session, conv: Conversation, text: str, meta: dict[str, Any] | None = None
) -> Message:
    """An inline timeline entry (assigned, transferred, resolved...)."""
    m = Message(
        account_id=conv.account_id,
        conversation_id=conv.id,
        inbox_id=conv.inbox_id,
        type="activity",
        sender_type="system",
        content=text,
        status="sent",
        meta=meta or {},
        signals={},
    )
    session.add(m)
    session.flush()
    record_event(
        session,
        conv.account_id,
        "message.created",
        message_json(m),
        conversation_id=conv.id,
        contact_id=conv.contact_id,
    )
    return m


def send_reply(
    session: Session,
    actor: Actor,
    conversation_id: int,
    content: str,
    *,
    private: bool = False,
    sender_type: str | None = None,
    meta: dict[str, Any] | None = None,
    echo_id: str | None = None,
    attachments: list[InboundAttachment] | None = None,
) -> Message:
    """A reply to the customer (queued for delivery through the outbox) or a private note, with files
    already stored and checked (`caredesk.platform.storage.check_file`)."""
    text = content.strip()
    files = attachments or []
    if len(files) > MAX_FILES:
        raise Invalid(f"at most {MAX_FILES} files per message")
    if not text and not files:
        raise Invalid("message content is empty")
    if len(text) > MAX_REPLY:
        raise Invalid(f"message content is longer than {MAX_REPLY} characters")
    conv = get_conversation(session, actor.account_id, conversation_id)
    now = utcnow()
    m = Message(
        account_id=actor.account_id,
        conversation_id=conv.id,
        inbox_id=conv.inbox_id,
        type="note" if private else "outgoing",
        sender_type=sender_type
        or ("bot" if actor.kind == "bot" else "agent" if actor.kind == "agent" else "system"),
        sender_id=actor.id,
        content=text,
        status="sent" if private else "queued",
        meta={**(meta or {}), **({"echo_id": echo_id} if echo_id else {})},
        signals={},
        created_at=now,
    )
    session.add(m)
    conv.last_activity_at = now
    conv.updated_at = now
    conv.message_count += 1
    if not private:
        if conv.first_reply_at is None and m.sender_type == "agent":
            conv.first_reply_at = now
        if m.sender_type == "agent":
            conv.waiting_since = None
        if conv.status == "resolved":
            conv.status, conv.resolved_at = "open", None
    session.flush()
    rows = add_attachments(session, actor.account_id, m.id, files) if files else []
    audit(
        session,
        actor.account_id,
        actor.audit_ref,
        "message.note" if private else "message.sent",
        "message",
        m.id,
        {"conversation_id": conv.id, **({"files": len(rows)} if rows else {})},
    )
    record_event(
        session,
        actor.account_id,
        "message.created",
        {
            **message_json(m),
            "attachments": [
                {"index": i, "filename": a.filename, "content_type": a.content_type, "size": a.size}
                for i, a in enumerate(rows)
            ],
        },
        conversation_id=conv.id,
        contact_id=conv.contact_id,
    )
    if not private:
        enqueue(
            session,
            "message.deliver",
            {"message_id": m.id},
            account_id=actor.account_id,
            key=f"deliver:{m.id}",
        )
    return m


def assign(
    session: Session,
    actor: Actor,
    conversation_id: int,
    agent_id: int | None,
    team_id: int | None = None,
    *,
    keep_team: bool = True,
) -> Conversation:
    conv = get_conversation(session, actor.account_id, conversation_id, lock=True)
    names = []
    if agent_id is not None:
        agent = get_agent(session, actor.account_id, agent_id)
        names.append(agent.name)
    if team_id is not None:
        team = get_team(session, actor.account_id, team_id)
        names.append(f"team {team.name}")
    before = (conv.assignee_id, conv.team_id)
    conv.assignee_id = agent_id
    if team_id is not None or not keep_team:
        conv.team_id = team_id
    if before == (conv.assignee_id, conv.team_id):
        return conv
    who = actor.name or actor.kind
    add_activity(
        session,
        conv,
        f"Assigned to {' and '.join(names)} by {who}" if names else f"Unassigned by {who}",
        {"action": "assigned"},
    )
    _changed(session, actor, conv, "assigned", {"agent_id": agent_id, "team_id": team_id})
    return conv


def transfer(
    session: Session,
    actor: Actor,
    conversation_id: int,
    *,
    note: str,
    agent_id: int | None = None,
    team_id: int | None = None,
) -> Conversation:
    """A transfer always carries a handoff note, so the next person never asks the customer again."""
    if not note or not note.strip():
        raise Invalid("a transfer needs a handoff note for the person taking over")
    if agent_id is None and team_id is None:
        raise Invalid("transfer to an agent or a team")
    conv = get_conversation(session, actor.account_id, conversation_id, lock=True)
    to = []
    if agent_id is not None:
        to.append(get_agent(session, actor.account_id, agent_id).name)
    if team_id is not None:
        to.append(f"team {get_team(session, actor.account_id, team_id).name}")
    prev = conv.assignee_id
    conv.assignee_id = agent_id
    if team_id is not None:
        conv.team_id = team_id
    brief = dict(conv.case_brief)
    brief.setdefault("handoffs", []).append(
        {
            "from_agent_id": prev,
            "to_agent_id": agent_id,
            "to_team_id": team_id,
            "note": note.strip(),
            "at": utcnow().isoformat() + "Z",
            "by": actor.name,
        }
    )
    conv.case_brief = brief
    add_activity(
        session,
        conv,
        f"Transferred to {' and '.join(to)} by {actor.name or actor.kind}: {note.strip()}",
        {"action": "transferred", "note": note.strip()},
    )
    _changed(
        session, actor, conv, "transferred", {"agent_id": agent_id, "team_id": team_id, "note": note.strip()}
    )
    return conv


def set_status(
    session: Session,
    actor: Actor,
    conversation_id: int,
    status: str,
    *,
    snoozed_until: dt.datetime | None = None,
) -> Conversation:
    conv = get_conversation(session, actor.account_id, conversation_id, lock=True)
    if status not in ("open", "pending", "snoozed", "resolved"):
        raise Invalid("status must be open, pending, snoozed or resolved")
    if status == "snoozed" and (snoozed_until is None or snoozed_until <= utcnow()):
        raise Invalid("snooze needs a time in the future (snoozed_until)")
    if conv.status == status and status != "snoozed":
        raise Conflict(f"conversation is already {status}")
    conv.status = status
    conv.snoozed_until = snoozed_until if status == "snoozed" else None
    conv.resolved_at = utcnow() if status == "resolved" else None
    if status == "resolved":
        conv.waiting_since = None
    verb = {"open": "Reopened", "pending": "Marked pending", "snoozed": "Snoozed", "resolved": "Resolved"}[
        status
    ]
    add_activity(session, conv, f"{verb} by {actor.name or actor.kind}", {"action": status})
    if status == "snoozed":
        enqueue(
            session,
            "conversation.wake",
            {"conversation_id": conv.id},
            account_id=conv.account_id,
            delay=max(0.0, (snoozed_until - utcnow()).total_seconds()) if snoozed_until else 0.0,
        )
    _changed(
        session, actor, conv, status, {"snoozed_until": snoozed_until.isoformat() if snoozed_until else None}
    )
    return conv


def set_labels(
    session: Session, actor: Actor, conversation_id: int, add: list[str], remove: list[str]
) -> Conversation:
    conv = get_conversation(session, actor.account_id, conversation_id)
    for label in add + remove:
        if not label or len(label) > 64:
            raise Invalid("labels are 1-64 characters")
    current = set(labels_of(session, [conv.id])[conv.id])
    for label in sorted(set(add) - current):
        session.add(ConversationLabel(conversation_id=conv.id, label=label, account_id=conv.account_id))
    if remove:
        session.execute(
            delete(ConversationLabel).where(
                ConversationLabel.conversation_id == conv.id, ConversationLabel.label.in_(remove)
            )
        )
    _changed(session, actor, conv, "labelled", {"add": add, "remove": remove})
    return conv


def update_conversation(
    session: Session, actor: Actor, conversation_id: int, changes: dict[str, Any]
) -> Conversation:
    conv = get_conversation(session, actor.account_id, conversation_id)
    if "priority" in changes:
        if changes["priority"] not in PRIORITIES:
            raise Invalid(f"priority must be one of {', '.join(PRIORITIES)}")
        conv.priority = changes["priority"]
    if "custom_attributes" in changes:
        conv.custom_attributes = {**conv.custom_attributes, **changes["custom_attributes"]}
    if "subject" in changes:
        conv.subject = str(changes["subject"])[:500]
    _changed(session, actor, conv, "updated", changes)
    return conv


def mark_delivery(
    session: Session,
    account_id: int,
    message_id: int,
    status: str,
    *,
    channel_message_id: str | None = None,
    error: str | None = None,
) -> Message | None:
    """Delivery status flows back into the conversation; a status never goes backwards."""
    order = {"queued": 0, "sent": 1, "delivered": 2, "read": 3, "failed": 4}
    m = session.get(Message, message_id)
    if m is None or m.account_id != account_id:
        return None
    if status != "failed" and order.get(status, -1) <= order.get(m.status, -1):
        return m
    m.status = status
    if channel_message_id and not m.channel_message_id:
        m.channel_message_id = channel_message_id
    if error is not None:
        m.error = error[:2000]
    session.flush()
    emit_message_updated(session, m)
    return m


def emit_message_updated(session: Session, m: Message) -> None:
    """The `message.updated` event for a changed message (status, attachments, ...), with its attachments,
    so that open screens show the change."""
    conv = session.get(Conversation, m.conversation_id)
    record_event(
        session,
        m.account_id,
        "message.updated",
        {**message_json(m), "attachments": attachments_json(session, [m.id]).get(m.id, [])},
        conversation_id=m.conversation_id,
        contact_id=conv.contact_id if conv else None,
    )
