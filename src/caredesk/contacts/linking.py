"""One person, one contact: identities that name the same person are linked or suggested.

When a new identity arrives (`resolve_identity` creating a contact, or an agent adding an identity),
one indexed query looks for other contacts of the account that the same person may own:

- a phone-like identity (kinds `phone` and `whatsapp`, E.164 values): the same number under the other
  phone-like kind, and contacts whose `phone` is that number (e.g. typed in by an agent);
- an email identity: contacts whose `email` is that address without an email identity of it.

Only verified data is ever merged: when the new identity and the existing one are both verified (the
channel proved the sender owns the number, e.g. WhatsApp Cloud, or an agent marked it verified), the new
identity joins the existing contact and no second contact is created. Anything else (SMS and Twilio
WhatsApp are spoofable, a profile field is typed by hand) becomes a suggestion an agent accepts (the
usual merge, undoable) or dismisses; a pair is kept once, so a dismissed pair is never suggested again.

The lookups run only when an identity is new: a known sender costs nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from caredesk.contacts.models import Contact, LinkSuggestion
from caredesk.platform.audit import audit
from caredesk.platform.db import SQL, raw
from caredesk.platform.errors import Conflict, NotFound
from caredesk.platform.events import record_event
from caredesk.platform.models import utcnow

PHONE_KINDS = ("phone", "whatsapp")
LINKABLE_KINDS = (*PHONE_KINDS, "email")
VIA = {"phone": "SMS", "whatsapp": "WhatsApp"}


@dataclass(frozen=True, slots=True)
class Candidate:
    contact_id: int
    kind: str  # the other identity's kind, or "profile" for a contact's phone/email field
    verified: bool


# One statement per kind of lookup, each served by an index: identities (account_id, kind, value) and
# contacts (account_id, phone) / (account_id, email). Merged contacts hold no identities and are skipped.
_PHONE_CANDIDATES = SQL(
    "SELECT i.contact_id, i.kind, i.verified FROM identities i JOIN contacts c ON c.id = i.contact_id "
    "WHERE i.account_id = :a AND i.kind = :other AND i.value = :value AND c.merged_into_id IS NULL "
    "UNION ALL SELECT id, 'profile', :false FROM contacts "
    "WHERE account_id = :a AND phone = :value AND merged_into_id IS NULL"
)
_EMAIL_CANDIDATES = SQL(
    "SELECT id, 'profile', :false FROM contacts WHERE account_id = :a AND email = :value "
    "AND merged_into_id IS NULL"
)
_NEW_SUGGESTION = SQL(
    "INSERT INTO contact_link_suggestions (account_id, contact_id, other_contact_id, reason, status, created_at) "
    "VALUES (:a, :low, :high, :reason, 'open', :now) "
    "ON CONFLICT (contact_id, other_contact_id) DO NOTHING RETURNING id"
)


def candidates(
    session: Session, account_id: int, kind: str, value: str, *, exclude: int | None = None
) -> list[Candidate]:
    """Contacts the owner of a new (kind, value) identity may already be, one per contact; a contact
    found both by identity and by its profile field counts by identity (which may be verified)."""
    if kind not in LINKABLE_KINDS:
        return []
    r = raw(session)
    if kind == "email":
        rows = r.execute(_EMAIL_CANDIDATES, {"a": account_id, "value": value, "false": False}).fetchall()
    else:
        other = "whatsapp" if kind == "phone" else "phone"
        rows = r.execute(
            _PHONE_CANDIDATES, {"a": account_id, "other": other, "value": value, "false": False}
        ).fetchall()
    found: dict[int, Candidate] = {}
    for contact_id, via, verified in rows:
        cid = int(contact_id)
        if cid == exclude:
            continue
        if cid not in found or found[cid].kind == "profile":
            found[cid] = Candidate(cid, str(via), bool(verified))
    return sorted(found.values(), key=lambda c: c.contact_id)


def reason_for(kind: str, value: str, found: Candidate) -> str:
    """Why two contacts may be one person, as the agent reads it."""
    if kind == "email":
        return f"same email address {value}"[:300]
    if found.kind == "profile":
        return f"same phone number {value} via {VIA[kind]} and on the contact's profile"
    first, second = sorted((VIA[kind], VIA[found.kind]), key=lambda v: v != "SMS")
    return f"same phone number {value} via {first} and {second}"


def suggest(session: Session, account_id: int, contact_id: int, other_id: int, reason: str) -> int | None:
    """Records that two contacts may be one person. None when the pair was suggested before, whatever
    became of it (a dismissed pair stays dismissed)."""
    if contact_id == other_id:
        return None
    low, high = sorted((contact_id, other_id))
    r = raw(session)
    row = r.one(
        _NEW_SUGGESTION,
        {"a": account_id, "low": low, "high": high, "reason": reason[:300], "now": r.ts(utcnow())},
    )
    if row is None:
        return None
    sid = int(row[0])
    record_event(
        session,
        account_id,
        "contact.link_suggested",
        {"id": sid, "contact_id": contact_id, "other_contact_id": other_id, "reason": reason[:300]},
        contact_id=contact_id,
    )
    return sid


def suggest_all(
    session: Session, account_id: int, contact_id: int, kind: str, value: str, found: list[Candidate]
) -> list[int]:
    return [
        sid
        for c in found
        if (sid := suggest(session, account_id, contact_id, c.contact_id, reason_for(kind, value, c)))
        is not None
    ]


def verified_owner(found: list[Candidate]) -> Candidate | None:
    """The contact a verified new identity joins: one whose identity of the same number is verified too.
    Profile fields are typed by hand and never count."""
    return next((c for c in found if c.kind != "profile" and c.verified), None)


def record_auto_link(
    session: Session, account_id: int, contact_id: int, identity_id: int, kind: str, via: str
) -> None:
    audit(
        session,
        account_id,
        ("system", None),
        "contact.identity_linked",
        "contact",
        contact_id,
        {"identity_id": identity_id, "kind": kind, "matched": via, "basis": "both verified"},
    )
    record_event(
        session,
        account_id,
        "contact.identity_linked",
        {"contact_id": contact_id, "identity_id": identity_id, "kind": kind, "matched": via},
        contact_id=contact_id,
    )


# ---------------------------------------------------------------- reading and deciding


def older(a: Contact, b: Contact) -> Contact:
    """The contact that survives a merge of the two: the one created first."""
    return min(a, b, key=lambda c: (c.created_at, c.id))


def suggestion_json(s: LinkSuggestion, contact: Contact, other: Contact) -> dict[str, Any]:
    """A suggestion as seen from `contact`: who the other contact is, why, and who a merge keeps."""
    return {
        "id": s.id,
        "contact_id": contact.id,
        "survivor_id": older(contact, other).id,
        "other_contact": {
            "id": other.id,
            "name": other.name,
            "email": other.email,
            "phone": other.phone,
            "created_at": other.created_at.isoformat() + "Z",
        },
        "reason": s.reason,
        "status": s.status,
        "created_at": s.created_at.isoformat() + "Z",
    }


def open_suggestions(session: Session, account_id: int, contact_id: int) -> list[dict[str, Any]]:
    """A contact's open suggestions, oldest first; pairs whose other contact was merged away are left out
    (they come back if that merge is undone)."""
    rows = list(
        session.execute(
            select(LinkSuggestion)
            .where(
                LinkSuggestion.account_id == account_id,
                LinkSuggestion.status == "open",
                or_(LinkSuggestion.contact_id == contact_id, LinkSuggestion.other_contact_id == contact_id),
            )
            .order_by(LinkSuggestion.id)
            .limit(20)
        ).scalars()
    )
    if not rows:
        return []
    ids = {contact_id} | {s.other_contact_id if s.contact_id == contact_id else s.contact_id for s in rows}
    live = {
        c.id: c
        for c in session.execute(
            select(Contact).where(
                Contact.account_id == account_id, Contact.id.in_(ids), Contact.merged_into_id.is_(None)
            )
        ).scalars()
    }
    me = live.get(contact_id)
    out = []
    for s in rows:
        other = live.get(s.other_contact_id if s.contact_id == contact_id else s.contact_id)
        if me is not None and other is not None:
            out.append(suggestion_json(s, me, other))
    return out


MAX_ID = 2**63 - 1  # BIGINT: a larger id from a URL is simply not found (PostgreSQL would refuse to bind it)


def get_suggestion(session: Session, account_id: int, suggestion_id: int) -> LinkSuggestion:
    if not 0 < suggestion_id <= MAX_ID:
        raise NotFound("suggestion not found")
    s = session.get(LinkSuggestion, suggestion_id)
    if s is None or s.account_id != account_id:
        raise NotFound("suggestion not found")
    return s


def check_open(s: LinkSuggestion) -> None:
    if s.status != "open":
        raise Conflict(f"this suggestion was already {s.status}", suggestion_status=s.status)


def dismiss_suggestion(
    session: Session, account_id: int, actor_ref: tuple[str, int | None], suggestion_id: int
) -> LinkSuggestion:
    """ "Not the same person": the pair is never suggested again."""
    s = get_suggestion(session, account_id, suggestion_id)
    check_open(s)
    s.status = "dismissed"
    s.decided_at = utcnow()
    audit(
        session,
        account_id,
        actor_ref,
        "contact.link_dismissed",
        "contact",
        s.contact_id,
        {"suggestion_id": s.id, "other_contact_id": s.other_contact_id},
    )
    record_event(
        session,
        account_id,
        "contact.link_decided",
        {
            "id": s.id,
            "status": "dismissed",
            "contact_id": s.contact_id,
            "other_contact_id": s.other_contact_id,
        },
        contact_id=s.contact_id,
    )
    return s
