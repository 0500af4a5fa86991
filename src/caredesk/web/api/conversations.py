"""Conversations: list with filters and counts, detail, messages, assign, transfer, snooze, resolve, labels."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import Response
from sqlalchemy.orm import Session

from caredesk.accounts.actors import Actor
from caredesk.conversations import actions as cv
from caredesk.conversations.attachments import attachment_at, attachments_json
from caredesk.conversations.delivery import retry_message
from caredesk.conversations.models import Message
from caredesk.conversations.queries import (
    ConversationFilter,
    conversation_counts,
    conversation_detail,
    list_conversations,
    list_messages,
)
from caredesk.conversations.serialize import message_json
from caredesk.platform.errors import Invalid, NotFound
from caredesk.platform.storage import MAX_FILE_BYTES, MAX_FILES
from caredesk.services import Services
from caredesk.web.api.schemas import AssignIn, ConversationPatch, LabelsIn, MessageIn, SnoozeIn, TransferIn
from caredesk.web.deps import ActorDep, ServicesDep
from caredesk.web.files import forget_uploads, store_uploads

router = APIRouter(prefix="/api/v1/conversations", tags=["conversations"])

View = Literal["mine", "unassigned", "my_teams", "all"]
Status = Literal["open", "pending", "snoozed", "resolved", "all"]
Sort = Literal["recent", "waiting_longest", "newest"]


def _filter(
    view: View,
    status: Status,
    inbox_id: int | None,
    channel: str | None,
    label: str | None,
    assignee_id: int | None,
    team_id: int | None,
    sort: Sort,
    limit: int,
    cursor: int | None,
) -> ConversationFilter:
    return ConversationFilter(
        view=view,
        status=status,
        inbox_id=inbox_id,
        channel=channel,
        label=label,
        assignee_id=assignee_id,
        team_id=team_id,
        sort=sort,
        limit=limit,
        before=cursor,
    )


@router.get("")
async def list_(
    actor: ActorDep,
    svc: ServicesDep,
    view: View = "all",
    status: Status = "open",
    inbox_id: Annotated[int | None, Query(ge=1)] = None,
    channel: Annotated[str | None, Query(max_length=32)] = None,
    label: Annotated[str | None, Query(max_length=64)] = None,
    assignee_id: Annotated[int | None, Query(ge=1)] = None,
    team_id: Annotated[int | None, Query(ge=1)] = None,
    sort: Sort = "recent",
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
    cursor: Annotated[int | None, Query(ge=0, le=1_000_000)] = None,
) -> dict[str, Any]:
    f = _filter(view, status, inbox_id, channel, label, assignee_id, team_id, sort, limit, cursor)
    return await svc.db.read(list_conversations, actor.account_id, actor.id, f)


@router.get("/counts")
async def counts(
    actor: ActorDep,
    svc: ServicesDep,
    status: Status = "open",
    inbox_id: Annotated[int | None, Query(ge=1)] = None,
    channel: Annotated[str | None, Query(max_length=32)] = None,
    label: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, int]:
    f = _filter("all", status, inbox_id, channel, label, None, None, "recent", 1, None)
    return await svc.db.read(conversation_counts, actor.account_id, actor.id, f)


@router.get("/{conversation_id}")
async def get(conversation_id: int, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    return await svc.db.read(conversation_detail, actor.account_id, conversation_id)


@router.patch("/{conversation_id}")
async def patch(
    conversation_id: int, body: ConversationPatch, actor: ActorDep, svc: ServicesDep
) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)

    def w(s: Session) -> dict[str, Any]:
        cv.update_conversation(s, actor, conversation_id, changes)
        return conversation_detail(s, actor.account_id, conversation_id)

    return await svc.db.write(w)


@router.get("/{conversation_id}/messages")
async def messages(
    conversation_id: int,
    actor: ActorDep,
    svc: ServicesDep,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    items = await svc.db.read(list_messages, actor.account_id, conversation_id, after, limit)
    return {"items": items}


@router.post("/{conversation_id}/messages", status_code=201)
async def reply(conversation_id: int, body: MessageIn, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    def w(s: Session) -> dict[str, Any]:
        return message_json(
            cv.send_reply(s, actor, conversation_id, body.content, private=body.private, echo_id=body.echo_id)
        )

    return await svc.db.write(w)


@router.post("/{conversation_id}/attachments", status_code=201)
async def reply_with_files(
    conversation_id: int,
    actor: ActorDep,
    svc: ServicesDep,
    files: Annotated[
        list[UploadFile], File(description=f"1 to {MAX_FILES} files, {MAX_FILE_BYTES} bytes each")
    ],
    content: Annotated[str, Form(max_length=65_536)] = "",
    private: Annotated[bool, Form()] = False,
) -> dict[str, Any]:
    """A reply (or, with `private`, a note) with files: multipart/form-data. Accepted types are those of
    the web chat widget (images, PDF, UTF-8 text), checked against the file's content."""
    await svc.db.read(cv.get_conversation, actor.account_id, conversation_id)
    stored = await store_uploads(svc, actor.account_id, files)
    if not stored:
        raise Invalid("attach at least one file")

    def w(s: Session) -> dict[str, Any]:
        m = cv.send_reply(s, actor, conversation_id, content, private=private, attachments=stored)
        return {**message_json(m), "attachments": attachments_json(s, [m.id]).get(m.id, [])}

    try:
        return await svc.db.write(w)
    except Exception:
        await forget_uploads(svc, stored)
        raise


@router.get("/{conversation_id}/messages/{message_id}/attachments/{index}")
async def attachment(
    conversation_id: int, message_id: int, index: int, actor: ActorDep, svc: ServicesDep
) -> Response:
    """One file of a message of this conversation, as a download with its content type."""
    from caredesk.web.widget import file_response

    def r(s: Session) -> Any:
        conv = cv.get_conversation(s, actor.account_id, conversation_id)
        a = attachment_at(s, actor.account_id, message_id, index)
        m = s.get(Message, message_id)
        if m is None or m.conversation_id != conv.id:
            raise NotFound("file not found")
        return a

    a = await svc.db.read(r)
    data = await asyncio.to_thread(svc.storage.get, a.storage_key)
    return file_response(data, a, inline_images=False)


@router.post("/{conversation_id}/messages/{message_id}/retry")
async def retry(conversation_id: int, message_id: int, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    """Send a failed outgoing message again (409 for a message that has not failed)."""

    def w(s: Session) -> dict[str, Any]:
        return message_json(retry_message(s, actor, conversation_id, message_id))

    return await svc.db.write(w)


@router.post("/{conversation_id}/notes", status_code=201)
async def note(conversation_id: int, body: MessageIn, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    def w(s: Session) -> dict[str, Any]:
        return message_json(
            cv.send_reply(s, actor, conversation_id, body.content, private=True, echo_id=body.echo_id)
        )

    return await svc.db.write(w)


def _action(fn: Callable[..., Any]) -> Callable[..., Awaitable[dict[str, Any]]]:
    async def run(
        svc: Services, actor: Actor, conversation_id: int, *args: Any, **kwargs: Any
    ) -> dict[str, Any]:
        def w(s: Session) -> dict[str, Any]:
            fn(s, actor, conversation_id, *args, **kwargs)
            return conversation_detail(s, actor.account_id, conversation_id)

        return await svc.db.write(w)

    return run


@router.post("/{conversation_id}/assign")
async def assign(conversation_id: int, body: AssignIn, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    return await _action(cv.assign)(svc, actor, conversation_id, body.agent_id, body.team_id)


@router.post("/{conversation_id}/transfer")
async def transfer(
    conversation_id: int, body: TransferIn, actor: ActorDep, svc: ServicesDep
) -> dict[str, Any]:
    return await _action(cv.transfer)(
        svc, actor, conversation_id, note=body.note, agent_id=body.agent_id, team_id=body.team_id
    )


@router.post("/{conversation_id}/snooze")
async def snooze(conversation_id: int, body: SnoozeIn, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    until = body.until.astimezone(dt.UTC).replace(tzinfo=None) if body.until.tzinfo else body.until
    return await _action(cv.set_status)(svc, actor, conversation_id, "snoozed", snoozed_until=until)


@router.post("/{conversation_id}/resolve")
async def resolve(conversation_id: int, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    return await _action(cv.set_status)(svc, actor, conversation_id, "resolved")


@router.post("/{conversation_id}/reopen")
async def reopen(conversation_id: int, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    return await _action(cv.set_status)(svc, actor, conversation_id, "open")


@router.post("/{conversation_id}/labels")
async def labels(conversation_id: int, body: LabelsIn, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    return await _action(cv.set_labels)(svc, actor, conversation_id, body.add, body.remove)
