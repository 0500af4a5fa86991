"""S5: at 10x the rate, excess requests get 429 with Retry-After; other clients are unaffected; logins are
throttled per address and per email.

The limits are per client IP (RateLimitMiddleware) and, for logins, per IP and per email. There is no
per-account limit: an integration's token shares its IP's budget, and two accounts behind one IP share
one. The "other accounts unaffected" check is therefore made from another IP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from caredesk.app import create_app
from caredesk.services import Services
from caredesk.web.limits import RateLimiter
from tests.conftest import AccountFixture

PER_MINUTE = 60  # a burst of 10, then one a second


def _frozen() -> float:
    """The limiters' clock stands still in these tests: no token refills while a slow machine runs them."""
    return 1000.0


@pytest.fixture
async def limited_app(services: Services) -> Any:
    settings = services.settings.model_copy(update={"rate_limit_per_minute": PER_MINUTE})
    services.extras["rate_limiter"] = RateLimiter(PER_MINUTE, clock=_frozen)
    services.extras["login_limiter"] = RateLimiter(PER_MINUTE, clock=_frozen)
    return create_app(settings, services=services)


def _client(app: Any, ip: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(ip, 40000)), base_url="http://testserver"
    )


@pytest.fixture
async def two_clients(limited_app: Any) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    async with _client(limited_app, "10.0.0.1") as one, _client(limited_app, "10.0.0.2") as two:
        yield one, two


def _assert_429(r: httpx.Response) -> None:
    assert r.status_code == 429, r.text
    assert r.headers["content-type"] == "application/problem+json"
    retry = r.headers.get("retry-after")
    assert retry is not None and retry.isdigit() and 1 <= int(retry) <= 60, retry


async def test_ten_times_the_rate_gets_429_with_retry_after_and_other_clients_are_served(
    two_clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
    account: AccountFixture,
    other_account: AccountFixture,
) -> None:
    one, two = two_clients
    burst = PER_MINUTE // 6
    rs = [await one.get("/api/v1/me", headers=account.auth) for _ in range(burst * 10)]
    assert [r.status_code for r in rs[:burst]] == [200] * burst
    limited = [r for r in rs if r.status_code == 429]
    # At one token a second, a run this short earns at most a few more than the burst.
    assert len(limited) >= burst * 10 - burst - 5, [r.status_code for r in rs]
    assert {r.status_code for r in rs} == {200, 429}
    for r in limited:
        _assert_429(r)
    # Another client (another account, from another address) is unaffected.
    r = await two.get("/api/v1/me", headers=other_account.auth)
    assert r.status_code == 200, r.text
    # Health checks are never limited (load balancers poll them).
    assert (await one.get("/healthz")).status_code == 200


async def test_excess_inbound_posts_are_refused_before_anything_is_written(
    two_clients: tuple[httpx.AsyncClient, httpx.AsyncClient], services: Services, account: AccountFixture
) -> None:
    one, _two = two_clients
    url = f"/api/v1/inboxes/{account.inbox_ids['api']}/inbound"
    codes = []
    for i in range(100):
        r = await one.post(
            url,
            headers=account.auth,
            json={"id": f"r{i}", "from": {"kind": "email", "value": "a@b.c"}, "text": "x"},
        )
        codes.append(r.status_code)
        if r.status_code == 429:
            _assert_429(r)
    accepted = codes.count(201)
    assert codes.count(429) == 100 - accepted and accepted <= 20

    def count(s: Any) -> int:
        import sqlalchemy as sa

        return int(
            s.execute(
                sa.text("SELECT count(*) FROM messages WHERE account_id = :a"), {"a": account.id}
            ).scalar()
        )

    assert await services.db.read(count) == accepted


async def test_login_is_throttled_per_address_and_per_email(
    limited_app: Any, account: AccountFixture, other_account: AccountFixture
) -> None:
    burst = PER_MINUTE // 6
    async with _client(limited_app, "10.0.1.1") as c:
        codes = []
        for _ in range(burst + 5):
            r = await c.post(
                "/api/v1/auth/login", json={"email": account.admin_email, "password": "wrong password"}
            )
            codes.append(r.status_code)
        assert codes[:burst] == [401] * burst
        assert set(codes[burst:]) == {429}, codes
        _assert_429(r)
        # Even the right password waits: guessing cannot continue at full speed.
        r = await c.post(
            "/api/v1/auth/login", json={"email": account.admin_email, "password": account.password}
        )
        _assert_429(r)
    # The same email from a fresh address is still throttled (per-email bucket) ...
    async with _client(limited_app, "10.0.1.2") as c:
        r = await c.post(
            "/api/v1/auth/login", json={"email": account.admin_email, "password": account.password}
        )
        _assert_429(r)
        # ... while another agent logging in from there is not.
        r = await c.post(
            "/api/v1/auth/login",
            json={"email": other_account.admin_email, "password": other_account.password},
        )
        assert r.status_code == 200, r.text


async def test_the_workspace_login_form_is_throttled_too(services: Services, account: AccountFixture) -> None:
    services.extras["login_limiter"] = RateLimiter(PER_MINUTE, clock=_frozen)
    app = create_app(services.settings, services=services)  # the general limit stays high here
    burst = PER_MINUTE // 6

    def csrf_of(page: str) -> str:
        return page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]

    async with _client(app, "10.0.2.1") as c:
        csrf = csrf_of((await c.get("/login")).text)
        statuses = []
        for _ in range(burst + 3):
            r = await c.post(
                "/login", data={"email": account.admin_email, "password": "wrong", "csrf_token": csrf}
            )
            statuses.append(r.status_code)
            csrf = csrf_of(r.text)  # every rendering of the form carries a fresh token
        assert statuses == [401] * burst + [429] * 3, statuses
        assert r.headers.get("retry-after", "").isdigit()
        r = await c.post(
            "/login", data={"email": account.admin_email, "password": account.password, "csrf_token": csrf}
        )
        assert r.status_code == 429
