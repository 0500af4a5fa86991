"""An id too large for the database (a 25-digit path parameter) is a 4xx problem on every route that takes
one, on SQLite (the driver cannot bind it) and on PostgreSQL (bigint out of range), never a 500."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import AccountFixture

pytestmark = pytest.mark.postgres

HUGE = "9" * 25


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/api/v1/conversations/{HUGE}"),
        ("GET", f"/api/v1/conversations/{HUGE}/messages"),
        ("GET", f"/api/v1/contacts/{HUGE}"),
        ("GET", f"/api/v1/contacts/{HUGE}/timeline"),
        ("POST", f"/api/v1/contacts/merges/{HUGE}/undo"),
    ],
)
async def test_a_huge_id_is_a_problem_not_a_crash(
    client: httpx.AsyncClient, account: AccountFixture, method: str, path: str
) -> None:
    r = await client.request(method, path, headers=account.auth)
    assert r.status_code in (404, 422), (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["status"] == r.status_code
