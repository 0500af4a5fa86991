"""What the workspace shows, read in one transaction per view (few queries, no N+1)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from caredesk.accounts.actions import agent_json, get_account, team_json, team_member_ids
from caredesk.accounts.models import Agent, Inbox, Team
from caredesk.contacts.actions import contact_json, get_contact, identities_of
from caredesk.contacts.linking import open_suggestions
from caredesk.conversations.actions import get_conversation, labels_of
from caredesk.conversations.attachments import attachments_json
from caredesk.conversations.models import Conversation, Message
from caredesk.conversations.queries import (
    ConversationFilter,
    contact_timeline,
    conversation_counts,
    list_conversations,
)
from caredesk.conversations.serialize import conversation_json, message_json
from caredesk.platform import jobs
from caredesk.platform.errors import NotFound
from caredesk.platform.storage import ALLOWED_TYPES, MAX_FILE_BYTES, MAX_FILES

DEFAULT_SNIPPETS = [
    {"name": "Greeting", "body": "Hi {first_name}, thanks for getting in touch! "},
    {"name": "Looking into it", "body": "Thanks, {first_name}. Looking into it now; back in a few minutes."},
    {"name": "Anything else", "body": "Is there anything else I can help you with, {first_name}?"},
]


def directory(s: Session, account_id: int) -> dict[str, Any]:
    agents = list(
        s.execute(select(Agent).where(Agent.account_id == account_id).order_by(Agent.name)).scalars()
    )
    teams = list(s.execute(select(Team).where(Team.account_id == account_id).order_by(Team.name)).scalars())
    inboxes = list(
        s.execute(select(Inbox).where(Inbox.account_id == account_id).order_by(Inbox.id)).scalars()
    )
    members = team_member_ids(s, [t.id for t in teams])
    return {
        "agents": [agent_json(a) for a in agents],
        "agent_names": {a.id: a.name for a in agents},
        "teams": [team_json(t, members[t.id]) for t in teams],
        "team_names": {t.id: t.name for t in teams},
        "inboxes": {i.id: {"id": i.id, "name": i.name, "channel": i.channel} for i in inboxes},
        "channels": sorted({i.channel for i in inboxes}),
    }


def conversation_list(
    s: Session, account_id: int, agent_id: int | None, f: ConversationFilter
) -> dict[str, Any]:
    page = list_conversations(s, account_id, agent_id, f)
    counts = conversation_counts(s, account_id, agent_id, f)
    contact_ids = sorted({c["contact_id"] for c in page["items"]})
    names = {}
    if contact_ids:
        from caredesk.contacts.models import Contact

        names = {
            i: n for i, n in s.execute(select(Contact.id, Contact.name).where(Contact.id.in_(contact_ids)))
        }
    for item in page["items"]:
        item["contact_name"] = names.get(item["contact_id"]) or f"Visitor #{item['contact_id']}"
    return {"page": page, "counts": counts, **directory(s, account_id)}


def _attachments(s: Session, message_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    return attachments_json(s, message_ids)


def timeline(s: Session, account_id: int, contact_id: int, after_id: int = 0) -> list[dict[str, Any]]:
    """The contact's whole story across channels and earlier conversations, oldest first."""
    items = [m for m in contact_timeline(s, account_id, contact_id) if m["id"] > after_id]
    atts = _attachments(s, [m["id"] for m in items])
    for m in items:
        m["files"] = atts.get(m["id"], [])
    return items


def timeline_item(s: Session, account_id: int, conversation_id: int, message_id: int) -> dict[str, Any]:
    """One timeline entry, as `timeline` shows it, for a message of this conversation's contact."""
    conv = get_conversation(s, account_id, conversation_id)
    m = s.get(Message, message_id)
    owner = s.get(Conversation, m.conversation_id) if m is not None and m.account_id == account_id else None
    if m is None or owner is None or owner.contact_id != conv.contact_id:
        raise NotFound("message not found")
    item = message_json(m)
    inbox = s.get(Inbox, m.inbox_id)
    item["channel"] = inbox.channel if inbox is not None else ""
    item["files"] = _attachments(s, [m.id]).get(m.id, [])
    return item


def conversation_view(s: Session, account_id: int, conversation_id: int) -> dict[str, Any]:
    conv = get_conversation(s, account_id, conversation_id)
    data = conversation_json(conv, labels_of(s, [conv.id])[conv.id])
    contact = get_contact(s, account_id, conv.contact_id)
    idents = identities_of(s, [contact.id])[contact.id]
    previous = list(
        s.execute(
            select(Conversation)
            .where(Conversation.account_id == account_id, Conversation.contact_id == contact.id)
            .order_by(Conversation.id.desc())
            .limit(50)
        ).scalars()
    )
    first_name = (contact.name or "there").split(" ")[0]
    account = get_account(s, account_id)
    raw_snippets = account.settings.get("snippets") or DEFAULT_SNIPPETS
    snippets = []
    for sn in raw_snippets:
        if isinstance(sn, dict) and sn.get("name") and sn.get("body"):
            body = (
                str(sn["body"])
                .replace("{first_name}", first_name)
                .replace("{name}", contact.name or first_name)
            )
            snippets.append({"name": str(sn["name"]), "body": body})
    last_incoming = s.execute(
        select(Message.id)
        .where(Message.conversation_id == conv.id, Message.type == "incoming")
        .order_by(Message.id.desc())
        .limit(1)
    ).scalar()
    return {
        "conv": data,
        "contact": contact_json(contact, idents),
        "suggestions": open_suggestions(s, account_id, contact.id),
        "previous": [conversation_json(c) for c in previous],
        "timeline": timeline(s, account_id, contact.id),
        "snippets": snippets,
        "last_incoming_id": last_incoming or 0,
        "file_types": sorted(ALLOWED_TYPES),
        "max_files": MAX_FILES,
        "max_file_mb": MAX_FILE_BYTES // 1_048_576,
        **directory(s, account_id),
    }


def link_suggestions(s: Session, account_id: int, conversation_id: int) -> dict[str, Any]:
    """The customer panel's "possibly the same person" block for a conversation's contact."""
    conv = get_conversation(s, account_id, conversation_id)
    return {"suggestions": open_suggestions(s, account_id, conv.contact_id), "conv_id": conv.id}


def admin_data(s: Session, account_id: int) -> dict[str, Any]:
    account = get_account(s, account_id)
    inboxes = list(
        s.execute(select(Inbox).where(Inbox.account_id == account_id).order_by(Inbox.id)).scalars()
    )
    return {
        "account": {
            "id": account.id,
            "name": account.name,
            "slug": account.slug,
            "settings": account.settings,
        },
        "inbox_rows": [
            {
                "id": i.id,
                "name": i.name,
                "channel": i.channel,
                "public_token": i.public_token,
                "greeting": i.greeting,
                "config": {k: v for k, v in i.config.items() if "secret" not in k and "token" not in k},
                "has_identity_secret": bool(i.config.get("identity_secret")),
            }
            for i in inboxes
        ],
        "snippets": account.settings.get("snippets") or DEFAULT_SNIPPETS,
        **directory(s, account_id),
    }


def dead_letters(s: Session, account_id: int) -> list[dict[str, Any]]:
    """The account's dead jobs, newest first; a failed reply names its conversation and its text."""
    rows = jobs.dead_letters(s, account_id)
    message_ids = [
        int(j.payload["message_id"])
        for j in rows
        if j.kind == "message.deliver" and isinstance(j.payload.get("message_id"), int)
    ]
    messages = (
        {
            m.id: m
            for m in s.execute(
                select(Message).where(Message.id.in_(message_ids), Message.account_id == account_id)
            ).scalars()
        }
        if message_ids
        else {}
    )
    out = []
    for j in rows:
        mid = j.payload.get("message_id") if j.kind == "message.deliver" else None
        m = messages.get(mid) if isinstance(mid, int) else None
        out.append(
            {
                "id": j.id,
                "kind": j.kind,
                "attempts": j.attempts,
                "last_error": j.last_error or "",
                "finished_at": j.finished_at.isoformat()[:16].replace("T", " ") if j.finished_at else "",
                "conversation_id": m.conversation_id if m is not None else None,
                "message_id": m.id if m is not None else None,
                "excerpt": (m.content[:120] if m is not None else ""),
            }
        )
    return out
