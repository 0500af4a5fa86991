"""Inbound message acceptance through the full path, against the raw insert rate of the same database.

Starts a real server (uvicorn, one process) on loopback, posts customer messages with wrk (unique provider
ids: every request is a new message; one in ten contacts is new, the rest write into their open
conversation), and reports messages/s with p50/p99 latency. Then the same wrk load against a bare ASGI
app that commits one row per request to the same kind of database: the ratio shows how close the full
path (dedupe, identity -> contact, conversation, message, events, jobs) comes to the database's own limit.

    python bench/inbound.py                      # SQLite
    python bench/inbound.py --postgres URL       # PostgreSQL (an empty database you own)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

LUA = r"""
counter = 0
math.randomseed(os.time())
request = function()
  counter = counter + 1
  local contact = math.random(1, %(contacts)d)
  local body = '{"id":"bench-' .. id_prefix .. '-' .. counter .. '","from":{"kind":"email","value":"c' .. contact .. '@bench.example"},"text":"Hello, where is my order TH-' .. counter .. '?"}'
  return wrk.format("POST", "%(path)s", {["Content-Type"]="application/json", ["Authorization"]="Bearer %(token)s"}, body)
end
setup = function(thread)
  thread:set("id_prefix", tostring(math.random(1, 1000000000)))
end
init = function(args)
  id_prefix = id_prefix or tostring(math.random(1, 1000000000))
end
"""

BARE_LUA = r"""
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("POST", "/", {["Content-Type"]="application/json"}, '{"text":"Hello ' .. counter .. '"}')
end
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str) -> None:
    for _ in range(300):
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def wrk(url: str, script: str, seconds: int, connections: int, threads: int = 1) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", f.name, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(f.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        if not m:
            return float("nan")
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "p50_ms": pct("50"),
        "p99_ms": pct("99"),
        "non_2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "socket_errors": errors.group(1) if errors else "none",
    }  # type: ignore[dict-item]


def setup_account(db_url: str) -> tuple[str, int]:
    from caredesk.accounts.actions import create_account, create_api_token, create_inbox
    from caredesk.accounts.actors import system_actor
    from caredesk.migrate import upgrade
    from caredesk.platform.db import Database

    db = Database(db_url)
    upgrade(db)

    def w(s):  # type: ignore[no-untyped-def]
        acc = create_account(s, "Bench shop", f"bench-{int(time.time() * 1000) % 10**9}")
        actor = system_actor(acc.id)
        _t, raw = create_api_token(s, actor, "bench")
        inbox = create_inbox(s, actor, name="API", channel="api")
        return raw, inbox.id

    token, inbox_id = db.write_sync(w)
    db.close()
    return token, inbox_id


def count_messages(db_url: str) -> int:
    from sqlalchemy import func, select

    from caredesk.conversations.models import Message
    from caredesk.platform.db import Database

    db = Database(db_url)
    n = db.read_sync(lambda s: s.execute(select(func.count(Message.id))).scalar_one())
    db.close()
    return int(n)


def run_caredesk(
    db_url: str, seconds: int, connections: int, worker: bool, tmp: Path, processes: int = 1
) -> dict[str, float]:
    token, inbox_id = setup_account(db_url)
    before = count_messages(db_url)
    port = free_port()
    env = {
        **os.environ,
        "CAREDESK_DATABASE_URL": db_url,
        "CAREDESK_DATA_DIR": str(tmp),
        "CAREDESK_SECRET_KEY": "bench-secret-key",
        "CAREDESK_RATE_LIMIT_PER_MINUTE": "100000000",
        "CAREDESK_EMBEDDED_WORKER": "true" if worker else "false",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "caredesk.asgi:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--workers",
            str(processes),
        ],
        env=env,
        cwd=REPO,
    )
    try:
        wait_up(f"http://127.0.0.1:{port}/healthz")
        script = LUA % {"contacts": 2000, "path": f"/api/v1/inboxes/{inbox_id}/inbound", "token": token}
        wrk(f"http://127.0.0.1:{port}", script, 2, connections)  # warm-up
        res = wrk(f"http://127.0.0.1:{port}", script, seconds, connections)
    finally:
        proc.terminate()
        proc.wait()
    res["stored"] = count_messages(db_url) - before
    return res


BARE_APP = r"""
import os, sqlite3, json
DB = os.environ["BARE_DB"]
if DB.startswith("postgresql"):
    import psycopg
    conn = psycopg.connect(DB.replace("postgresql+psycopg", "postgresql"), autocommit=False)
    conn.execute("CREATE TABLE IF NOT EXISTS bare (id BIGSERIAL PRIMARY KEY, body TEXT NOT NULL)")
    conn.commit()
    SQL = "INSERT INTO bare (body) VALUES (%s)"
else:
    conn = sqlite3.connect(DB.split("///", 1)[1], isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL"); conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE IF NOT EXISTS bare (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    SQL = "INSERT INTO bare (body) VALUES (?)"

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        m = await receive(); body += m.get("body", b"")
        if not m.get("more_body"):
            break
    if DB.startswith("postgresql"):
        conn.execute(SQL, (body.decode(),)); conn.commit()
    else:
        conn.execute("BEGIN"); conn.execute(SQL, (body.decode(),)); conn.execute("COMMIT")
    await send({"type": "http.response.start", "status": 201, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"ok":true}'})
"""


def run_bare(db_url: str, seconds: int, connections: int, tmp: Path) -> dict[str, float]:
    app_file = tmp / "bare_app.py"
    app_file.write_text(BARE_APP)
    port = free_port()
    env = {**os.environ, "BARE_DB": db_url, "PYTHONPATH": str(tmp)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bare_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
        ],
        env=env,
        cwd=tmp,
    )
    try:
        wait_up(f"http://127.0.0.1:{port}/")
        wrk(f"http://127.0.0.1:{port}", BARE_LUA, 2, connections)
        return wrk(f"http://127.0.0.1:{port}", BARE_LUA, seconds, connections)
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--postgres", help="PostgreSQL URL (postgresql+psycopg://...) instead of SQLite")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument(
        "--with-worker", action="store_true", help="also run the embedded job worker in the server"
    )
    ap.add_argument("--processes", type=int, default=1, help="uvicorn worker processes")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        url = args.postgres or f"sqlite:///{tmp / 'bench.db'}"
        bare_url = args.postgres or f"sqlite:///{tmp / 'bare.db'}"
        full = run_caredesk(url, args.seconds, args.connections, args.with_worker, tmp, args.processes)
        bare = run_bare(bare_url, args.seconds, args.connections, tmp)
    result = {
        "database": "postgresql" if args.postgres else "sqlite",
        "connections": args.connections,
        "seconds": args.seconds,
        "embedded_worker": args.with_worker,
        "processes": args.processes,
        "inbound": full,
        "bare_insert": bare,
        "ratio": round(full["rps"] / bare["rps"], 3) if bare["rps"] else None,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
