"""Request dependencies: the services, the acting agent or token, CSRF for browser sessions."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from caredesk.accounts.actions import actor_for_token, session_actor
from caredesk.accounts.actors import Actor
from caredesk.platform.errors import Forbidden, Unauthorized
from caredesk.services import Services
from caredesk.platform.security import constant_time_equal

SESSION_COOKIE = "cd_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


async def authenticate(request: Request) -> tuple[Actor, str | None]:
    """(actor, csrf token for cookie sessions or None for bearer tokens)."""
    svc = services(request)
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        actor = await svc.db.read(actor_for_token, auth[7:].strip())
        if actor is None:
            raise Unauthorized("invalid or revoked API token")
        return actor, None
    raw = request.cookies.get(SESSION_COOKIE)
    if raw:
        found = await svc.db.read(session_actor, raw)
        if found is not None:
            return found
    raise Unauthorized("log in or send an API token (Authorization: Bearer ...)")


async def current_actor(request: Request) -> Actor:
    actor, csrf = await authenticate(request)
    if csrf is not None and request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER) or ""
        if not sent:
            # htmx and plain forms may send it as a form field; only urlencoded bodies are read for it.
            ctype = request.headers.get("content-type", "")
            if ctype.startswith("application/x-www-form-urlencoded") or ctype.startswith("multipart/form-data"):
                form = await request.form()
                sent = str(form.get("csrf_token") or "")
        if not sent or not constant_time_equal(sent, csrf):
            raise Forbidden("missing or wrong CSRF token (send the X-CSRF-Token header)")
    request.state.actor = actor
    return actor


ActorDep = Annotated[Actor, Depends(current_actor)]
ServicesDep = Annotated[Services, Depends(services)]
