"""Shared fixtures: a fresh database per test (SQLite by default, PostgreSQL with CAREDESK_TEST_DB=postgres),
the app with its services, an HTTP client, and accounts with an admin, a token and a logged-in session."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from caredesk.accounts.actions import create_account, create_agent, create_api_token
from caredesk.accounts.actors import Actor, system_actor
from caredesk.app import build_services, create_app
from caredesk.migrate import upgrade
from caredesk.platform.db import Database
from caredesk.services import Services
from caredesk.settings import Settings

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("CAREDESK_SHARED_DATA", REPO.parent / "shared" / "data"))
BACKEND = os.environ.get("CAREDESK_TEST_DB", "sqlite")
PG_ADMIN_URL = os.environ.get(
    "CAREDESK_TEST_PG_URL", ""
)  # e.g. postgresql+psycopg://postgres@127.0.0.1:PORT/postgres


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def _template(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated database that each test copies: migrations run once per session."""
    if BACKEND == "postgres":
        if not PG_ADMIN_URL:
            pytest.fail("CAREDESK_TEST_DB=postgres needs CAREDESK_TEST_PG_URL (make test starts the server)")
        import sqlalchemy as sa

        name = f"cd_template_{os.getpid()}"
        admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
        db = Database(url)
        upgrade(db)
        db.close()
        return name
    path = tmp_path_factory.mktemp("template") / "template.db"
    db = Database(f"sqlite:///{path}")
    upgrade(db)
    db.close()
    return str(path)


@pytest.fixture
def db_url(_template: str, tmp_path: Path) -> Iterator[str]:
    if BACKEND == "postgres":
        import sqlalchemy as sa

        name = f"cd_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{_template}"'))
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        return
    path = tmp_path / "caredesk.db"
    shutil.copy(_template, path)
    yield f"sqlite:///{path}"


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=db_url,
        data_dir=tmp_path / "data",
        secret_key="test-secret-key-123",
        redis_url=None,
        job_poll_seconds=0.05,
        rate_limit_per_minute=1_000_000,
        login_attempts_per_minute=1000,
        preload_models=False,  # loaded lazily by the few tests that need them (seconds of CPU each start)
    )


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    svc = build_services(settings)
    await svc.bus.start()
    yield svc
    await svc.bus.stop()
    svc.db.close()


@pytest.fixture
async def app(services: Services) -> Any:
    return create_app(services.settings, services=services)


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@dataclass
class AccountFixture:
    id: int
    slug: str
    admin_id: int
    admin_email: str
    password: str
    token: str
    actor: Actor
    inbox_ids: dict[str, int] = field(default_factory=dict)

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


def make_account(
    db: Database, slug: str, *, inboxes: tuple[str, ...] = ("api", "webchat", "email")
) -> AccountFixture:
    from caredesk.accounts.actions import create_inbox

    password = "correct horse battery"

    def w(s: Any) -> AccountFixture:
        acc = create_account(s, f"Shop {slug}", slug)
        sys_actor = system_actor(acc.id)
        admin = create_agent(
            s, sys_actor, email=f"admin@{slug}.test", name=f"Admin {slug}", role="admin", password=password
        )
        _tok, raw = create_api_token(s, sys_actor, "tests")
        ids = {ch: create_inbox(s, sys_actor, name=f"{ch} inbox", channel=ch).id for ch in inboxes}
        actor = Actor(account_id=acc.id, kind="agent", id=admin.id, role="admin", name=admin.name)
        return AccountFixture(acc.id, slug, admin.id, admin.email, password, raw, actor, ids)

    return db.write_sync(w)


@pytest.fixture
def account(services: Services) -> AccountFixture:
    return make_account(services.db, "alpha")


@pytest.fixture
def other_account(services: Services) -> AccountFixture:
    return make_account(services.db, "bravo")


async def login(client: httpx.AsyncClient, email: str, password: str) -> str:
    """Logs the client in (cookie) and returns the CSRF token to send as X-CSRF-Token."""
    r = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return str(r.json()["csrf_token"])


async def post_inbound(
    client: httpx.AsyncClient,
    acc: AccountFixture,
    text: str,
    *,
    msg_id: str | None = None,
    sender: str = "customer@example.com",
    kind: str = "email",
    channel: str = "api",
) -> httpx.Response:
    body: dict[str, Any] = {"from": {"kind": kind, "value": sender}, "text": text}
    if msg_id is not None:
        body["id"] = msg_id
    return await client.post(f"/api/v1/inboxes/{acc.inbox_ids[channel]}/inbound", json=body, headers=acc.auth)


@dataclass
class LiveServer:
    url: str
    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    port: int

    def stop(self, sig: int = 15) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_server(env_overrides: dict[str, str], port: int | None = None, timeout: float = 30.0) -> LiveServer:
    """A real uvicorn process (for WebSocket, kill -9 and multi-process tests)."""
    port = port or free_port()
    env = {**os.environ, **env_overrides}
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
        ],
        env=env,
        cwd=str(REPO),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return LiveServer(url, proc, env, port)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def server_env(settings: Settings) -> dict[str, str]:
    return {
        "CAREDESK_DATABASE_URL": settings.database_url,
        "CAREDESK_DATA_DIR": str(settings.data_dir),
        "CAREDESK_SECRET_KEY": settings.secret_key,
        "CAREDESK_RATE_LIMIT_PER_MINUTE": "1000000",
        "CAREDESK_JOB_POLL_SECONDS": "0.05",
        "CAREDESK_PRELOAD_MODELS": "false",
    }
