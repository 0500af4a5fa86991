"""Events after commit with a dense id per account; a client that reconnects with its last id gets every
event it missed, in order, once; past the retention window it is told to resync (RELIABILITY rule 3, R5)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from caredesk.platform.events import prune_events, stream_bounds
from caredesk.services import Services
from caredesk.settings import Settings
from caredesk.web.stream import pump
from tests.conftest import AccountFixture, free_port, post_inbound, server_env, start_server


async def _base(services: Services, account_id: int) -> int:
    """The stream's last id before the test acts (creating the account's admin already emitted one)."""
    return (await services.db.read(stream_bounds, account_id))[1]


async def _collect(
    services: Services, account_id: int, last_id: int | None, until: int, timeout: float = 10
) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    done = asyncio.Event()

    async def send(frame: dict[str, Any]) -> None:
        frames.append(frame)
        if frame.get("id") == until or (
            frame.get("type") in ("hello", "resync") and frame.get("last_id") == until
        ):
            done.set()

    task = asyncio.create_task(pump(services.db, services.hub, account_id, last_id, send, heartbeat=60))
    try:
        await asyncio.wait_for(done.wait(), timeout)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    return frames


@pytest.mark.postgres
async def test_resume_after_disconnect_no_gap_no_duplicate(
    client: httpx.AsyncClient, services: Services, account: AccountFixture
) -> None:
    b = await _base(services, account.id)
    for i in range(3):
        await post_inbound(client, account, f"first batch {i}", msg_id=f"a{i}")
    frames = await _collect(services, account.id, b, until=b + 4)  # conversation.created + 3 messages
    ids = [f["id"] for f in frames if "id" in f]
    assert ids == [b + 1, b + 2, b + 3, b + 4]
    last = ids[-1]
    # "Disconnected": more happens meanwhile.
    for i in range(5):
        await post_inbound(client, account, f"while away {i}", msg_id=f"b{i}")
    frames = await _collect(services, account.id, last, until=last + 5)
    ids = [f["id"] for f in frames if "id" in f]
    assert ids == list(range(last + 1, last + 6))
    assert [f["data"]["content"] for f in frames if f.get("type") == "message.created"] == [
        f"while away {i}" for i in range(5)
    ]


async def test_live_events_arrive_once_in_order_while_backlog_is_read(
    client: httpx.AsyncClient, services: Services, account: AccountFixture
) -> None:
    frames: list[dict[str, Any]] = []

    async def send(frame: dict[str, Any]) -> None:
        frames.append(frame)

    b = await _base(services, account.id)
    task = asyncio.create_task(pump(services.db, services.hub, account.id, 0, send, heartbeat=60))
    for i in range(20):
        await post_inbound(client, account, f"m{i}", msg_id=f"m{i}")
    for _ in range(200):
        if len([f for f in frames if "id" in f]) >= b + 21:
            break
        await asyncio.sleep(0.02)
    task.cancel()
    ids = [f["id"] for f in frames if "id" in f]
    assert ids == list(range(1, b + 22))


async def test_resync_past_retention(
    client: httpx.AsyncClient, services: Services, account: AccountFixture
) -> None:
    for i in range(6):
        await post_inbound(client, account, f"x{i}", msg_id=f"x{i}")
    last = await _base(services, account.id)
    await services.db.write(prune_events, account.id, 2)  # keep only the last 2
    frames = await _collect(services, account.id, 1, until=last)
    assert frames[0] == {"type": "resync", "last_id": last}
    assert not [f for f in frames if "id" in f]


async def test_other_account_events_never_reach_a_stream(
    client: httpx.AsyncClient, services: Services, account: AccountFixture, other_account: AccountFixture
) -> None:
    await post_inbound(client, other_account, "secret of bravo", msg_id="s1")
    await post_inbound(client, account, "alpha's message", msg_id="s2")
    frames = await _collect(services, account.id, 0, until=await _base(services, account.id))
    text = json.dumps(frames)
    assert "secret of bravo" not in text and "alpha's message" in text


# ---- over a real server: WebSocket, restart, several processes with Redis ----


@pytest.fixture
def redis_url(tmp_path: Any) -> Iterator[str]:
    url = os.environ.get("CAREDESK_TEST_REDIS_URL")
    if url:
        yield url
        return
    binary = shutil.which("redis-server")
    assert binary, "redis-server is needed (make test installs it)"
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(0.3)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait()


async def _ws_read(
    url: str, token: str, last_id: int | None, count: int, timeout: float = 20
) -> list[dict[str, Any]]:
    q = f"?access_token={token}" + (f"&last_event_id={last_id}" if last_id is not None else "")
    frames: list[dict[str, Any]] = []
    async with websockets.connect(url.replace("http", "ws") + "/api/v1/realtime" + q) as ws:

        async def read() -> None:
            while len([f for f in frames if "id" in f]) < count:
                frames.append(json.loads(await ws.recv()))

        await asyncio.wait_for(read(), timeout)
    return frames


async def _post(url: str, acc: AccountFixture, n: int, prefix: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10) as c:
        for i in range(n):
            r = await c.post(
                f"/api/v1/inboxes/{acc.inbox_ids['api']}/inbound",
                headers=acc.auth,
                json={
                    "id": f"{prefix}{i}",
                    "from": {"kind": "email", "value": "c@example.com"},
                    "text": f"{prefix} {i}",
                },
            )
            assert r.status_code in (200, 201), r.text


@pytest.mark.postgres
async def test_websocket_resume_across_server_restart(
    settings: Settings, services: Services, account: AccountFixture
) -> None:
    b = await _base(services, account.id)
    server = start_server(server_env(settings))
    try:
        await _post(server.url, account, 4, "one")
        frames = await _ws_read(server.url, account.token, b, 5)
        assert frames[0]["type"] == "hello"
        ids = [f["id"] for f in frames if "id" in f]
        assert ids == list(range(b + 1, b + 6))
        server.stop(signal.SIGKILL)
        server = start_server(server_env(settings), port=server.port)
        await _post(server.url, account, 3, "two")
        frames = await _ws_read(server.url, account.token, b + 5, 3)
        assert [f["id"] for f in frames if "id" in f] == [b + 6, b + 7, b + 8]
    finally:
        server.stop()


@pytest.mark.postgres
async def test_two_processes_share_events_through_redis(
    settings: Settings, services: Services, account: AccountFixture, redis_url: str
) -> None:
    env = {**server_env(settings), "CAREDESK_REDIS_URL": redis_url}
    a = start_server(env)
    b = start_server(env)
    try:
        base = await _base(services, account.id)
        frames: list[dict[str, Any]] = []

        async def read_until_all_arrived() -> None:
            url = (
                b.url.replace("http", "ws")
                + f"/api/v1/realtime?access_token={account.token}&last_event_id={base}"
            )
            async with websockets.connect(url) as ws:
                while (
                    len(
                        [
                            f
                            for f in frames
                            if f.get("type") == "message.created" and f["data"]["sender_type"] == "contact"
                        ]
                    )
                    < 5
                ):
                    frames.append(json.loads(await ws.recv()))

        reader = asyncio.create_task(asyncio.wait_for(read_until_all_arrived(), 30))
        await asyncio.sleep(0.5)  # let the WebSocket on B subscribe
        await _post(a.url, account, 5, "via-a")
        await reader
        ids = [f["id"] for f in frames if "id" in f]
        # Dense and in order (the pipeline on A may add its own events between the customer's messages).
        assert ids == list(range(base + 1, base + 1 + len(ids)))
        contents = [
            f["data"]["content"]
            for f in frames
            if f.get("type") == "message.created" and f["data"]["sender_type"] == "contact"
        ]
        assert contents == [f"via-a {i}" for i in range(5)]
    finally:
        a.stop()
        b.stop()


async def test_websocket_rejects_foreign_origin_and_anonymous(
    settings: Settings, services: Services, account: AccountFixture
) -> None:
    server = start_server(server_env(settings))
    try:
        ws_url = server.url.replace("http", "ws") + "/api/v1/realtime"
        with pytest.raises((ConnectionClosed, InvalidStatus)):
            async with websockets.connect(ws_url) as ws:
                await ws.recv()
        with pytest.raises((ConnectionClosed, InvalidStatus)):
            async with websockets.connect(ws_url + "?access_token=cd_wrong") as ws:
                await ws.recv()
        with pytest.raises((ConnectionClosed, InvalidStatus)):
            async with websockets.connect(
                ws_url, additional_headers={"Origin": "https://evil.example"}
            ) as ws:
                await ws.recv()
    finally:
        server.stop()


async def test_sse_stream_resumes_from_last_event_id(
    settings: Settings, services: Services, account: AccountFixture
) -> None:
    # A real server: an in-process ASGI transport would wait for the end of an endless stream.
    server = start_server(server_env(settings))
    try:
        b = await _base(services, account.id)
        await _post(server.url, account, 3, "sse")
        got: list[int] = []
        async with (
            httpx.AsyncClient(base_url=server.url, timeout=10) as c,
            c.stream("GET", "/api/v1/events", headers={**account.auth, "Last-Event-ID": str(b + 2)}) as r,
        ):
            assert r.headers["content-type"].startswith("text/event-stream")
            async for line in r.aiter_lines():
                if line.startswith("id: "):
                    got.append(int(line[4:]))
                if len(got) == 2:
                    break
        assert got == [b + 3, b + 4]
    finally:
        server.stop()
