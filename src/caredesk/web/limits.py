"""Limits on everything that comes in (RELIABILITY rule 7): body size, JSON depth, content type, rate."""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from caredesk.platform.errors import Invalid


def _problem_bytes(status: int, title: str, detail: str) -> bytes:
    return orjson.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail})


async def _send_problem(
    send: Send, status: int, title: str, detail: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = _problem_bytes(status, title, detail)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


MAX_HEADER_BYTES = 64 * 1024  # all request headers together (h11's default; uvicorn's httptools has none)


class BodyLimitMiddleware:
    """Rejects bodies over the limit with 413 before they are read whole (Starlette has no default),
    and requests whose headers together exceed MAX_HEADER_BYTES with 431."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        upload_max_bytes: int,
        upload_prefixes: tuple[str, ...] = (),
        upload_patterns: tuple[str, ...] = (),
    ) -> None:
        """`upload_prefixes` / `upload_patterns` (regular expressions matching the whole path): routes that
        take files, allowed `upload_max_bytes`."""
        self.app = app
        self.max_bytes = max_bytes
        self.upload_max_bytes = upload_max_bytes
        self.upload_prefixes = upload_prefixes
        self.upload_patterns = [re.compile(p) for p in upload_patterns]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        limit = (
            self.upload_max_bytes
            if any(path.startswith(p) for p in self.upload_prefixes)
            or any(p.fullmatch(path) for p in self.upload_patterns)
            else self.max_bytes
        )
        if sum(len(n) + len(v) for n, v in scope.get("headers", [])) > MAX_HEADER_BYTES:
            await _send_problem(
                send, 431, "Request header fields too large", f"the headers are over {MAX_HEADER_BYTES} bytes"
            )
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _send_problem(send, 400, "Bad request", "invalid Content-Length")
                    return
                if declared > limit:
                    await _send_problem(
                        send, 413, "Payload too large", f"the body is over the limit of {limit} bytes"
                    )
                    return
        received = 0
        too_big = False

        async def limited_receive() -> Message:
            nonlocal received, too_big
            msg = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > limit:
                    too_big = True
                    raise _TooLarge()
            return msg

        started = False

        async def tracking_send(msg: Message) -> None:
            nonlocal started
            if too_big:
                # The framework caught _TooLarge while reading the body and answers its own 400 ("error
                # parsing the body"): answer 413 instead, and drop the rest of that answer.
                if msg["type"] == "http.response.start" and not started:
                    started = True
                    await _send_problem(
                        send, 413, "Payload too large", f"the body is over the limit of {limit} bytes"
                    )
                return
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _send_problem(
                    send, 413, "Payload too large", f"the body is over the limit of {limit} bytes"
                )
        except Exception:
            if too_big and not started:
                await _send_problem(
                    send, 413, "Payload too large", f"the body is over the limit of {limit} bytes"
                )
            else:
                raise


class _TooLarge(Exception):
    pass


def json_depth(value: Any, limit: int) -> int:
    """Depth of a parsed JSON value, stopping early past the limit (iterative: no recursion bomb).
    Only containers are visited: a provider payload is mostly strings, and walking them cost more than
    parsing the JSON."""
    if not isinstance(value, dict | list):
        return 0
    deepest = 1
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if d > deepest:
            deepest = d
            if deepest > limit:
                return deepest
        for c in v.values() if isinstance(v, dict) else v:
            if isinstance(c, dict | list):
                stack.append((c, d + 1))
    return deepest


def parse_json_body(body: bytes, max_depth: int) -> Any:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Invalid(f"the body is not valid JSON: {exc}") from exc
    if json_depth(value, max_depth) > max_depth:
        raise Invalid(f"the JSON is nested deeper than {max_depth} levels")
    return value


class RateLimiter:
    """A token bucket per key (IP or account); in-process, so per server process."""

    def __init__(
        self, per_minute: int, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.clock = clock  # injectable, so tests can hold time still
        self.rate = per_minute / 60.0
        self.burst = float(max(1, per_minute // 6))
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self.max_keys = max_keys

    def check(self, key: str, cost: float = 1.0) -> float | None:
        """None if allowed, else the seconds to wait (for Retry-After)."""
        now = self.clock()
        tokens, last = self.buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= cost:
            self.buckets[key] = (tokens - cost, now)
            self.buckets.move_to_end(key)
            if len(self.buckets) > self.max_keys:
                self.buckets.popitem(last=False)
            return None
        self.buckets[key] = (tokens, now)
        return (cost - tokens) / self.rate

    def refund(self, key: str, cost: float = 1.0) -> None:
        """Give back what `check` took, for a request that is then counted again elsewhere."""
        hit = self.buckets.get(key)
        if hit is not None:
            self.buckets[key] = (min(self.burst, hit[0] + cost), hit[1])


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, limiter: RateLimiter, exempt_prefixes: tuple[str, ...] = ()) -> None:
        self.app = app
        self.limiter = limiter
        self.exempt = exempt_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or any(scope.get("path", "").startswith(p) for p in self.exempt):
            await self.app(scope, receive, send)
            return
        client = scope.get("client") or ("unknown", 0)
        wait = self.limiter.check(f"ip:{client[0]}")
        if wait is not None:
            retry = str(max(1, int(wait + 0.999))).encode()
            await _send_problem(
                send, 429, "Too many requests", "slow down and retry later", [(b"retry-after", retry)]
            )
            return
        await self.app(scope, receive, send)
