"""Workspace routes: login, the conversation list and view (htmx partials), actions, files.

Pages read the session cookie and redirect to /login without one. Every state change goes through
`ActorDep`, which checks the CSRF token (htmx sends it as X-CSRF-Token; plain forms as a field).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from caredesk.accounts import actions as acc
from caredesk.contacts import linking
from caredesk.contacts.actions import find_contact_by_identity
from caredesk.contacts.identities import normalize_email
from caredesk.conversations import actions as cv
from caredesk.conversations.attachments import attachment_at
from caredesk.conversations.delivery import retry_message as retry_delivery
from caredesk.conversations.merge import accept_link_suggestion, merge_contacts
from caredesk.conversations.models import Conversation, Message
from caredesk.conversations.queries import ConversationFilter
from caredesk.platform.errors import CaredeskError, Invalid, NotFound
from caredesk.platform.events import record_event
from caredesk.platform.security import constant_time_equal, new_token
from caredesk.platform.storage import MAX_FILES
from caredesk.services import Services
from caredesk.ui import admin, views
from caredesk.ui.actions import router as actions_router
from caredesk.ui.render import fragment, page
from caredesk.ui.session import LoginRequired, Viewer, services, viewer
from caredesk.web.deps import SESSION_COOKIE, ActorDep, ServicesDep
from caredesk.web.files import forget_uploads, store_uploads

router = APIRouter(include_in_schema=False)
STATIC = Path(__file__).resolve().parent / "static"
LOGIN_CSRF_COOKIE = "cd_login_csrf"

View = Literal["mine", "unassigned", "my_teams", "all"]
Status = Literal["open", "pending", "snoozed", "resolved", "all"]
Sort = Literal["recent", "waiting_longest", "newest"]


# ---------------------------------------------------------------- login


def _login_page(error: str = "", status: int = 200, email: str = "") -> HTMLResponse:
    token = new_token(nbytes=18)
    resp = page("login.html", status_code=status, error=error, csrf=token, email=email)
    resp.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/login")
    return resp


@router.get("/login")
async def login_form() -> HTMLResponse:
    return _login_page()


@router.post("/login")
async def login_submit(request: Request, svc: ServicesDep) -> Response:
    form = await request.form()
    email, password = str(form.get("email") or "")[:320], str(form.get("password") or "")[:1000]
    sent, expected = str(form.get("csrf_token") or ""), request.cookies.get(LOGIN_CSRF_COOKIE) or ""
    if not sent or not expected or not constant_time_equal(sent, expected):
        return _login_page("Your login form expired; please try again.", 403, email)
    limiter = svc.extras["login_limiter"]
    client = request.client.host if request.client else "unknown"
    for key in (f"login-ip:{client}", f"login-email:{email.lower()}"):
        wait = limiter.check(key)
        if wait is not None:
            resp = _login_page(f"Too many login attempts. Try again in {int(wait) + 1} seconds.", 429, email)
            resp.headers["Retry-After"] = str(int(wait) + 1)
            return resp
    try:
        raw, _csrf, _agent = await svc.db.write(acc.login, email, password)
    except CaredeskError:
        return _login_page("Wrong email or password.", 401, email)
    done = RedirectResponse("/", status_code=303)
    done.set_cookie(
        SESSION_COOKIE,
        raw,
        httponly=True,
        samesite="lax",
        secure=svc.settings.cookie_secure,
        max_age=acc.SESSION_DAYS * 86400,
        path="/",
    )
    done.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return done


@router.post("/logout")
async def logout(request: Request, actor: ActorDep, svc: ServicesDep) -> Response:
    raw = request.cookies.get(SESSION_COOKIE)
    if raw:
        await svc.db.write(acc.logout, raw)
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


# ---------------------------------------------------------------- workspace pages


def _filter(
    view: View, status: Status, channel: str | None, label: str | None, sort: Sort
) -> ConversationFilter:
    return ConversationFilter(
        view=view, status=status, channel=channel or None, label=label or None, sort=sort, limit=50
    )


@router.get("/")
async def workspace(
    request: Request,
    view: View = "all",
    status: Status = "open",
    channel: str = "",
    label: str = "",
    sort: Sort = "recent",
) -> HTMLResponse:
    return await _workspace(request, None, view, status, channel, label, sort)


@router.get("/c/{conversation_id}")
async def workspace_conversation(
    request: Request,
    conversation_id: int,
    view: View = "all",
    status: Status = "open",
    channel: str = "",
    label: str = "",
    sort: Sort = "recent",
) -> HTMLResponse:
    return await _workspace(request, conversation_id, view, status, channel, label, sort)


async def _workspace(
    request: Request,
    conversation_id: int | None,
    view: View,
    status: Status,
    channel: str,
    label: str,
    sort: Sort,
) -> HTMLResponse:
    v = await viewer(request)
    svc = services(request)
    f = _filter(view, status, channel[:32], label[:64], sort)
    listing = await svc.db.read(views.conversation_list, v.actor.account_id, v.actor.id, f)
    conv = (
        await svc.db.read(views.conversation_view, v.actor.account_id, conversation_id)
        if conversation_id
        else None
    )
    return page("workspace.html", v=v, f=f, listing=listing, c=conv)


@router.get("/ui/list")
async def list_partial(
    request: Request,
    view: View = "all",
    status: Status = "open",
    channel: Annotated[str, Query(max_length=32)] = "",
    label: Annotated[str, Query(max_length=64)] = "",
    sort: Sort = "recent",
) -> HTMLResponse:
    v = await viewer(request)
    f = _filter(view, status, channel, label, sort)
    listing = await services(request).db.read(views.conversation_list, v.actor.account_id, v.actor.id, f)
    return HTMLResponse(fragment("_list.html", v=v, f=f, listing=listing))


@router.get("/ui/c/{conversation_id}")
async def conversation_partial(request: Request, conversation_id: int) -> HTMLResponse:
    v = await viewer(request)
    c = await services(request).db.read(views.conversation_view, v.actor.account_id, conversation_id)
    return HTMLResponse(fragment("_conversation.html", v=v, c=c))


@router.get("/ui/c/{conversation_id}/messages")
async def messages_partial(
    request: Request, conversation_id: int, after: Annotated[int, Query(ge=0)] = 0
) -> HTMLResponse:
    """Timeline entries after `after`, for live appends (the client skips ids it already shows)."""
    v = await viewer(request)

    def r(s: Session) -> list[dict[str, Any]]:
        conv = cv.get_conversation(s, v.actor.account_id, conversation_id)
        return views.timeline(s, v.actor.account_id, conv.contact_id, after)

    items = await services(request).db.read(r)
    d = await services(request).db.read(views.directory, v.actor.account_id)
    return HTMLResponse(
        fragment(
            "_messages.html",
            items=items,
            agent_names=d["agent_names"],
            inboxes=d["inboxes"],
            conv_id=conversation_id,
        )
    )


@router.get("/ui/c/{conversation_id}/messages/{message_id}")
async def message_partial(request: Request, conversation_id: int, message_id: int) -> HTMLResponse:
    """One timeline entry as it is now (its delivery status changed: queued -> sent, or failed)."""
    v = await viewer(request)
    svc = services(request)
    item = await svc.db.read(views.timeline_item, v.actor.account_id, conversation_id, message_id)
    return await _message_html(svc, v.actor.account_id, conversation_id, item)


async def _message_html(
    svc: Services, account_id: int, conversation_id: int, item: dict[str, Any]
) -> HTMLResponse:
    d = await svc.db.read(views.directory, account_id)
    return HTMLResponse(
        fragment(
            "_messages.html",
            items=[item],
            agent_names=d["agent_names"],
            inboxes=d["inboxes"],
            conv_id=conversation_id,
            single=True,
        )
    )


# ---------------------------------------------------------------- conversation actions (htmx)


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: str(v) for k, v in form.items() if isinstance(v, str)}


async def _rerender(svc: Services, actor: Any, conversation_id: int) -> HTMLResponse:
    c = await svc.db.read(views.conversation_view, actor.account_id, conversation_id)
    me = await svc.db.read(acc.get_agent, actor.account_id, actor.id) if actor.kind == "agent" else None
    v = Viewer(actor, "", acc.agent_json(me) if me else {}, "")
    return HTMLResponse(
        fragment("_conversation.html", v=v, c=c), headers={"HX-Trigger": "conversations-changed"}
    )


def _int(value: str, what: str) -> int | None:
    if not value:
        return None
    if not value.isdigit() or len(value) > 18:
        raise Invalid(f"{what} must be a number")
    return int(value)


@router.post("/ui/c/{conversation_id}/reply")
async def reply(request: Request, conversation_id: int, actor: ActorDep, svc: ServicesDep) -> Response:
    """A reply or a private note, with up to MAX_FILES files (multipart; the widget's type and size rules)."""
    form = await request.form(max_files=MAX_FILES + 1, max_fields=20)
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    uploads = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
    private = fields.get("private") in ("1", "on", "true")
    if uploads:
        # Refuse a message to another account's conversation before storing anything of it.
        await svc.db.read(cv.get_conversation, actor.account_id, conversation_id)
    stored = await store_uploads(svc, actor.account_id, uploads)
    try:
        await svc.db.write(
            cv.send_reply,
            actor,
            conversation_id,
            fields.get("content", ""),
            private=private,
            attachments=stored,
        )
    except Exception:
        await forget_uploads(svc, stored)
        raise
    return Response(status_code=204, headers={"HX-Trigger": "timeline-changed"})


@router.post("/ui/c/{conversation_id}/messages/{message_id}/retry")
async def retry_message(
    conversation_id: int, message_id: int, actor: ActorDep, svc: ServicesDep
) -> HTMLResponse:
    """Retry on a failed outgoing message: sent again; answers the entry, now queued."""

    def w(s: Session) -> dict[str, Any]:
        retry_delivery(s, actor, conversation_id, message_id)
        return views.timeline_item(s, actor.account_id, conversation_id, message_id)

    item = await svc.db.write(w)
    return await _message_html(svc, actor.account_id, conversation_id, item)


@router.post("/ui/c/{conversation_id}/assign")
async def assign(request: Request, conversation_id: int, actor: ActorDep, svc: ServicesDep) -> HTMLResponse:
    form = await _form(request)
    who = form.get("agent_id", "")
    agent_id = actor.id if who == "me" else _int(who, "agent")
    await svc.db.write(cv.assign, actor, conversation_id, agent_id, _int(form.get("team_id", ""), "team"))
    return await _rerender(svc, actor, conversation_id)


@router.post("/ui/c/{conversation_id}/transfer")
async def transfer(request: Request, conversation_id: int, actor: ActorDep, svc: ServicesDep) -> HTMLResponse:
    form = await _form(request)
    target = form.get("target", "")  # "agent:ID" or "team:ID"
    kind, _, raw = target.partition(":")
    if kind not in ("agent", "team"):
        raise Invalid("choose an agent or a team to transfer to")
    ident = _int(raw, kind)
    await svc.db.write(
        cv.transfer,
        actor,
        conversation_id,
        note=form.get("note", ""),
        agent_id=ident if kind == "agent" else None,
        team_id=ident if kind == "team" else None,
    )
    return await _rerender(svc, actor, conversation_id)


@router.post("/ui/c/{conversation_id}/status")
async def set_status(
    request: Request, conversation_id: int, actor: ActorDep, svc: ServicesDep
) -> HTMLResponse:
    form = await _form(request)
    status = form.get("status", "")
    until = None
    if status == "snoozed":
        hours = _int(form.get("hours", ""), "snooze hours") or 0
        if not 1 <= hours <= 24 * 90:
            raise Invalid("snooze for 1 hour to 90 days")
        until = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(hours=hours)
    await svc.db.write(cv.set_status, actor, conversation_id, status, snoozed_until=until)
    return await _rerender(svc, actor, conversation_id)


@router.post("/ui/c/{conversation_id}/labels")
async def labels(request: Request, conversation_id: int, actor: ActorDep, svc: ServicesDep) -> HTMLResponse:
    form = await _form(request)
    add = [x.strip() for x in form.get("add", "").split(",") if x.strip()]
    remove = [x.strip() for x in form.get("remove", "").split(",") if x.strip()]
    await svc.db.write(cv.set_labels, actor, conversation_id, add, remove)
    return await _rerender(svc, actor, conversation_id)


@router.post("/ui/c/{conversation_id}/merge")
async def merge(request: Request, conversation_id: int, actor: ActorDep, svc: ServicesDep) -> HTMLResponse:
    """Merge another contact (found by email or id) into this conversation's contact."""
    form = await _form(request)
    other = form.get("other", "").strip()

    def w(s: Session) -> None:
        conv = cv.get_conversation(s, actor.account_id, conversation_id)
        if other.isdigit():
            other_id: int | None = int(other)
        elif "@" in other:
            other_id = find_contact_by_identity(s, actor.account_id, "email", normalize_email(other))
        else:
            raise Invalid("enter the other contact's email address or number")
        if other_id is None:
            raise NotFound("no contact with this email")
        merge_contacts(s, actor, conv.contact_id, other_id)

    await svc.db.write(w)
    return await _rerender(svc, actor, conversation_id)


@router.get("/ui/c/{conversation_id}/links")
async def links_partial(request: Request, conversation_id: int) -> HTMLResponse:
    """The customer panel's open link suggestions (re-read live when one is made or decided)."""
    v = await viewer(request)
    data = await services(request).db.read(views.link_suggestions, v.actor.account_id, conversation_id)
    return HTMLResponse(fragment("_links.html", **data))


def _suggestion_of_conversation(s: Session, actor: Any, conversation_id: int, suggestion_id: int) -> int:
    """The suggestion's id if it is about this conversation's contact; 404 otherwise."""
    conv = cv.get_conversation(s, actor.account_id, conversation_id)
    sug = linking.get_suggestion(s, actor.account_id, suggestion_id)
    if conv.contact_id not in (sug.contact_id, sug.other_contact_id):
        raise NotFound("suggestion not found")
    return sug.id


@router.post("/ui/c/{conversation_id}/links/{suggestion_id}/accept")
async def link_accept(
    conversation_id: int, suggestion_id: int, actor: ActorDep, svc: ServicesDep
) -> HTMLResponse:
    """ "Merge": the two contacts become one (the older survives), and so do their timelines."""

    def w(s: Session) -> None:
        accept_link_suggestion(
            s, actor, _suggestion_of_conversation(s, actor, conversation_id, suggestion_id)
        )

    await svc.db.write(w)
    return await _rerender(svc, actor, conversation_id)


@router.post("/ui/c/{conversation_id}/links/{suggestion_id}/dismiss")
async def link_dismiss(
    conversation_id: int, suggestion_id: int, actor: ActorDep, svc: ServicesDep
) -> HTMLResponse:
    """ "Not the same person": the pair is never suggested again."""

    def w(s: Session) -> dict[str, Any]:
        sid = _suggestion_of_conversation(s, actor, conversation_id, suggestion_id)
        linking.dismiss_suggestion(s, actor.account_id, actor.audit_ref, sid)
        return views.link_suggestions(s, actor.account_id, conversation_id)

    data = await svc.db.write(w)
    return HTMLResponse(fragment("_links.html", **data))


@router.post("/ui/c/{conversation_id}/presence", status_code=204)
async def presence(request: Request, conversation_id: int, actor: ActorDep, svc: ServicesDep) -> Response:
    """Collision detection (who is viewing or typing) and, on viewing, the agent's read receipt."""
    form = await _form(request)
    state = form.get("state", "")
    if state not in ("viewing", "typing", "left"):
        raise Invalid("state must be viewing, typing or left")

    def w(s: Session) -> None:
        conv = cv.get_conversation(s, actor.account_id, conversation_id)
        data = {
            "conversation_id": conv.id,
            "by": "agent",
            "agent_id": actor.id,
            "name": actor.name,
            "state": state,
        }
        record_event(
            s,
            actor.account_id,
            "conversation.presence",
            data,
            conversation_id=conv.id,
            contact_id=conv.contact_id,
        )
        if state == "viewing":
            last = s.execute(
                select(Message.id)
                .where(Message.conversation_id == conv.id, Message.type == "incoming")
                .order_by(Message.id.desc())
                .limit(1)
            ).scalar()
            if last:
                record_event(
                    s,
                    actor.account_id,
                    "conversation.read",
                    {"conversation_id": conv.id, "by": "agent", "up_to": last},
                    conversation_id=conv.id,
                    contact_id=conv.contact_id,
                )

    await svc.db.write(w)
    return Response(status_code=204)


@router.post("/ui/me/availability")
async def availability(request: Request, actor: ActorDep, svc: ServicesDep) -> Response:
    form = await _form(request)
    await svc.db.write(acc.update_agent, actor, actor.id, {"availability": form.get("availability", "")})
    return Response(status_code=204, headers={"HX-Trigger": "availability-changed"})


@router.get("/ui/files/{message_id}/{index}")
async def agent_file(request: Request, message_id: int, index: int) -> Response:
    """A file of a message of the agent's account, always as a download (an <img> still shows images)."""
    from caredesk.web.widget import file_response

    v = await viewer(request)
    svc = services(request)
    a = await svc.db.read(attachment_at, v.actor.account_id, message_id, index)
    data = await asyncio.to_thread(svc.storage.get, a.storage_key)
    return file_response(data, a, inline_images=False)


def _conversation_exists(s: Session, account_id: int, conversation_id: int) -> bool:
    c = s.get(Conversation, conversation_id)
    return c is not None and c.account_id == account_id


router.include_router(admin.router)


def setup(app: FastAPI, services_: Services) -> None:
    app.include_router(router)
    app.include_router(actions_router)
    STATIC.mkdir(parents=True, exist_ok=True)
    app.mount("/static/ui", StaticFiles(directory=STATIC, check_dir=False), name="ui-static")

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, _exc: LoginRequired) -> Response:
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": "/login"})
        return RedirectResponse("/login", status_code=303)


__all__ = ["Form", "router", "setup"]
