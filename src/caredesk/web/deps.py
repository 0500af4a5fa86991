"""Request dependencies: the services, the acting agent or token, CSRF for browser sessions."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Request

from caredesk.accounts.actions import actor_for_token, session_actor
from caredesk.accounts.actors import Actor
from caredesk.platform.errors import Forbidden, Unauthorized
from caredesk.platform.security import constant_time_equal, token_digest
from caredesk.services import Services

SESSION_COOKIE = "cd_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


async def _services_dep(request: Request) -> Services:
    # async on purpose: FastAPI runs a plain `def` dependency in the thread pool, a hop per request.
    return request.app.state.services  # type: ignore[no-any-return]


class CredentialCache:
    """Token and session lookups cached for a few seconds per process: integrations post many requests a
    second with the same token. A revoked token or ended session stops working within `ttl` seconds."""

    def __init__(self, ttl: float = 5.0, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._items: dict[str, tuple[float, tuple[Actor, str | None] | None]] = {}

    def get(self, key: str) -> tuple[bool, tuple[Actor, str | None] | None]:
        hit = self._items.get(key)
        if hit is None or hit[0] < time.monotonic():
            return False, None
        return True, hit[1]

    def put(self, key: str, value: tuple[Actor, str | None] | None) -> None:
        if len(self._items) >= self.max_entries:
            self._items.clear()
        self._items[key] = (time.monotonic() + self.ttl, value)

    def clear(self) -> None:
        self._items.clear()


def forget_credentials(svc: Services) -> None:
    """After a logout, revocation or deactivation: this process stops trusting cached credentials now."""
    cache = svc.extras.get("credential_cache")
    if cache is not None:
        cache.clear()


async def token_actor(svc: Services, token: str) -> Actor | None:
    """The actor of an API token (cached for a few seconds), None when it is unknown or revoked."""
    cache: CredentialCache = svc.extras.setdefault("credential_cache", CredentialCache())
    key = "t:" + token_digest(token)
    cached, found = cache.get(key)
    if not cached:
        actor = await svc.db.read(actor_for_token, token)
        found = (actor, None) if actor is not None else None
        cache.put(key, found)
    return None if found is None else found[0]


async def authenticate(request: Request) -> tuple[Actor, str | None]:
    """(actor, csrf token for cookie sessions or None for bearer tokens)."""
    svc = services(request)
    cache: CredentialCache = svc.extras.setdefault("credential_cache", CredentialCache())
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        actor = await token_actor(svc, auth[7:].strip())
        if actor is None:
            raise Unauthorized("invalid or revoked API token")
        return actor, None
    raw = request.cookies.get(SESSION_COOKIE)
    if raw:
        key = "s:" + token_digest(raw)
        cached, found = cache.get(key)
        if not cached:
            found = await svc.db.read(session_actor, raw)
            cache.put(key, found)
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
            if ctype.startswith("application/x-www-form-urlencoded") or ctype.startswith(
                "multipart/form-data"
            ):
                form = await request.form()
                sent = str(form.get("csrf_token") or "")
        if not sent or not constant_time_equal(sent, csrf):
            raise Forbidden("missing or wrong CSRF token (send the X-CSRF-Token header)")
    request.state.actor = actor
    return actor


ActorDep = Annotated[Actor, Depends(current_actor)]
ServicesDep = Annotated[Services, Depends(_services_dep)]
