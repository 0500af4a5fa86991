"""Contacts: search, create, edit, identities, timeline, merge and un-merge, link suggestions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from caredesk.contacts import actions as ct
from caredesk.contacts import linking
from caredesk.conversations.merge import accept_link_suggestion, merge_contacts, unmerge_contacts
from caredesk.conversations.queries import ConversationFilter, contact_timeline, list_conversations
from caredesk.web.api.schemas import ContactIn, ContactPatch, IdentityIn, MergeIn
from caredesk.web.deps import ActorDep, ServicesDep

router = APIRouter(prefix="/api/v1/contacts", tags=["contacts"])


@router.get("")
async def search(
    actor: ActorDep,
    svc: ServicesDep,
    q: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 25,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    def read(s: Session) -> dict[str, Any]:
        rows = ct.search_contacts(s, actor.account_id, q, limit, before)
        idents = ct.identities_of(s, [c.id for c in rows])
        return {
            "items": [ct.contact_json(c, idents[c.id]) for c in rows],
            "next": rows[-1].id if len(rows) == limit else None,
        }

    return await svc.db.read(read)


@router.post("", status_code=201)
async def create(body: ContactIn, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    def w(s: Session) -> dict[str, Any]:
        c = ct.create_contact(s, actor, body.model_dump())
        return ct.contact_json(c, ct.identities_of(s, [c.id])[c.id])

    return await svc.db.write(w)


@router.post("/merge", status_code=201)
async def merge(body: MergeIn, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    def w(s: Session) -> dict[str, Any]:
        rec = merge_contacts(s, actor, body.survivor_id, body.merged_id)
        return {
            "merge_id": rec.id,
            "survivor_id": rec.survivor_id,
            "merged_id": rec.merged_id,
            "moved": {k: rec.moved[k] for k in ("identities", "conversations")},
        }

    return await svc.db.write(w)


@router.post("/merges/{merge_id}/undo")
async def unmerge(merge_id: int, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    def w(s: Session) -> dict[str, Any]:
        rec = unmerge_contacts(s, actor, merge_id)
        return {"merge_id": rec.id, "survivor_id": rec.survivor_id, "restored_id": rec.merged_id}

    return await svc.db.write(w)


@router.post("/link-suggestions/{suggestion_id}/accept")
async def accept_suggestion(suggestion_id: int, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    """Merge the two contacts (the older one survives); undo with the merge's undo."""

    def w(s: Session) -> dict[str, Any]:
        rec = accept_link_suggestion(s, actor, suggestion_id)
        return {
            "id": suggestion_id,
            "status": "accepted",
            "merge_id": rec.id,
            "survivor_id": rec.survivor_id,
            "merged_id": rec.merged_id,
        }

    return await svc.db.write(w)


@router.post("/link-suggestions/{suggestion_id}/dismiss")
async def dismiss_suggestion(suggestion_id: int, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    """Not the same person: this pair is never suggested again."""

    def w(s: Session) -> dict[str, Any]:
        sug = linking.dismiss_suggestion(s, actor.account_id, actor.audit_ref, suggestion_id)
        return {"id": sug.id, "status": sug.status}

    return await svc.db.write(w)


@router.get("/{contact_id}")
async def get(contact_id: int, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    def read(s: Session) -> dict[str, Any]:
        c = ct.get_contact(s, actor.account_id, contact_id)
        return ct.contact_json(c, ct.identities_of(s, [c.id])[c.id])

    return await svc.db.read(read)


@router.patch("/{contact_id}")
async def patch(contact_id: int, body: ContactPatch, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)

    def w(s: Session) -> dict[str, Any]:
        c = ct.update_contact(s, actor, contact_id, changes)
        return ct.contact_json(c, ct.identities_of(s, [c.id])[c.id])

    return await svc.db.write(w)


@router.post("/{contact_id}/identities", status_code=201)
async def add_identity(
    contact_id: int, body: IdentityIn, actor: ActorDep, svc: ServicesDep
) -> dict[str, Any]:
    def w(s: Session) -> dict[str, Any]:
        i = ct.add_identity(s, actor, contact_id, body.kind, body.value, verified=body.verified)
        return {
            "id": i.id,
            "kind": i.kind,
            "value": i.value,
            "verified": i.verified,
            "contact_id": i.contact_id,
        }

    return await svc.db.write(w)


@router.get("/{contact_id}/timeline")
async def timeline(contact_id: int, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    def read(s: Session) -> dict[str, Any]:
        ct.get_contact(s, actor.account_id, contact_id)
        return {"items": contact_timeline(s, actor.account_id, contact_id)}

    return await svc.db.read(read)


@router.get("/{contact_id}/conversations")
async def conversations(contact_id: int, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    def read(s: Session) -> dict[str, Any]:
        ct.get_contact(s, actor.account_id, contact_id)
        return list_conversations(
            s,
            actor.account_id,
            actor.id,
            ConversationFilter(status="all", contact_id=contact_id, limit=100, sort="newest"),
        )

    return await svc.db.read(read)


@router.get("/{contact_id}/link-suggestions")
async def link_suggestions(contact_id: int, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    """Contacts that may be the same person as this one, with the reason; open ones only."""

    def read(s: Session) -> dict[str, Any]:
        ct.get_contact(s, actor.account_id, contact_id)
        return {"items": linking.open_suggestions(s, actor.account_id, contact_id)}

    return await svc.db.read(read)
