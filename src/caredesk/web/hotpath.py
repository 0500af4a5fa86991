"""A short way in for the few routes that take most of the traffic: inbound messages and provider webhooks.

FastAPI's middleware stack, routing, dependency injection and validation cost about 0.4 ms of the one
Python thread per request here: more than the database work of storing a message. A hot route is matched
by method and path before FastAPI sees the request. Its handler gets the raw body and either answers (the
common, valid case) or returns None: then the request goes on to the full stack with its body replayed.
Every refusal and every unusual case is answered by the one implementation in the FastAPI routes, so the
two ways in cannot drift apart in what they refuse; the hot one only has to be right about what it accepts.

What the outer middleware does for every request is done here too for the requests answered here: the
per-IP rate limit (the same limiter instance), the body limit and the security headers.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from caredesk.web.limits import MAX_HEADER_BYTES, _send_problem

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from caredesk.services import Services
    from caredesk.web.limits import RateLimiter


@dataclass(slots=True)
class HotRequest:
    scope: Scope
    params: tuple[str, ...]  # the path pattern's groups
    body: bytes

    def header(self, name: bytes) -> str | None:
        """A request header by lower-case name (the first one), decoded as latin-1 like Starlette does."""
        for k, v in self.scope["headers"]:
            if k == name:
                return str(v.decode("latin-1"))
        return None

    def bearer(self) -> str | None:
        auth = self.header(b"authorization")
        if auth is None or auth[:7].lower() != "bearer ":
            return None
        return auth[7:].strip() or None


@dataclass(slots=True)
class HotResponse:
    status: int
    body: bytes
    content_type: bytes = b"application/json"


HotHandler = Callable[["Services", HotRequest], Awaitable[HotResponse | None]]


@dataclass(frozen=True, slots=True)
class HotRoute:
    method: str
    pattern: re.Pattern[str]
    handler: HotHandler


class HotPaths:
    """ASGI middleware, outermost: answers hot routes directly, passes everything else on untouched."""

    def __init__(
        self,
        app: ASGIApp,
        services: Services,
        routes: list[HotRoute],
        limiter: RateLimiter,
        max_body_bytes: int,
        default_headers: tuple[tuple[bytes, bytes], ...],
    ) -> None:
        self.app = app
        self.svc = services
        self.routes = routes
        self.limiter = limiter
        self.max_body = max_body_bytes
        self.default_headers = list(default_headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.routes:
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        for route in self.routes:
            if route.method == method:
                m = route.pattern.fullmatch(path)
                if m is not None:
                    await self._hot(route, m.groups(), scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _hot(
        self, route: HotRoute, params: tuple[str, ...], scope: Scope, receive: Receive, send: Send
    ) -> None:
        length = _content_length(scope)
        client = scope.get("client") or ("unknown", 0)
        if length is None or length > self.max_body or self.limiter.check(f"ip:{client[0]}") is not None:
            # Chunked or oversized bodies, and rate-limited callers: the full stack answers (413, 429...).
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            msg = await receive()
            if msg["type"] != "http.request":  # the client went away
                return
            chunk = msg.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = bool(msg.get("more_body"))
            if size > self.max_body:
                break
        body = b"".join(chunks)
        answer: HotResponse | None = None
        if not more:
            try:
                answer = await route.handler(self.svc, HotRequest(scope, params, body))
            except Exception:
                # What FastAPI's error middleware would do: log it, answer 500 problem+json.
                log.exception("hot route %s failed", scope["path"])
                await _send_problem(
                    send, 500, "Internal server error", "the request failed; it can be retried"
                )
                return
        if answer is None:
            # Refund the token taken above: the full stack takes its own.
            self.limiter.refund(f"ip:{client[0]}")
            await self.app(scope, _replay(body, more, receive), send)
            return
        headers = [
            (b"content-type", answer.content_type),
            (b"content-length", str(len(answer.body)).encode()),
            *self.default_headers,
        ]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})


def _content_length(scope: Scope) -> int | None:
    """The declared body length; None when absent, invalid or when the headers are over the limit (the
    full stack answers those)."""
    length: int | None = None
    total = 0
    for k, v in scope["headers"]:
        total += len(k) + len(v)
        if k == b"content-length":
            try:
                length = int(v)
            except ValueError:
                return None
    return None if total > MAX_HEADER_BYTES else length


def _replay(body: bytes, more: bool, receive: Receive) -> Receive:
    """A `receive` that gives the body already read, then carries on with the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()

    return replay


def hot_routes_of(module: Any) -> list[HotRoute]:
    """The hot routes a web module offers (`HOT_ROUTES`), if any."""
    return list(getattr(module, "HOT_ROUTES", ()))
