"""Real-time latency with many connected sessions on ONE server process (loopback).

Starts a uvicorn process (SQLite, in-memory bus, embedded worker), creates accounts each with a web
chat inbox, connects agent WebSockets (/api/v1/realtime) and widget visitor WebSockets (/widget/ws),
then measures:
  customer -> agent : visitor POST /widget/api/messages  ->  the account's agent sockets receive it
  agent -> customer : agent POST /api/v1/conversations/{id}/messages  ->  that visitor's socket receives it
Timestamps are taken in this client process (monotonic clock) around the real HTTP and WebSocket I/O:
from just before the send's HTTP request to the arrival of the same message's frame on the other side.
The client runs on the same machine as the server and competes for the same CPU cores, so it also
reports its own CPU use and its event loop's lag (how late its timers fire: an upper bound on what the
client itself adds to a measurement), and the server process's CPU use during the measured window.

Before measuring it sends a few warm-up messages each way and waits until the server's job queue is
empty (the setup's 1 first message per visitor queues one pipeline job each): the figures are the
steady state at the given rate, not the catch-up after setup. A message is "lost" when a socket that
should have received it did not within 10 s; a duplicate is a second arrival on one socket.

    .venv/bin/python bench/realtime_latency.py --accounts 20 --agents 25 --visitors 25 --samples 400
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))


def setup_db(url: str, accounts: int) -> list[dict[str, Any]]:
    from caredesk.accounts.actions import create_account, create_agent, create_api_token, create_inbox
    from caredesk.accounts.actors import system_actor
    from caredesk.migrate import upgrade
    from caredesk.platform.db import Database

    db = Database(url)
    upgrade(db)

    def w(s: Any) -> list[dict[str, Any]]:
        out = []
        for i in range(accounts):
            acc = create_account(s, f"Bench {i}", f"bench-{i}")
            actor = system_actor(acc.id)
            agent = create_agent(s, actor, email=f"agent{i}@bench.test", name=f"Agent {i}", role="admin")
            agent.availability = "online"
            _tok, raw = create_api_token(s, actor, "bench")
            inbox = create_inbox(s, actor, name="chat", channel="webchat")
            out.append({"account_id": acc.id, "token": raw, "inbox": inbox.public_token})
        return out

    result = db.write_sync(w)
    db.close()
    return result


def start_server(env: dict[str, str], port: int, deflate: bool) -> subprocess.Popen[bytes]:
    # Frame compression as `caredesk serve` sets it (off; --deflate turns it on to compare).
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "caredesk.asgi:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--ws-max-queue",
            "64",
            "--ws-per-message-deflate",
            "true" if deflate else "false",
        ],
        env={**os.environ, **env},
        cwd=str(REPO),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start")


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pending_jobs(db_path: Path) -> int:
    """Pipeline and delivery jobs not finished yet (the periodic routing sweep is always queued)."""
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        row = con.execute(
            "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running') AND kind != 'routing.sweep'"
        ).fetchone()
        return int(row[0])
    finally:
        con.close()


async def wait_settled(db_path: Path, limit: float = 600) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if await asyncio.to_thread(pending_jobs, db_path) == 0:
            return time.monotonic() - t0
        await asyncio.sleep(0.5)
    raise RuntimeError("the server's job queue did not empty")


class LoopLag:
    """How late this client's own timers fire: what the client's busy event loop may add to a figure."""

    def __init__(self, period: float = 0.01) -> None:
        self.period = period
        self.lags: list[float] = []

    async def run(self) -> None:
        while True:
            t = time.monotonic()
            await asyncio.sleep(self.period)
            self.lags.append((time.monotonic() - t - self.period) * 1000)


class Waiters:
    """marker -> future resolved by whichever socket sees the marker first (plus every arrival: socket, time)."""

    def __init__(self) -> None:
        self.first: dict[str, asyncio.Future[float]] = {}
        self.arrivals: dict[str, list[tuple[int, float]]] = {}

    def expect(self, marker: str) -> asyncio.Future[float]:
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.first[marker] = fut
        self.arrivals[marker] = []
        return fut

    def seen(self, marker: str, sock: int, t: float) -> None:
        if marker in self.arrivals:
            self.arrivals[marker].append((sock, t))
        fut = self.first.get(marker)
        if fut is not None and not fut.done():
            fut.set_result(t)


def marker_of(frame: dict[str, Any]) -> str | None:
    if frame.get("type") != "message.created":
        return None
    content = str((frame.get("data") or {}).get("content") or "")
    return content[5:41] if content.startswith("bench") else None


async def reader(url: str, waiters: Waiters, ready: asyncio.Event | None = None) -> None:
    # Offers permessage-deflate like a browser does; the server decides whether to use it.
    async with connect(url, max_size=2**22, open_timeout=60, ping_interval=None) as ws:
        sock = id(ws)
        async for raw in ws:
            t = time.monotonic()
            frame = json.loads(raw)
            if frame.get("type") == "hello" and ready is not None:
                ready.set()
            m = marker_of(frame)
            if m:
                waiters.seen(m, sock, t)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=20)
    ap.add_argument("--agents", type=int, default=25, help="agent WebSocket sessions per account")
    ap.add_argument("--visitors", type=int, default=25, help="widget visitor sessions per account")
    ap.add_argument("--samples", type=int, default=400, help="measurements per direction")
    ap.add_argument("--rate", type=float, default=20.0, help="sends per second per direction")
    ap.add_argument("--warmup", type=int, default=20, help="unmeasured sends per direction first")
    ap.add_argument(
        "--deflate", action="store_true", help="let the server compress frames (permessage-deflate)"
    )
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--dump", type=Path, help="write every sample (direction, send offset s, ms) as JSON")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="caredesk-bench-"))
    db_path = tmp / "bench.db"
    db_url = f"sqlite:///{db_path}"
    accounts = setup_db(db_url, args.accounts)
    port = args.port or random.randint(20000, 40000)
    env = {
        "CAREDESK_DATABASE_URL": db_url,
        "CAREDESK_DATA_DIR": str(tmp),
        "CAREDESK_SECRET_KEY": "bench-secret-key",
        "CAREDESK_RATE_LIMIT_PER_MINUTE": "100000000",
        "CAREDESK_JOB_POLL_SECONDS": "0.2",
        "CAREDESK_LOG_LEVEL": "warning",
    }
    server = start_server(env, port, args.deflate)
    base, wsbase = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
    to_agent, to_visitor = Waiters(), Waiters()
    tasks: list[asyncio.Task[None]] = []
    lag = LoopLag()
    try:
        # Idle keep-alive connections are dropped by the client before uvicorn's 5 s keep-alive timeout
        # closes them, so a send never goes out on a connection the server is closing.
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200, keepalive_expiry=3)
        async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
            t_setup = time.monotonic()
            # Agent sessions.
            for acc in accounts:
                for _ in range(args.agents):
                    ev = asyncio.Event()
                    tasks.append(
                        asyncio.create_task(
                            reader(f"{wsbase}/api/v1/realtime?access_token={acc['token']}", to_agent, ev)
                        )
                    )
                    await asyncio.wait_for(ev.wait(), 60)
            # Visitor sessions: each opens a conversation (first message), then its own stream.
            visitors: list[dict[str, Any]] = []
            sem = asyncio.Semaphore(20)

            async def new_visitor(acc: dict[str, Any]) -> None:
                async with sem:
                    s = (await http.post("/widget/api/session", json={"token": acc["inbox"]})).json()
                    r = await http.post(
                        "/widget/api/messages",
                        json={
                            "token": acc["inbox"],
                            "visitor": s["visitor"],
                            "client_id": uuid.uuid4().hex,
                            "text": "hello",
                        },
                    )
                    r.raise_for_status()
                    v = {"acc": acc, "visitor": s["visitor"], "conversation_id": r.json()["conversation_id"]}
                    ev = asyncio.Event()
                    q = httpx.QueryParams({"token": acc["inbox"], "visitor": s["visitor"]})
                    tasks.append(asyncio.create_task(reader(f"{wsbase}/widget/ws?{q}", to_visitor, ev)))
                    await asyncio.wait_for(ev.wait(), 60)
                    visitors.append(v)

            await asyncio.gather(*(new_visitor(acc) for acc in accounts for _ in range(args.visitors)))
            connected = args.accounts * (args.agents + args.visitors)
            print(
                f"connected {connected} sessions ({args.accounts} accounts x {args.agents} agents + {args.visitors} visitors) "
                f"in {time.monotonic() - t_setup:.1f} s"
            )

            c2a: list[float] = []
            a2c: list[float] = []
            sent_c2a: dict[str, float] = {}  # marker -> send time, for the per-socket deliveries
            sent_a2c: dict[str, float] = {}
            timeouts = 0
            measuring = False
            samples: list[tuple[str, float, float]] = []
            t_window0 = 0.0

            async def customer_send(v: dict[str, Any]) -> None:
                nonlocal timeouts
                marker = uuid.uuid4().hex[:36].ljust(36, "x")
                fut = to_agent.expect(marker)
                t0 = time.monotonic()
                r = await http.post(
                    "/widget/api/messages",
                    json={
                        "token": v["acc"]["inbox"],
                        "visitor": v["visitor"],
                        "client_id": uuid.uuid4().hex,
                        "text": f"bench{marker}",
                    },
                )
                r.raise_for_status()
                if measuring:
                    sent_c2a[marker] = t0
                try:
                    t1 = await asyncio.wait_for(fut, 10)
                except TimeoutError:
                    timeouts += int(measuring)
                    return
                if measuring:
                    c2a.append((t1 - t0) * 1000)
                    samples.append(("c2a", t0 - t_window0, (t1 - t0) * 1000))

            async def agent_send(v: dict[str, Any]) -> None:
                nonlocal timeouts
                marker = uuid.uuid4().hex[:36].ljust(36, "x")
                fut = to_visitor.expect(marker)
                t0 = time.monotonic()
                r = await http.post(
                    f"/api/v1/conversations/{v['conversation_id']}/messages",
                    json={"content": f"bench{marker}"},
                    headers={"authorization": f"Bearer {v['acc']['token']}"},
                )
                r.raise_for_status()
                if measuring:
                    sent_a2c[marker] = t0
                try:
                    t1 = await asyncio.wait_for(fut, 10)
                except TimeoutError:
                    timeouts += int(measuring)
                    return
                if measuring:
                    a2c.append((t1 - t0) * 1000)
                    samples.append(("a2c", t0 - t_window0, (t1 - t0) * 1000))

            async def run(n: int) -> None:
                pending: list[asyncio.Task[None]] = []
                interval = 1.0 / args.rate
                t_run = time.monotonic()
                for i in range(n):
                    pending.append(asyncio.create_task(customer_send(random.choice(visitors))))
                    pending.append(asyncio.create_task(agent_send(random.choice(visitors))))
                    await asyncio.sleep(max(0.0, t_run + (i + 1) * interval - time.monotonic()))
                await asyncio.gather(*pending)

            # Warm-up, then let the job queue (the setup's first messages, the warm-up's) empty.
            await run(args.warmup)
            settled = await wait_settled(db_path)
            print(f"warm-up: {args.warmup} sends each way; job queue empty after {settled:.1f} s more")

            lag_task = asyncio.create_task(lag.run())
            measuring = True
            cpu_client0, cpu_server0, t_window0 = (
                time.process_time(),
                server_cpu_seconds(server.pid),
                time.monotonic(),
            )
            await run(args.samples)
            window = time.monotonic() - t_window0
            cpu_client = time.process_time() - cpu_client0
            cpu_server = server_cpu_seconds(server.pid) - cpu_server0
            lag_task.cancel()
            measuring = False
            await asyncio.sleep(10)  # stragglers on the other sockets of the account

            # Every agent socket of the account must get each customer message once; the visitor's one socket
            # each agent message once.
            c2a_all: list[float] = []
            lost = dups = 0
            for marker, t0 in sent_c2a.items():
                socks: dict[int, float] = {}
                for sock, t in to_agent.arrivals[marker]:
                    dups += sock in socks
                    socks.setdefault(sock, t)
                lost += args.agents - len(socks)
                c2a_all.extend((t - t0) * 1000 for t in socks.values())
            for marker in sent_a2c:
                socks = {}
                for sock, t in to_visitor.arrivals[marker]:
                    dups += sock in socks
                    socks.setdefault(sock, t)
                lost += 1 - len(socks)

            def line(name: str, xs: list[float]) -> str:
                if not xs:
                    return f"{name:<38} n=    0"
                return (
                    f"{name:<38} n={len(xs):5d}  p50={statistics.median(xs):7.1f} ms  p90={pct(xs, 90):7.1f} ms  "
                    f"p99={pct(xs, 99):7.1f} ms  max={max(xs):7.1f} ms"
                )

            print(
                f"rate: {args.rate:g} customer sends/s + {args.rate:g} agent sends/s for {window:.1f} s; "
                f"server frame compression: {'on' if args.deflate else 'off'}"
            )
            print(line("customer send -> first agent screen", c2a))
            print(line("customer send -> every agent socket", c2a_all))
            print(line("agent send -> widget", a2c))
            print(
                f"timeouts (>10 s): {timeouts}; deliveries lost: {lost} of "
                f"{len(sent_c2a) * args.agents + len(sent_a2c)}; duplicates: {dups}"
            )
            print(
                f"CPU during the window: server {cpu_server / window * 100:.0f}% of a core, "
                f"bench client {cpu_client / window * 100:.0f}%; client loop lag p99 {pct(lag.lags, 99):.1f} ms, "
                f"max {max(lag.lags, default=0):.1f} ms"
            )
            if args.dump:
                args.dump.write_text(json.dumps(sorted(samples, key=lambda x: x[1])))
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    try:
        import uvloop  # a lighter client loop, like the server's
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
