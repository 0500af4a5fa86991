"""The web chat widget's front door: loader, iframe page, visitor API, live stream, and the /demo shop.

A site embeds one tag, ``<script src="https://caredesk.example/widget/loader.js" data-inbox="TOKEN" async>``.
The loader adds a launcher and an iframe served from here (/widget/frame), so the chat's CSS, storage
and cookies are isolated from the host page. Inside the iframe the visitor holds a signed visitor
token (localStorage) that maps to an identity of kind ``visitor``; every customer message goes
through ``receive_inbound`` with the client's own id as the channel message id, so a resend after a
network drop is stored once. The live stream is ``web.stream.pump`` filtered to the visitor's
contact and shaped so that nothing internal (notes, activity, handoff notes, agent emails) leaks.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import re
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import (
    APIRouter,
    FastAPI,
    File,
    Form,
    Header,
    Query,
    Request,
    UploadFile,
    WebSocket,
    WebSocketDisconnect,
)
from fastapi.responses import FileResponse, HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from caredesk.accounts.actions import inbox_by_public_token
from caredesk.accounts.actors import system_actor
from caredesk.accounts.models import Account, Agent, Inbox
from caredesk.contacts.actions import find_contact_by_identity, resolve_identity
from caredesk.contacts.identities import normalize_email
from caredesk.contacts.models import Contact, Identity
from caredesk.conversations.inbound import Inbound, InboundAttachment, receive_inbound
from caredesk.conversations.merge import merge_contacts
from caredesk.conversations.models import Attachment, Conversation, Message
from caredesk.platform.errors import Conflict, Invalid, NotFound, Unauthorized
from caredesk.platform.events import Event, EventRow, record_event, stream_bounds
from caredesk.platform.models import utcnow
from caredesk.platform.security import Signer, constant_time_equal, hmac_sha256_hex, new_token
from caredesk.platform.storage import ALLOWED_TYPES, MAX_FILE_BYTES, MAX_FILES, check_file
from caredesk.services import Services
from caredesk.web.stream import pump

router = APIRouter(tags=["widget"])

STATIC = Path(__file__).resolve().parent / "static" / "widget"
ASSETS = {
    "loader.js": "text/javascript",
    "frame.js": "text/javascript",
    "frame.css": "text/css",
    "demo.css": "text/css",
}
VISITOR_MAX_AGE = 400 * 86400  # a returning visitor is recognised for a bit over a year
UPLOAD_MAX_AGE = 86400
VISITOR_HEADER = "x-caredesk-visitor"
CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
HISTORY_LIMIT = 500

Token = Annotated[str, StringConstraints(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
VisitorToken = Annotated[str, StringConstraints(min_length=10, max_length=500)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SessionIn(_Strict):
    token: Token
    visitor: VisitorToken | None = None


class SendIn(_Strict):
    token: Token
    visitor: VisitorToken
    client_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
    text: Annotated[str, StringConstraints(max_length=65_536)] = ""
    uploads: list[Annotated[str, StringConstraints(max_length=2000)]] = Field(
        default_factory=list, max_length=MAX_FILES
    )
    name: Annotated[str, StringConstraints(max_length=200, strip_whitespace=True)] | None = None
    email: Annotated[str, StringConstraints(max_length=320, strip_whitespace=True)] | None = None
    handoff: bool = False


class VisitorIn(_Strict):
    token: Token
    visitor: VisitorToken


class ReadIn(VisitorIn):
    up_to: Annotated[int, Field(strict=True, ge=0, le=2**62)]


class ContactIn(VisitorIn):
    email: Annotated[str, StringConstraints(min_length=3, max_length=320, strip_whitespace=True)]
    name: Annotated[str, StringConstraints(max_length=200, strip_whitespace=True)] | None = None


class IdentifyIn(VisitorIn):
    user_id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    user_hash: Annotated[str, StringConstraints(min_length=64, max_length=64, pattern=r"^[0-9a-fA-F]+$")]
    name: Annotated[str, StringConstraints(max_length=200, strip_whitespace=True)] | None = None
    email: Annotated[str, StringConstraints(max_length=320, strip_whitespace=True)] | None = None


# ---------------------------------------------------------------- visitor tokens and lookups


def _visitor_signer(svc: Services) -> Signer:
    return Signer(svc.settings.secret_key, "caredesk.widget.visitor")


def _upload_signer(svc: Services) -> Signer:
    return Signer(svc.settings.secret_key, "caredesk.widget.upload")


def _visitor_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:20]


def webchat_inbox(session: Session, token: str) -> Inbox:
    inbox = inbox_by_public_token(session, token)
    if inbox is None or inbox.channel != "webchat":
        raise NotFound("no web chat inbox with this token")
    return inbox


def _visitor_value(svc: Services, inbox: Inbox, token: str) -> str:
    data = _visitor_signer(svc).loads(token, max_age=VISITOR_MAX_AGE)
    if not isinstance(data, dict) or data.get("a") != inbox.account_id or not isinstance(data.get("v"), str):
        raise Unauthorized("invalid visitor token")
    return str(data["v"])


def _contact_id(session: Session, account_id: int, visitor: str) -> int | None:
    return find_contact_by_identity(session, account_id, "visitor", visitor)


def agents_online(session: Session, account_id: int) -> int:
    q = select(func.count(Agent.id)).where(
        Agent.account_id == account_id, Agent.active.is_(True), Agent.availability == "online"
    )
    return int(session.execute(q).scalar() or 0)


def _agent_names(session: Session, account_id: int) -> dict[int, str]:
    return {
        int(i): n.split(" ")[0]
        for i, n in session.execute(select(Agent.id, Agent.name).where(Agent.account_id == account_id))
    }


def public_message(m: dict[str, Any], names: dict[int, str]) -> dict[str, Any]:
    """What a visitor may see of a message: never notes, activities, meta, signals or agent ids."""
    meta = m.get("meta") or {}
    atts = m.get("attachments") or []
    return {
        "id": m["id"],
        "conversation_id": m["conversation_id"],
        "type": m["type"],
        "sender_type": m["sender_type"],
        "sender_name": names.get(int(m["sender_id"] or 0), "")
        if m["sender_type"] in ("agent", "bot")
        else "",
        "content": m.get("content") or "",
        "status": m.get("status"),
        "created_at": m.get("created_at"),
        "client_id": meta.get("client_id") if isinstance(meta, dict) else None,
        "attachments": [
            {
                "filename": a.get("filename", ""),
                "content_type": a.get("content_type", ""),
                "size": a.get("size", 0),
            }
            for a in atts
        ],
    }


def _message_dict(m: Message, atts: list[Attachment]) -> dict[str, Any]:
    return {
        "id": m.id,
        "conversation_id": m.conversation_id,
        "type": m.type,
        "sender_type": m.sender_type,
        "sender_id": m.sender_id,
        "content": m.content,
        "status": m.status,
        "meta": m.meta,
        "created_at": m.created_at.isoformat() + "Z",
        "attachments": [
            {"filename": a.filename, "content_type": a.content_type, "size": a.size} for a in atts
        ],
    }


def visitor_history(session: Session, account_id: int, contact_id: int | None) -> list[dict[str, Any]]:
    """The visitor's messages across their web chat conversations, oldest first."""
    if contact_id is None:
        return []
    conv_ids = select(Conversation.id).where(
        Conversation.account_id == account_id, Conversation.contact_id == contact_id
    )
    rows = list(
        session.execute(
            select(Message)
            .join(Inbox, Inbox.id == Message.inbox_id)
            .where(
                Message.conversation_id.in_(conv_ids),
                Message.type.in_(("incoming", "outgoing")),
                Inbox.channel == "webchat",
            )
            .order_by(Message.id.desc())
            .limit(HISTORY_LIMIT)
        ).scalars()
    )
    rows.reverse()
    atts: dict[int, list[Attachment]] = {}
    if rows:
        for a in session.execute(
            select(Attachment).where(Attachment.message_id.in_([m.id for m in rows])).order_by(Attachment.id)
        ).scalars():
            atts.setdefault(int(a.message_id or 0), []).append(a)
    names = _agent_names(session, account_id)
    return [public_message(_message_dict(m, atts.get(m.id, [])), names) for m in rows]


def _contact_state(session: Session, contact_id: int | None) -> dict[str, Any] | None:
    if contact_id is None:
        return None
    c = session.get(Contact, contact_id)
    return None if c is None else {"name": c.name, "email": c.email}


def _inbox_public(inbox: Inbox, account: Account) -> dict[str, Any]:
    prechat = inbox.config.get("prechat") if isinstance(inbox.config.get("prechat"), dict) else {}
    fields = [f for f in (prechat or {}).get("fields", []) if f in ("name", "email")]
    return {
        "name": inbox.name,
        "business": account.name,
        "greeting": inbox.greeting,
        "prechat": {"enabled": bool((prechat or {}).get("enabled")) and bool(fields), "fields": fields},
        "locale": str(inbox.config.get("locale", "")),
        "max_file_bytes": MAX_FILE_BYTES,
        "file_types": sorted(ALLOWED_TYPES),
    }


# ---------------------------------------------------------------- HTTP API


def _svc(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


@router.post("/widget/api/session")
async def session_(body: SessionIn, request: Request) -> dict[str, Any]:
    """Start or resume: a new visitor gets a fresh token; a returning one gets their history back."""
    svc = _svc(request)

    def r(s: Session) -> dict[str, Any]:
        inbox = webchat_inbox(s, body.token)
        visitor_token = body.visitor
        visitor = None
        if visitor_token:
            try:
                visitor = _visitor_value(svc, inbox, visitor_token)
            except Unauthorized:
                visitor = None  # a tampered or foreign token starts a fresh visitor; it never errors the page
        if visitor is None:
            visitor = new_token(nbytes=18)
            visitor_token = _visitor_signer(svc).dumps({"a": inbox.account_id, "v": visitor})
        # Read the stream position first: anything committed after it arrives on the stream, and
        # the client drops what it already has by message id (no gap, no duplicate).
        _oldest, last = stream_bounds(s, inbox.account_id)
        contact_id = _contact_id(s, inbox.account_id, visitor)
        account = s.get(Account, inbox.account_id)
        assert account is not None
        return {
            "visitor": visitor_token,
            "contact": _contact_state(s, contact_id),
            "messages": visitor_history(s, inbox.account_id, contact_id),
            "last_event_id": last,
            "inbox": _inbox_public(inbox, account),
            "agents_online": agents_online(s, inbox.account_id) > 0,
        }

    return await svc.db.read(r)


def _attachments_from_uploads(
    svc: Services, account_id: int, visitor: str, uploads: list[str]
) -> list[InboundAttachment]:
    out = []
    for tok in uploads:
        data = _upload_signer(svc).loads(tok, max_age=UPLOAD_MAX_AGE)
        if (
            not isinstance(data, dict)
            or data.get("a") != account_id
            or data.get("v") != _visitor_hash(visitor)
        ):
            raise Invalid("an attachment was not uploaded by this visitor, or its upload expired")
        out.append(
            InboundAttachment(
                filename=str(data["f"]),
                content_type=str(data["t"]),
                size=int(data["s"]),
                storage_key=str(data["k"]),
            )
        )
    return out


@router.post("/widget/api/messages", status_code=201)
async def send(body: SendIn, request: Request) -> dict[str, Any]:
    """Acknowledged only after COMMIT; the same client id sent again answers the stored message."""
    svc = _svc(request)
    text = body.text.strip()
    email = normalize_email(body.email) if body.email else None

    def w(s: Session) -> dict[str, Any]:
        inbox = webchat_inbox(s, body.token)
        visitor = _visitor_value(svc, inbox, body.visitor)
        atts = _attachments_from_uploads(svc, inbox.account_id, visitor, body.uploads)
        if not text and not atts:
            raise Invalid("write a message or attach a file")
        meta: dict[str, Any] = {"client_id": body.client_id}
        if body.handoff:
            meta["handoff_requested"] = True
        r = receive_inbound(
            s,
            Inbound(
                account_id=inbox.account_id,
                inbox_id=inbox.id,
                identity_kind="visitor",
                identity_value=visitor,
                text=text,
                channel_message_id=f"w:{_visitor_hash(visitor)}:{body.client_id}",
                contact_name=body.name or None,
                meta=meta,
                attachments=atts,
            ),
        )
        if r.duplicate and _contact_id(s, inbox.account_id, visitor) != r.contact_id:
            raise Conflict("this message id belongs to another visitor")
        if not r.duplicate and (email or body.name):
            _remember_contact(s, inbox.account_id, r.contact_id, email, body.name)
        return {
            "id": r.message_id,
            "conversation_id": r.conversation_id,
            "client_id": body.client_id,
            "duplicate": r.duplicate,
            "contact": _contact_state(s, r.contact_id),
        }

    return await svc.db.write(w)


def _remember_contact(
    s: Session, account_id: int, contact_id: int, email: str | None, name: str | None
) -> None:
    c = s.get(Contact, contact_id)
    if c is None:
        return
    if name and not c.name:
        c.name = name[:200]
    if email:
        c.email = c.email or email
        if find_contact_by_identity(s, account_id, "email", email) is None:
            # Unverified: the visitor typed it. It lets agents answer by email; it never merges on its own.
            s.add(
                Identity(
                    account_id=account_id, contact_id=contact_id, kind="email", value=email, verified=False
                )
            )
    c.updated_at = utcnow()


@router.post("/widget/api/contact")
async def leave_contact(body: ContactIn, request: Request) -> dict[str, Any]:
    """No one online: the visitor leaves an email address to be answered by email."""
    svc = _svc(request)
    email = normalize_email(body.email)

    def w(s: Session) -> dict[str, Any]:
        inbox = webchat_inbox(s, body.token)
        visitor = _visitor_value(svc, inbox, body.visitor)
        contact_id, _created = resolve_identity(s, inbox.account_id, "visitor", visitor, name=body.name)
        _remember_contact(s, inbox.account_id, contact_id, email, body.name)
        return {"contact": _contact_state(s, contact_id)}

    return await svc.db.write(w)


@router.post("/widget/api/typing", status_code=204)
async def typing(body: VisitorIn, request: Request) -> Response:
    svc = _svc(request)

    def w(s: Session) -> None:
        inbox = webchat_inbox(s, body.token)
        visitor = _visitor_value(svc, inbox, body.visitor)
        conv = _open_conversation(s, inbox, visitor)
        if conv is not None:
            record_event(
                s,
                inbox.account_id,
                "conversation.presence",
                {"conversation_id": conv.id, "by": "contact", "state": "typing"},
                conversation_id=conv.id,
                contact_id=conv.contact_id,
            )

    await svc.db.write(w)
    return Response(status_code=204)


@router.post("/widget/api/read", status_code=204)
async def read(body: ReadIn, request: Request) -> Response:
    """A read receipt: the visitor has seen the agents' messages up to `up_to`."""
    svc = _svc(request)

    def w(s: Session) -> None:
        inbox = webchat_inbox(s, body.token)
        visitor = _visitor_value(svc, inbox, body.visitor)
        conv = _open_conversation(s, inbox, visitor, any_status=True)
        if conv is not None:
            record_event(
                s,
                inbox.account_id,
                "conversation.read",
                {"conversation_id": conv.id, "by": "contact", "up_to": body.up_to},
                conversation_id=conv.id,
                contact_id=conv.contact_id,
            )

    await svc.db.write(w)
    return Response(status_code=204)


def _open_conversation(
    s: Session, inbox: Inbox, visitor: str, *, any_status: bool = False
) -> Conversation | None:
    contact_id = _contact_id(s, inbox.account_id, visitor)
    if contact_id is None:
        return None
    q = select(Conversation).where(Conversation.contact_id == contact_id, Conversation.inbox_id == inbox.id)
    if not any_status:
        q = q.where(Conversation.status != "resolved")
    return s.execute(q.order_by(Conversation.id.desc()).limit(1)).scalar_one_or_none()


@router.post("/widget/api/identify")
async def identify(body: IdentifyIn, request: Request) -> dict[str, Any]:
    """The site vouches for its logged-in user: HMAC-SHA256(inbox identity secret, user id).

    Without the secret nobody can produce the hash, so nobody can read another customer's history.
    A verified user seen before (other device, other visit) gets their own contact and history back.
    """
    svc = _svc(request)
    email = normalize_email(body.email) if body.email else None

    def w(s: Session) -> dict[str, Any]:
        inbox = webchat_inbox(s, body.token)
        visitor = _visitor_value(svc, inbox, body.visitor)
        secret = str(inbox.config.get("identity_secret") or "")
        if not secret or not constant_time_equal(
            hmac_sha256_hex(secret, body.user_id), body.user_hash.lower()
        ):
            raise Unauthorized("identity verification failed")
        acc = inbox.account_id
        user_value = f"user:{body.user_id}"
        known = find_contact_by_identity(s, acc, "api", user_value)
        mine = _contact_id(s, acc, visitor)
        if known is None:
            if mine is None:
                mine, _ = resolve_identity(s, acc, "visitor", visitor, name=body.name)
            s.add(Identity(account_id=acc, contact_id=mine, kind="api", value=user_value, verified=True))
            s.flush()
            target = mine
        elif mine is None:
            s.add(Identity(account_id=acc, contact_id=known, kind="visitor", value=visitor, verified=False))
            s.flush()
            target = known
        elif mine != known:
            # The anonymous visitor turns out to be a known customer: merge (recorded and reversible).
            merge_contacts(s, system_actor(acc), known, mine)
            target = known
        else:
            target = known
        _remember_contact(s, acc, target, email, body.name)
        return {"contact": _contact_state(s, target), "messages": visitor_history(s, acc, target)}

    return await svc.db.write(w)


@router.post("/widget/api/uploads", status_code=201)
async def upload(
    request: Request,
    token: Annotated[str, Form(max_length=64)],
    visitor: Annotated[str, Form(max_length=500)],
    file: Annotated[UploadFile, File()],
) -> dict[str, Any]:
    svc = _svc(request)
    inbox = await svc.db.read(webchat_inbox, token)
    value = _visitor_value(svc, inbox, visitor)
    data = await file.read(MAX_FILE_BYTES + 1)
    name, ctype = check_file(file.filename, file.content_type, data)
    key = await asyncio.to_thread(svc.storage.put, inbox.account_id, name, data)
    signed = _upload_signer(svc).dumps(
        {"a": inbox.account_id, "v": _visitor_hash(value), "k": key, "f": name, "t": ctype, "s": len(data)}
    )
    return {"upload": signed, "filename": name, "content_type": ctype, "size": len(data)}


def visitor_attachment(s: Session, inbox: Inbox, visitor: str, message_id: int, index: int) -> Attachment:
    contact_id = _contact_id(s, inbox.account_id, visitor)
    m = s.get(Message, message_id)
    if (
        contact_id is None
        or m is None
        or m.account_id != inbox.account_id
        or m.type not in ("incoming", "outgoing")
    ):
        raise NotFound("file not found")
    conv = s.get(Conversation, m.conversation_id)
    if conv is None or conv.contact_id != contact_id:
        raise NotFound("file not found")
    atts = list(
        s.execute(select(Attachment).where(Attachment.message_id == m.id).order_by(Attachment.id)).scalars()
    )
    if not 0 <= index < len(atts):
        raise NotFound("file not found")
    return atts[index]


def file_response(data: bytes, a: Attachment, *, inline_images: bool = True) -> Response:
    """A stored file, never rendered as a page: images inline (unless `inline_images` is off: then every
    file is a download; an <img> still shows it), everything else as a download."""
    inline = inline_images and a.content_type in ("image/png", "image/jpeg", "image/gif", "image/webp")
    safe_name = re.sub(r"[^A-Za-z0-9._-]+", "_", a.filename)[:120] or "file"
    return Response(
        data,
        media_type=a.content_type if a.content_type in ALLOWED_TYPES else "application/octet-stream",
        headers={
            "Content-Disposition": f'{"inline" if inline else "attachment"}; filename="{safe_name}"',
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, max-age=3600",
        },
    )


@router.get("/widget/api/files/{message_id}/{index}")
async def visitor_file(
    message_id: int,
    index: int,
    request: Request,
    token: Annotated[str, Query(max_length=64)],
    x_caredesk_visitor: Annotated[str, Header(max_length=500)],
) -> Response:
    svc = _svc(request)

    def r(s: Session) -> Attachment:
        inbox = webchat_inbox(s, token)
        return visitor_attachment(s, inbox, _visitor_value(svc, inbox, x_caredesk_visitor), message_id, index)

    a = await svc.db.read(r)
    data = await asyncio.to_thread(svc.storage.get, a.storage_key)
    return file_response(data, a)


# ---------------------------------------------------------------- live stream


def _visitor_accept(contact_id: int | None) -> Any:
    def accept(ev: Event) -> bool:
        if contact_id is None or ev.contact_id != contact_id:
            return False
        if ev.type in ("message.created", "message.updated"):
            return ev.data.get("type") in ("incoming", "outgoing")
        if ev.type == "conversation.presence":
            return ev.data.get("by") == "agent" and ev.data.get("state") == "typing"
        if ev.type == "conversation.read":
            return ev.data.get("by") == "agent"
        return False

    return accept


def _visitor_shape(names: dict[int, str]) -> Any:
    def shape(ev: Event) -> dict[str, Any]:
        if ev.type.startswith("message."):
            return {"id": ev.seq, "type": ev.type, "data": public_message(ev.data, names)}
        data = {
            "conversation_id": ev.data.get("conversation_id"),
            "state": ev.data.get("state"),
            "up_to": ev.data.get("up_to"),
            "name": str(ev.data.get("name") or "").split(" ")[0],
        }
        return {"id": ev.seq, "type": ev.type, "data": data}

    return shape


def _stream_context(svc: Services, token: str, visitor_token: str) -> Any:
    def r(s: Session) -> tuple[int, int | None, dict[int, str]]:
        inbox = webchat_inbox(s, token)
        visitor = _visitor_value(svc, inbox, visitor_token)
        return inbox.account_id, _contact_id(s, inbox.account_id, visitor), _agent_names(s, inbox.account_id)

    return r


@router.websocket("/widget/ws")
async def visitor_ws(ws: WebSocket) -> None:
    """The visitor's live stream; resumes after `last_event_id` with no gap and no duplicate."""
    svc: Services = ws.app.state.services
    origin, host = ws.headers.get("origin"), ws.headers.get("host")
    if origin and host and origin.split("://", 1)[-1] != host:
        await ws.close(code=4403, reason="origin not allowed")  # the widget frame is always served by us
        return
    token, visitor = ws.query_params.get("token", ""), ws.query_params.get("visitor", "")
    raw_last = ws.query_params.get("last_event_id", "")
    last_id = int(raw_last) if raw_last.isdigit() and len(raw_last) < 19 else None
    try:
        account_id, contact_id, names = await svc.db.read(_stream_context(svc, token[:64], visitor[:500]))
    except (NotFound, Unauthorized):
        await ws.close(code=4401, reason="unauthorized")
        return
    await ws.accept()

    async def send_frame(frame: dict[str, Any]) -> None:
        await ws.send_text(orjson.dumps(frame).decode())

    async def drain() -> None:
        # The widget sends nothing we need on this socket; reading notices a closed connection.
        while True:
            await ws.receive_text()

    reader = asyncio.create_task(drain())
    streamer = asyncio.create_task(
        pump(
            svc.db,
            svc.hub,
            account_id,
            last_id,
            send_frame,
            accept=_visitor_accept(contact_id),
            heartbeat=svc.settings.heartbeat_seconds,
            shape=_visitor_shape(names),
        )
    )
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, Exception):
        await asyncio.wait({reader, streamer}, return_when=asyncio.FIRST_COMPLETED)
    for t in (reader, streamer):
        t.cancel()
        with contextlib.suppress(BaseException):
            await t


def _poll(svc: Services, token: str, visitor_token: str, after: int) -> Any:
    def r(s: Session) -> dict[str, Any]:
        account_id, contact_id, names = _stream_context(svc, token, visitor_token)(s)
        _oldest, last = stream_bounds(s, account_id)
        if contact_id is None:
            return {"events": [], "last_event_id": last}
        rows = s.execute(
            select(EventRow)
            .where(EventRow.account_id == account_id, EventRow.contact_id == contact_id, EventRow.seq > after)
            .order_by(EventRow.seq)
            .limit(200)
        ).scalars()
        accept, shape = _visitor_accept(contact_id), _visitor_shape(names)
        evs = [Event(e.account_id, e.seq, e.type, e.data, e.conversation_id, e.contact_id) for e in rows]
        out = [shape(e) for e in evs if accept(e)]
        upto = evs[-1].seq if len(evs) == 200 else last
        return {"events": out, "last_event_id": max(upto, after)}

    return r


@router.get("/widget/api/events")
async def poll_events(
    request: Request,
    token: Annotated[str, Query(max_length=64)],
    x_caredesk_visitor: Annotated[str, Header(max_length=500)],
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> dict[str, Any]:
    """Fallback for networks that block WebSockets: the same filtered events, polled."""
    svc = _svc(request)
    return await svc.db.read(_poll(svc, token, x_caredesk_visitor, after))


# ---------------------------------------------------------------- pages and assets


def _asset_path(name: str) -> Path:
    if name not in ASSETS:
        raise NotFound("no such widget asset")
    path = STATIC / name
    if not path.is_file():
        raise NotFound("widget assets are not built; run `make assets`")
    return path


@router.get("/widget/loader.js", include_in_schema=False)
async def loader() -> FileResponse:
    # Sites embed this URL: short cache, so a fix reaches every site quickly.
    return FileResponse(
        _asset_path("loader.js"),
        media_type=ASSETS["loader.js"],
        headers={"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"},
    )


@router.get("/widget/assets/{name}", include_in_schema=False)
async def asset(name: str) -> FileResponse:
    return FileResponse(
        _asset_path(name), media_type=ASSETS[name], headers={"Cache-Control": "public, max-age=300"}
    )


FRAME_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self' ws: wss:; "
    "frame-ancestors *; base-uri 'none'; form-action 'none'; object-src 'none'"
)


@router.get("/widget/frame", include_in_schema=False)
async def frame(
    request: Request,
    token: Annotated[str, Query(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")],
    lang: Annotated[str, Query(max_length=16, pattern=r"^[A-Za-z-]*$")] = "",
) -> HTMLResponse:
    """The chat itself, in an iframe on the customer's site; any site may frame it (no agent data in it)."""
    svc = _svc(request)
    inbox = await svc.db.read(webchat_inbox, token)
    config = html.escape(
        orjson.dumps({"token": token, "lang": lang, "title": inbox.name}).decode(), quote=True
    )
    page = f"""<!doctype html>
<html lang="{html.escape(lang or "en")}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Chat</title>
<link rel="stylesheet" href="/widget/assets/frame.css">
</head><body>
<div id="cd-app" data-config="{config}"></div>
<script src="/widget/assets/frame.js"></script>
</body></html>"""
    return HTMLResponse(page, headers={"Content-Security-Policy": FRAME_CSP, "Cache-Control": "no-store"})


def demo_inbox_token(session: Session) -> str | None:
    return session.execute(
        select(Inbox.public_token)
        .join(Account, Account.id == Inbox.account_id)
        .where(Account.slug == "demo", Inbox.channel == "webchat")
        .order_by(Inbox.id)
        .limit(1)
    ).scalar()


@router.get("/demo", include_in_schema=False)
async def demo(request: Request) -> HTMLResponse:
    """A small shop page of the demo business, embedding the widget exactly as a customer's site would."""
    svc = _svc(request)
    token = await svc.db.read(demo_inbox_token)
    if token is None:
        raise NotFound("the demo business is not seeded; run `caredesk demo seed`")
    products = [
        ("Alpine 2 tent", "249.00"),
        ("Summit 4 tent", "489.00"),
        ("Ridge hiking boots", "159.00"),
        ("Trail stove", "79.00"),
    ]
    cards = "".join(
        f'<article class="card"><h2>{html.escape(n)}</h2><p class="price">{html.escape(p)} EUR</p>'
        '<button type="button">Add to cart</button></article>'
        for n, p in products
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Trailhead Outfitters</title>
<link rel="stylesheet" href="/widget/assets/demo.css">
</head><body class="demo-shop">
<header class="demo-head"><strong>Trailhead Outfitters</strong>
<nav><a href="/demo">Tents</a> <a href="/demo">Boots</a> <a href="/demo">Stoves</a></nav></header>
<main><h1>Gear for the long way round</h1>
<p>Free returns for 60 days. Questions? Chat with us, bottom right.</p>
<section class="grid">{cards}</section></main>
<script src="/widget/loader.js" data-inbox="{html.escape(token)}" async></script>
</body></html>"""
    return HTMLResponse(page)


def setup(app: FastAPI, services: Services) -> None:
    app.include_router(router)


def embed_snippet(public_url: str, inbox_token: str) -> str:
    """The one tag an admin copies into their site."""
    base = public_url.rstrip("/")
    return f'<script src="{base}/widget/loader.js" data-inbox="{inbox_token}" async></script>'


def identity_hash(secret: str, user_id: str) -> str:
    """What the site's server computes for `Caredesk.identify` (documented for site developers)."""
    return hmac_sha256_hex(secret, user_id)


__all__ = ["embed_snippet", "identity_hash", "router", "setup"]
