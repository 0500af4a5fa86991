"""Merging contacts: one person, one timeline. Lives with conversations because a merge moves them
(contacts sit below conversations and never reach up). Recorded with exactly what moved; reversible."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from caredesk.accounts.actors import Actor
from caredesk.contacts.actions import get_contact
from caredesk.contacts.linking import check_open, get_suggestion, older
from caredesk.contacts.models import ContactMerge, Identity, LinkSuggestion
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
    # A suggestion for this pair is settled by the merge, whichever way it was made.
    low, high = sorted((survivor.id, merged.id))
    session.execute(
        update(LinkSuggestion)
        .where(
            LinkSuggestion.contact_id == low,
            LinkSuggestion.other_contact_id == high,
            LinkSuggestion.status == "open",
        )
        .values(status="accepted", merge_id=rec.id, decided_at=utcnow())
    )
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
    # The suggestion this merge accepted is open again: the agent decides anew.
    session.execute(
        update(LinkSuggestion)
        .where(LinkSuggestion.merge_id == rec.id)
        .values(status="open", merge_id=None, decided_at=None)
    )
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


def accept_link_suggestion(session: Session, actor: Actor, suggestion_id: int) -> ContactMerge:
    """ "Merge" on a suggestion: the usual merge (recorded, undoable), the older contact surviving."""
    sug = get_suggestion(session, actor.account_id, suggestion_id)
    check_open(sug)
    a, b = (get_contact(session, actor.account_id, cid) for cid in (sug.contact_id, sug.other_contact_id))
    survivor = older(a, b)
    merged = b if survivor is a else a
    rec = merge_contacts(session, actor, survivor.id, merged.id)
    session.refresh(sug)
    audit(
        session,
        actor.account_id,
        actor.audit_ref,
        "contact.link_accepted",
        "contact",
        survivor.id,
        {"suggestion_id": sug.id, "merge_id": rec.id},
    )
    record_event(
        session,
        actor.account_id,
        "contact.link_decided",
        {
            "id": sug.id,
            "status": "accepted",
            "contact_id": sug.contact_id,
            "other_contact_id": sug.other_contact_id,
            "merge_id": rec.id,
        },
        contact_id=survivor.id,
    )
    return rec
