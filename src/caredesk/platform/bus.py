"""The event bus between processes, and the hub that fans events out to this process's clients.

`InMemoryBus` serves the embedded single process. `RedisBus` publishes on Redis pub/sub so that
every web process sees every commit. Pub/sub may drop or reorder messages between processes, so
the bus is only a fast path: the `EventHub` tracks the last seq it delivered per account and
fills any gap from the events table before delivering, in order, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

import orjson

from caredesk.platform.db import CommitOutcome, Database
from caredesk.platform.events import Event, events_after, stream_bounds

log = logging.getLogger(__name__)

Listener = Callable[[Event], None]


class Bus(Protocol):
    async def publish(self, events: list[Event]) -> None: ...
    def set_listener(self, listener: Callable[[list[Event]], None]) -> None: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class InMemoryBus:
    def __init__(self) -> None:
        self._listener: Callable[[list[Event]], None] | None = None

    def set_listener(self, listener: Callable[[list[Event]], None]) -> None:
        self._listener = listener

    async def publish(self, events: list[Event]) -> None:
        if self._listener is not None:
            self._listener(events)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


def _encode(ev: Event) -> bytes:
    return orjson.dumps(
        {
            "a": ev.account_id,
            "s": ev.seq,
            "t": ev.type,
            "d": ev.data,
            "cv": ev.conversation_id,
            "ct": ev.contact_id,
            "at": ev.created_at,
        }
    )


def _decode(raw: bytes | str) -> Event:
    o = orjson.loads(raw)
    return Event(o["a"], o["s"], o["t"], o["d"], o["cv"], o["ct"], o["at"])


class RedisBus:
    channel = "caredesk:events"

    def __init__(self, url: str) -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.from_url(url)
        self._listener: Callable[[list[Event]], None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    def set_listener(self, listener: Callable[[list[Event]], None]) -> None:
        self._listener = listener

    async def publish(self, events: list[Event]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for ev in events:
                pipe.publish(self.channel, _encode(ev))
            await pipe.execute()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen())
        await asyncio.wait_for(self._ready.wait(), timeout=10)

    async def _listen(self) -> None:
        while True:
            try:
                pubsub = self._redis.pubsub()
                await pubsub.subscribe(self.channel)
                self._ready.set()
                async for msg in pubsub.listen():
                    if msg.get("type") != "message":
                        continue
                    try:
                        ev = _decode(msg["data"])
                    except Exception:
                        log.warning("dropping malformed bus message")
                        continue
                    if self._listener is not None:
                        self._listener([ev])
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("redis bus connection lost; reconnecting")
                await asyncio.sleep(0.5)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self._redis.aclose()


class Subscription:
    """One client's view of an account stream, optionally filtered (a widget sees its own conversation)."""

    def __init__(
        self, hub: EventHub, account_id: int, accept: Callable[[Event], bool] | None, maxsize: int
    ) -> None:
        self.hub = hub
        self.account_id = account_id
        self.accept = accept
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize=maxsize)
        self.overflowed = False

    def offer(self, ev: Event) -> None:
        if self.accept is not None and not self.accept(ev):
            return
        try:
            self.queue.put_nowait(ev)
        except asyncio.QueueFull:
            # A client this far behind resumes from the database by its last id instead.
            self.overflowed = True
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.put_nowait(None)

    def close(self) -> None:
        self.hub.unsubscribe(self)


class EventHub:
    def __init__(self, db: Database, bus: Bus) -> None:
        self.db = db
        self.bus = bus
        self._subs: dict[int, set[Subscription]] = {}
        self._delivered: dict[int, int] = {}  # account -> last seq delivered to local subscribers
        self._pending: dict[int, dict[int, Event]] = {}
        self._gap_tasks: dict[int, asyncio.Task[None]] = {}
        bus.set_listener(self._on_bus)

    async def on_commit(self, outcome: CommitOutcome) -> None:
        if outcome.events:
            await self.bus.publish(outcome.events)

    async def subscribe(
        self, account_id: int, accept: Callable[[Event], bool] | None = None, maxsize: int = 10_000
    ) -> Subscription:
        """Subscribe, then read the backlog from the database: events committed in between arrive
        through both paths and the client skips seqs it has sent; none is missed."""
        sub = Subscription(self, account_id, accept, maxsize)
        first = account_id not in self._subs
        self._subs.setdefault(account_id, set()).add(sub)
        if first and account_id not in self._delivered:
            _oldest, last = await self.db.read(stream_bounds, account_id)
            # Events up to `last` are read from the database by every new subscriber itself;
            # anything later that the bus loses is then detected as a gap and filled.
            self._delivered.setdefault(account_id, last)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.account_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.account_id]
                self._delivered.pop(sub.account_id, None)
                self._pending.pop(sub.account_id, None)

    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subs.values())

    def _on_bus(self, events: list[Event]) -> None:
        for ev in events:
            if ev.account_id not in self._subs:
                continue
            last = self._delivered.get(ev.account_id)
            if last is None or ev.seq == last + 1:
                self._deliver(ev)
                self._drain_pending(ev.account_id)
            elif ev.seq > last + 1:
                self._pending.setdefault(ev.account_id, {})[ev.seq] = ev
                self._schedule_gap_fill(ev.account_id)
            # ev.seq <= last: already delivered (a gap fill got it first)

    def _deliver(self, ev: Event) -> None:
        self._delivered[ev.account_id] = ev.seq
        for sub in list(self._subs.get(ev.account_id, ())):
            sub.offer(ev)

    def _drain_pending(self, account_id: int) -> None:
        pending = self._pending.get(account_id)
        while pending:
            nxt = self._delivered[account_id] + 1
            ev = pending.pop(nxt, None)
            if ev is None:
                break
            self._deliver(ev)

    def _schedule_gap_fill(self, account_id: int) -> None:
        if account_id in self._gap_tasks:
            return

        async def fill() -> None:
            try:
                await asyncio.sleep(0.05)  # most reordering resolves itself within milliseconds
                last = self._delivered.get(account_id)
                if last is None or not self._pending.get(account_id):
                    return
                missing = await self.db.read(events_after, account_id, last, 10_000)
                for ev in missing:
                    if ev.seq == self._delivered.get(account_id, 0) + 1:
                        self._deliver(ev)
                self._pending[account_id] = {
                    s: e
                    for s, e in self._pending.get(account_id, {}).items()
                    if s > self._delivered.get(account_id, 0)
                }
                self._drain_pending(account_id)
            finally:
                self._gap_tasks.pop(account_id, None)
                if self._pending.get(account_id):
                    self._schedule_gap_fill(account_id)

        self._gap_tasks[account_id] = asyncio.create_task(fill())


def make_bus(redis_url: str | None) -> Bus:
    if redis_url:
        return RedisBus(redis_url)
    return InMemoryBus()


__all__ = ["Bus", "EventHub", "InMemoryBus", "RedisBus", "Subscription", "make_bus"]
