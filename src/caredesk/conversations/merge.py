"""Merging contacts: one person, one timeline. Lives with conversations because a merge moves them
(contacts sit below conversations and never reach up). Recorded with exactly what moved; reversible."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from caredesk.accounts.actors import Actor
from caredesk.contacts.actions import get_contact
from caredesk.contacts.models import ContactMerge, Identity
from caredesk.conversations.models import Conversation
from caredesk.platform.audit import audit
from caredesk.platform.errors import Conflict, Invalid, NotFound
from caredesk.platform.events import record_event
from caredesk.platform.models import utcnow


def merge_contacts(session: Session, actor: Actor, survivor_id: int, merged_id: int) -> ContactMerge:
    """Move identities and conversations of `merged_id` onto `survivor_id`, recording what moved."""
    if survivor_id == merged_id:
        raise Invalid("cannot merge a contact into itself")
    survivor = get_contact(session, actor.account_id, survivor_id)
    merged = get_contact(session, actor.account_id, merged_id)
    if survivor.merged_into_id or merged.merged_into_id:
        raise Conflict("one of these contacts is already merged")
    ident_ids = list(session.execute(select(Identity.id).where(Identity.contact_id == merged.id)).scalars())
    conv_ids = list(
        session.execute(select(Conversation.id).where(Conversation.contact_id == merged.id)).scalars()
    )
    before = {
        "survivor": {
            "facts": survivor.facts,
            "labels": survivor.labels,
            "email": survivor.email,
            "phone": survivor.phone,
        }
    }
    session.execute(update(Identity).where(Identity.id.in_(ident_ids)).values(contact_id=survivor.id))
    session.execute(update(Conversation).where(Conversation.id.in_(conv_ids)).values(contact_id=survivor.id))
    survivor.facts = {**merged.facts, **survivor.facts}
    survivor.labels = sorted(set(survivor.labels) | set(merged.labels))
    survivor.email = survivor.email or merged.email
    survivor.phone = survivor.phone or merged.phone
    survivor.name = survivor.name or merged.name
    merged.merged_into_id = survivor.id
    rec = ContactMerge(
        account_id=actor.account_id,
        survivor_id=survivor.id,
        merged_id=merged.id,
        moved={"identities": ident_ids, "conversations": conv_ids, **before},
    )
    session.add(rec)
    session.flush()
    audit(
        session,
        actor.account_id,
        actor.audit_ref,
        "contact.merged",
        "contact",
        survivor.id,
        {"merged_id": merged.id, "merge_id": rec.id, "identities": ident_ids, "conversations": conv_ids},
    )
    record_event(
        session,
        actor.account_id,
        "contact.merged",
        {"survivor_id": survivor.id, "merged_id": merged.id, "merge_id": rec.id},
        contact_id=survivor.id,
    )
    return rec


def unmerge_contacts(session: Session, actor: Actor, merge_id: int) -> ContactMerge:
    rec = session.get(ContactMerge, merge_id)
    if rec is None or rec.account_id != actor.account_id:
        raise NotFound("merge not found")
    if rec.undone_at is not None:
        raise Conflict("this merge was already undone")
    survivor = get_contact(session, actor.account_id, rec.survivor_id)
    merged = get_contact(session, actor.account_id, rec.merged_id)
    session.execute(
        update(Identity).where(Identity.id.in_(rec.moved.get("identities", []))).values(contact_id=merged.id)
    )
    session.execute(
        update(Conversation)
        .where(Conversation.id.in_(rec.moved.get("conversations", [])))
        .values(contact_id=merged.id)
    )
    prev = rec.moved.get("survivor", {})
    survivor.facts = prev.get("facts", survivor.facts)
    survivor.labels = prev.get("labels", survivor.labels)
    survivor.email = prev.get("email", survivor.email)
    survivor.phone = prev.get("phone", survivor.phone)
    merged.merged_into_id = None
    rec.undone_at = utcnow()
    audit(
        session,
        actor.account_id,
        actor.audit_ref,
        "contact.unmerged",
        "contact",
        survivor.id,
        {"merge_id": rec.id, "restored_id": merged.id},
    )
    record_event(
        session,
        actor.account_id,
        "contact.unmerged",
        {"survivor_id": survivor.id, "restored_id": merged.id, "merge_id": rec.id},
        contact_id=survivor.id,
    )
    return rec
