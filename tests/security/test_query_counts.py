"""No N+1 queries: the number of SQL statements behind a list does not grow with its rows.

Counted: every statement SQLAlchemy sends (`before_cursor_execute` on the write and read engines) and
every precompiled statement the hot paths run directly on the DB-API cursor (`caredesk.platform.db.Raw`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from caredesk.platform.db import Raw
from caredesk.services import Services
from tests.conftest import AccountFixture, post_inbound


class SQLCounter:
    def __init__(self) -> None:
        self.statements: list[str] = []
        self.on = False

    def record(self, text: str) -> None:
        if self.on:
            self.statements.append(" ".join(text.split())[:160])

    async def count(self, call: Callable[[], Awaitable[httpx.Response]]) -> int:
        warm = await call()  # credentials and caches warmed; this call is not counted
        assert warm.status_code == 200, warm.text
        self.statements.clear()
        self.on = True
        try:
            r = await call()
        finally:
            self.on = False
        assert r.status_code == 200, r.text
        assert self.statements, "nothing was counted: is the counter hooked to the engines?"
        return len(self.statements)


@pytest.fixture
def sql(services: Services, monkeypatch: pytest.MonkeyPatch) -> Iterator[SQLCounter]:
    counter = SQLCounter()

    def before(_conn: Any, _cursor: Any, statement: str, *_a: Any) -> None:
        counter.record(statement)

    engines = {id(e): e for e in (services.db.engine, services.db.read_engine)}.values()
    for e in engines:
        sa.event.listen(e, "before_cursor_execute", before)
    original_execute, original_one = Raw.execute, Raw.one

    def execute(self: Raw, q: Any, params: dict[str, Any]) -> Any:
        counter.record(q.sqlite)
        return original_execute(self, q, params)

    def one(self: Raw, q: Any, params: dict[str, Any]) -> Any:
        counter.record(q.sqlite)
        return original_one(self, q, params)

    monkeypatch.setattr(Raw, "execute", execute)
    monkeypatch.setattr(Raw, "one", one)
    yield counter
    for e in engines:
        sa.event.remove(e, "before_cursor_execute", before)


async def _grow(client: httpx.AsyncClient, acc: AccountFixture, start: int, stop: int) -> None:
    for i in range(start, stop):
        r = await post_inbound(
            client, acc, f"question {i}", msg_id=f"q{i}", sender=f"customer{i}@example.com"
        )
        assert r.status_code == 201, r.text


async def _label_and_assign(client: httpx.AsyncClient, acc: AccountFixture) -> None:
    """Give every conversation labels and an assignee, so that per-row lookups would show."""
    r = await client.get("/api/v1/conversations?status=all&limit=100", headers=acc.auth)
    for c in r.json()["items"]:
        if not c.get("labels"):
            await client.post(
                f"/api/v1/conversations/{c['id']}/labels", headers=acc.auth, json={"add": ["vip", "billing"]}
            )
            await client.post(
                f"/api/v1/conversations/{c['id']}/assign", headers=acc.auth, json={"agent_id": acc.admin_id}
            )


async def test_listing_conversations_costs_the_same_for_5_and_25_rows(
    client: httpx.AsyncClient, account: AccountFixture, sql: SQLCounter
) -> None:
    async def listing() -> httpx.Response:
        return await client.get("/api/v1/conversations?status=all&limit=100", headers=account.auth)

    await _grow(client, account, 0, 5)
    await _label_and_assign(client, account)
    five = await sql.count(listing)
    five_statements = list(sql.statements)
    await _grow(client, account, 5, 25)
    await _label_and_assign(client, account)
    twenty_five = await sql.count(listing)
    assert len((await listing()).json()["items"]) == 25
    assert twenty_five == five, f"{five} statements for 5 rows, {twenty_five} for 25:\n" + "\n".join(
        sorted(set(sql.statements) - set(five_statements)) or sql.statements
    )


async def test_the_workspace_list_costs_the_same_for_5_and_25_rows(
    app: Any, client: httpx.AsyncClient, account: AccountFixture, sql: SQLCounter
) -> None:
    from tests.conftest import login

    await login(client, account.admin_email, account.password)

    async def page() -> httpx.Response:
        return await client.get("/ui/list?status=all")

    await _grow(client, account, 0, 5)
    await _label_and_assign(client, account)
    five = await sql.count(page)
    await _grow(client, account, 5, 25)
    await _label_and_assign(client, account)
    assert await sql.count(page) == five, sql.statements


async def test_listing_contacts_costs_the_same_for_5_and_25_rows(
    client: httpx.AsyncClient, account: AccountFixture, sql: SQLCounter
) -> None:
    async def listing() -> httpx.Response:
        return await client.get("/api/v1/contacts?limit=200", headers=account.auth)

    await _grow(client, account, 0, 5)
    five = await sql.count(listing)
    await _grow(client, account, 5, 25)
    twenty_five = await sql.count(listing)
    assert len((await listing()).json()["items"]) == 25
    assert twenty_five == five, sql.statements


async def test_the_contact_timeline_costs_the_same_for_5_and_25_messages(
    client: httpx.AsyncClient, account: AccountFixture, sql: SQLCounter
) -> None:
    """Messages across several conversations of one contact, with agents' replies and notes."""
    first = await post_inbound(client, account, "hello", msg_id="t0", sender="loyal@example.com")
    contact, conv = first.json()["contact_id"], first.json()["conversation_id"]

    async def timeline() -> httpx.Response:
        return await client.get(f"/api/v1/contacts/{contact}/timeline", headers=account.auth)

    async def add(n: int, start: int) -> int:
        nonlocal conv
        for i in range(start, start + n):
            if i % 4 == 0:
                await client.post(f"/api/v1/conversations/{conv}/resolve", headers=account.auth)
            r = await post_inbound(
                client, account, f"again {i}", msg_id=f"t{i + 1}", sender="loyal@example.com"
            )
            conv = r.json()["conversation_id"]
            await client.post(
                f"/api/v1/conversations/{conv}/notes", headers=account.auth, json={"content": f"note {i}"}
            )
        return start + n

    nxt = await add(4, 0)
    five = await sql.count(timeline)
    await add(20, nxt)
    twenty_five = await sql.count(timeline)
    items = (await timeline()).json()["items"]
    assert len(items) >= 25
    assert twenty_five == five, sql.statements
