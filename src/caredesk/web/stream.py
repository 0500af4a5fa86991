"""Resumable event streams, shared by the agent WebSocket/SSE and the widget.

Protocol (JSON frames): {"type": "hello", "last_id": N} first; then events {"id", "type", "data", ...}
in increasing id; {"type": "heartbeat"} when idle (keeps NAT mappings alive); {"type": "resync",
"last_id": N} when the client's last id is older than what is retained: refetch state, go on from N.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from caredesk.platform.bus import EventHub
from caredesk.platform.db import Database
from caredesk.platform.events import Event, events_after, stream_bounds

Send = Callable[[dict[str, Any]], Awaitable[None]]


async def pump(
    db: Database,
    hub: EventHub,
    account_id: int,
    last_id: int | None,
    send: Send,
    *,
    accept: Callable[[Event], bool] | None = None,
    heartbeat: float = 20.0,
    shape: Callable[[Event], dict[str, Any]] | None = None,
) -> None:
    """Send the backlog after `last_id`, then live events, until the connection fails."""
    render = shape or (lambda e: e.as_json())
    sub = await hub.subscribe(account_id, accept)
    try:
        oldest, last = await db.read(stream_bounds, account_id)
        if last_id is None or last_id > last:
            sent = last
            await send({"type": "hello" if last_id is None else "resync", "last_id": last})
        elif last_id < last and oldest > last_id + 1:
            sent = last
            await send({"type": "resync", "last_id": last})
        else:
            sent = last_id
            await send({"type": "hello", "last_id": last_id})
        sent = await _backlog(db, account_id, sent, send, accept, render)
        while True:
            try:
                ev = await asyncio.wait_for(sub.queue.get(), timeout=heartbeat)
            except TimeoutError:
                await send({"type": "heartbeat"})
                continue
            if ev is None:  # the client fell too far behind the live queue: resume from the database
                while not sub.queue.empty():
                    sub.queue.get_nowait()
                sub.overflowed = False
                sent = await _backlog(db, account_id, sent, send, accept, render)
                continue
            if ev.seq <= sent:
                continue
            await send(render(ev))
            sent = ev.seq
    finally:
        sub.close()


async def _backlog(
    db: Database,
    account_id: int,
    after: int,
    send: Send,
    accept: Callable[[Event], bool] | None,
    render: Callable[[Event], dict[str, Any]],
) -> int:
    while True:
        batch = await db.read(events_after, account_id, after, 1000)
        for ev in batch:
            if accept is None or accept(ev):
                await send(render(ev))
            after = ev.seq
        if len(batch) < 1000:
            return after
