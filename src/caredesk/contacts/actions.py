"""Contacts: resolve identities, edit, search, merge and un-merge (recorded and reversible)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from caredesk.accounts.actors import Actor
from caredesk.contacts import linking
from caredesk.contacts.identities import normalize_identity
from caredesk.contacts.models import Contact, Identity
from caredesk.platform.audit import audit
from caredesk.platform.db import SQL, RetryTransaction, raw
from caredesk.platform.errors import Conflict, NotFound
from caredesk.platform.events import record_event
from caredesk.platform.models import utcnow


def contact_json(c: Contact, identities: list[Identity] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": c.id,
        "name": c.name,
        "email": c.email,
        "phone": c.phone,
        "language": c.language,
        "vip": c.vip,
        "attributes": c.attributes,
        "facts": c.facts,
        "labels": c.labels,
        "merged_into_id": c.merged_into_id,
        "created_at": c.created_at.isoformat() + "Z",
    }
    if identities is not None:
        out["identities"] = [
            {"id": i.id, "kind": i.kind, "value": i.value, "verified": i.verified} for i in identities
        ]
    return out


_FIND_IDENTITY = SQL(
    "SELECT contact_id FROM identities WHERE account_id = :a AND kind = :kind AND value = :value"
)
_NEW_CONTACT = SQL(
    "INSERT INTO contacts (account_id, name, email, phone, vip, attributes, facts, labels, created_at, updated_at) "
    "VALUES (:a, :name, :email, :phone, :false, '{}', '{}', '[]', :now, :now) RETURNING id"
)
_NEW_IDENTITY = SQL(
    "INSERT INTO identities (account_id, contact_id, kind, value, verified, created_at) VALUES (:a, :contact, :kind, :value, :verified, :now) "
    "ON CONFLICT (account_id, kind, value) DO NOTHING RETURNING id"
)


def find_contact_by_identity(session: Session, account_id: int, kind: str, value: str) -> int | None:
    row = raw(session).one(_FIND_IDENTITY, {"a": account_id, "kind": kind, "value": value})
    return None if row is None else int(row[0])


def resolve_identity(
    session: Session,
    account_id: int,
    kind: str,
    value: str,
    *,
    name: str | None = None,
    verified: bool = False,
) -> tuple[int, bool]:
    """The contact for an identity, creating both when new. Returns (contact_id, created).

    A new phone, WhatsApp or email identity is checked against the account's other contacts
    (`caredesk.contacts.linking`): when it and the same number's other identity are both verified, it
    joins that contact (created is False); otherwise a new contact is created and a link is suggested.

    Concurrent first messages from one new person: the unique (account, kind, value) constraint
    lets exactly one transaction create the identity; the loser retries and finds it.
    """
    existing = find_contact_by_identity(session, account_id, kind, value)
    if existing is not None:
        return existing, False
    r = raw(session)
    now = r.ts(utcnow())
    found = linking.candidates(session, account_id, kind, value) if kind in linking.LINKABLE_KINDS else []
    owner = linking.verified_owner(found) if verified and found else None
    if owner is not None:
        ident = r.one(
            _NEW_IDENTITY,
            {
                "a": account_id,
                "contact": owner.contact_id,
                "kind": kind,
                "value": value,
                "verified": True,
                "now": now,
            },
        )
        if ident is None:
            raise RetryTransaction("identity created concurrently")
        linking.record_auto_link(session, account_id, owner.contact_id, int(ident[0]), kind, owner.kind)
        rest = [c for c in found if c.contact_id != owner.contact_id]
        linking.suggest_all(session, account_id, owner.contact_id, kind, value, rest)
        return owner.contact_id, False
    row = r.one(
        _NEW_CONTACT,
        {
            "a": account_id,
            "name": (name or "").strip()[:200],
            "email": value if kind == "email" else None,
            "phone": value if kind in ("phone", "whatsapp") else None,
            "false": False,
            "now": now,
        },
    )
    assert row is not None
    contact_id = int(row[0])
    ident = r.one(
        _NEW_IDENTITY,
        {
            "a": account_id,
            "contact": contact_id,
            "kind": kind,
            "value": value,
            "verified": verified,
            "now": now,
        },
    )
    if ident is None:
        raise RetryTransaction("identity created concurrently")
    if found:
        linking.suggest_all(session, account_id, contact_id, kind, value, found)
    return contact_id, True


def get_contact(session: Session, account_id: int, contact_id: int) -> Contact:
    c = session.get(Contact, contact_id)
    if c is None or c.account_id != account_id:
        raise NotFound("contact not found")
    return c


def identities_of(session: Session, contact_ids: list[int]) -> dict[int, list[Identity]]:
    out: dict[int, list[Identity]] = {c: [] for c in contact_ids}
    if contact_ids:
        for ident in session.execute(
            select(Identity).where(Identity.contact_id.in_(contact_ids)).order_by(Identity.id)
        ).scalars():
            out[ident.contact_id].append(ident)
    return out


def create_contact(session: Session, actor: Actor, data: dict[str, Any]) -> Contact:
    now = utcnow()
    c = Contact(
        account_id=actor.account_id,
        name=(data.get("name") or "").strip(),
        language=data.get("language"),
        vip=bool(data.get("vip", False)),
        attributes=data.get("attributes") or {},
        labels=sorted(set(data.get("labels") or [])),
        facts={},
        created_at=now,
        updated_at=now,
    )
    session.add(c)
    session.flush()
    for kind, key in (("email", "email"), ("phone", "phone")):
        if data.get(key):
            add_identity(session, actor, c.id, kind, data[key], verified=False, emit=False)
    audit(session, actor.account_id, actor.audit_ref, "contact.created", "contact", c.id)
    record_event(session, actor.account_id, "contact.updated", contact_json(c), contact_id=c.id)
    return c


def add_identity(
    session: Session,
    actor: Actor,
    contact_id: int,
    kind: str,
    value: str,
    *,
    verified: bool = False,
    emit: bool = True,
) -> Identity:
    c = get_contact(session, actor.account_id, contact_id)
    norm = normalize_identity(kind, value)
    owner = find_contact_by_identity(session, actor.account_id, kind, norm)
    if owner is not None and owner != contact_id:
        raise Conflict(
            f"this {kind} belongs to another contact; merge the two contacts instead", contact_id=owner
        )
    if owner == contact_id:
        ident = session.execute(
            select(Identity).where(
                Identity.account_id == actor.account_id, Identity.kind == kind, Identity.value == norm
            )
        ).scalar_one()
        return ident
    ident = Identity(
        account_id=actor.account_id, contact_id=contact_id, kind=kind, value=norm, verified=verified
    )
    session.add(ident)
    if kind == "email" and not c.email:
        c.email = norm
    if kind in ("phone", "whatsapp") and not c.phone:
        c.phone = norm
    session.flush()
    audit(
        session,
        actor.account_id,
        actor.audit_ref,
        "contact.identity_added",
        "contact",
        contact_id,
        {"kind": kind},
    )
    if kind in linking.LINKABLE_KINDS:
        # An agent adding an identity gets suggestions, never an automatic merge: they are right there.
        found = linking.candidates(session, actor.account_id, kind, norm, exclude=contact_id)
        linking.suggest_all(session, actor.account_id, contact_id, kind, norm, found)
    if emit:
        record_event(session, actor.account_id, "contact.updated", contact_json(c), contact_id=c.id)
    return ident


def update_contact(session: Session, actor: Actor, contact_id: int, changes: dict[str, Any]) -> Contact:
    c = get_contact(session, actor.account_id, contact_id)
    if c.merged_into_id is not None:
        raise Conflict("this contact was merged into another", contact_id=c.merged_into_id)
    for key in ("name", "language", "vip"):
        if key in changes:
            setattr(c, key, changes[key])
    if "attributes" in changes:
        c.attributes = {**c.attributes, **changes["attributes"]}
    if "labels" in changes:
        c.labels = sorted(set(changes["labels"]))
    c.updated_at = utcnow()
    audit(session, actor.account_id, actor.audit_ref, "contact.updated", "contact", c.id, changes)
    record_event(session, actor.account_id, "contact.updated", contact_json(c), contact_id=c.id)
    return c


def remember_facts(session: Session, account_id: int, contact_id: int, facts: dict[str, Any]) -> None:
    """Facts the customer gave (order number, email, address) are kept on the contact and reused."""
    c = get_contact(session, account_id, contact_id)
    merged = {**c.facts, **{k: v for k, v in facts.items() if v not in (None, "")}}
    if merged != c.facts:
        c.facts = merged
        c.updated_at = utcnow()


def search_contacts(
    session: Session, account_id: int, q: str | None, limit: int, before_id: int | None
) -> list[Contact]:
    stmt = select(Contact).where(Contact.account_id == account_id, Contact.merged_into_id.is_(None))
    if q:
        like = f"%{q.strip().lower()}%"
        sub = select(Identity.contact_id).where(
            Identity.account_id == account_id, func.lower(Identity.value).like(like)
        )
        stmt = stmt.where(or_(func.lower(Contact.name).like(like), Contact.id.in_(sub)))
    if before_id:
        stmt = stmt.where(Contact.id < before_id)
    return list(session.execute(stmt.order_by(Contact.id.desc()).limit(limit)).scalars())
