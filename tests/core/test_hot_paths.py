"""The short way in for inbound messages (caredesk.web.hotpath): it answers the valid requests itself and
hands every other one to the full FastAPI stack, which must then answer exactly as it always did."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from caredesk.services import Services
from caredesk.web import hotpath
from caredesk.web.api import inbound as inbound_api
from caredesk.web.hotpath import HotPaths, HotRequest, HotResponse, HotRoute
from caredesk.web.limits import RateLimiter
from tests.conftest import AccountFixture

pytestmark = pytest.mark.postgres


@pytest.fixture
def hot_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records each request the hot handler authenticated itself (the full stack never calls this name)."""
    calls: list[str] = []
    real = inbound_api.token_actor

    async def spy(svc: Services, token: str) -> Any:
        calls.append(token)
        return await real(svc, token)

    monkeypatch.setattr(inbound_api, "token_actor", spy)
    return calls


def _url(acc: AccountFixture) -> str:
    return f"/api/v1/inboxes/{acc.inbox_ids['api']}/inbound"


async def test_valid_message_is_answered_by_the_hot_path_with_the_same_contract(
    client: httpx.AsyncClient, account: AccountFixture, hot_calls: list[str]
) -> None:
    body = {"id": "hot-1", "from": {"kind": "email", "value": "Ana@Example.com", "name": "Ana"}, "text": "hi"}
    r = await client.post(_url(account), json=body, headers=account.auth)
    assert r.status_code == 201, r.text
    assert hot_calls == [account.token]
    data = r.json()
    assert set(data) == {"message_id", "conversation_id", "contact_id", "duplicate"}
    assert data["duplicate"] is False
    assert r.headers["content-type"] == "application/json"
    assert "default-src" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"

    again = await client.post(_url(account), json=body, headers=account.auth)
    assert again.status_code == 200 and again.json() == {**data, "duplicate": True}

    # The stored message is the one the full stack would have stored (identity normalised, name kept).
    conv = await client.get(f"/api/v1/conversations/{data['conversation_id']}/messages", headers=account.auth)
    msgs = conv.json()["items"] if isinstance(conv.json(), dict) else conv.json()
    assert [m["content"] for m in msgs if m["type"] == "incoming"] == ["hi"]
    contact = (await client.get(f"/api/v1/contacts/{data['contact_id']}", headers=account.auth)).json()
    assert contact["name"] == "Ana"
    assert "ana@example.com" in str(contact).lower()


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("bad token", 401),
        ("no token", 401),
        ("missing text", 422),
        ("unknown field", 422),
        ("not json", 422),
        ("other account's inbox", 404),
        ("unknown inbox", 404),
        ("huge id", 0),  # past 64 bits: 422 on SQLite, 404 on PostgreSQL (either way, never a 500)
    ],
)
async def test_refusals_come_from_the_full_stack_as_problem_json(
    client: httpx.AsyncClient,
    account: AccountFixture,
    other_account: AccountFixture,
    case: str,
    status: int,
) -> None:
    url = _url(account)
    headers = dict(account.auth)
    content: bytes = b'{"from": {"value": "a@example.com"}, "text": "hello"}'
    if case == "bad token":
        headers = {"authorization": "Bearer nope"}
    elif case == "no token":
        headers = {}
    elif case == "missing text":
        content = b'{"from": {"value": "a@example.com"}}'
    elif case == "unknown field":
        content = b'{"from": {"value": "a@example.com"}, "text": "x", "admin": true}'
    elif case == "not json":
        content = b'{"from": '
    elif case == "other account's inbox":
        url = _url(other_account)
    elif case == "unknown inbox":
        url = "/api/v1/inboxes/987654321/inbound"
    elif case == "huge id":
        url = "/api/v1/inboxes/9999999999999999999999999/inbound"
    r = await client.post(url, content=content, headers={**headers, "content-type": "application/json"})
    assert r.status_code in ((404, 422) if status == 0 else (status,)), r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["status"] == r.status_code
    # Nothing was stored for a refused request.
    listing = await client.get("/api/v1/conversations", headers=account.auth)
    assert listing.json()["total"] == 0 if "total" in listing.json() else not listing.json()["items"]


async def test_over_the_body_limit_is_413_and_stores_nothing(
    client: httpx.AsyncClient, account: AccountFixture, services: Services
) -> None:
    big = b'{"from": {"value": "a@example.com"}, "text": "' + b"x" * services.settings.max_body_bytes + b'"}'
    r = await client.post(
        _url(account), content=big, headers={**account.auth, "content-type": "application/json"}
    )
    assert r.status_code == 413
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_rate_limit_applies_to_the_hot_path(
    services: Services, account: AccountFixture, hot_calls: list[str]
) -> None:
    from caredesk.app import create_app

    clock = [1000.0]
    services.extras["rate_limiter"] = RateLimiter(60, clock=lambda: clock[0])  # burst of 10
    app = create_app(services.settings, services=services)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        codes = []
        for i in range(15):
            r = await c.post(
                _url(account),
                json={"id": f"rl-{i}", "from": {"value": "a@example.com"}, "text": "hello"},
                headers=account.auth,
            )
            codes.append(r.status_code)
            if r.status_code == 429:
                assert int(r.headers["retry-after"]) >= 1
    assert codes[:10] == [201] * 10
    assert codes[10:] == [429] * 5
    assert len(hot_calls) == 10


# ---- the middleware on its own ---------------------------------------------------------------------


class _Inner:
    """Stands for the full stack: records what it was given and answers 299."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"inner"})


async def _answer_if_ok(svc: Any, req: HotRequest) -> HotResponse | None:
    if req.body == b"ok":
        return HotResponse(201, b'{"id":' + req.params[0].encode() + b"}")
    return None


def _middleware(inner: _Inner, limiter: RateLimiter | None = None) -> HotPaths:
    return HotPaths(
        inner,  # type: ignore[arg-type]
        services=None,  # type: ignore[arg-type]
        routes=[HotRoute("POST", re.compile(r"/things/(\d+)"), _answer_if_ok)],
        limiter=limiter or RateLimiter(1_000_000),
        max_body_bytes=100,
        default_headers=((b"x-test", b"1"),),
    )


async def test_middleware_answers_declines_and_replays_the_body_unchanged() -> None:
    inner = _Inner()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=_middleware(inner)), base_url="http://t"
    ) as c:
        r = await c.post("/things/7", content=b"ok")
        assert (r.status_code, r.json(), r.headers["x-test"]) == (201, {"id": 7}, "1")
        assert inner.bodies == []
        # Declined by the handler: the inner app gets the very same bytes.
        r = await c.post("/things/7", content=b"not ok")
        assert r.status_code == 299 and inner.bodies == [b"not ok"]
        # Another method, another path, or a body over the limit: never looked at.
        for method, path, body in (
            ("PUT", "/things/7", b"ok"),
            ("POST", "/things/x", b"ok"),
            ("POST", "/things/7", b"o" * 101),
        ):
            r = await c.request(method, path, content=body)
            assert r.status_code == 299
        assert inner.bodies[1:] == [b"ok", b"ok", b"o" * 101]


async def test_middleware_without_content_length_goes_to_the_full_stack() -> None:
    inner = _Inner()
    sent: list[dict[str, Any]] = []
    chunks = [
        {"type": "http.request", "body": b"o", "more_body": True},
        {"type": "http.request", "body": b"k", "more_body": False},
    ]

    async def receive() -> dict[str, Any]:
        return chunks.pop(0)

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    scope = {"type": "http", "method": "POST", "path": "/things/1", "headers": [], "client": ("1.2.3.4", 1)}
    await _middleware(inner)(scope, receive, send)
    assert inner.bodies == [b"ok"] and sent[0]["status"] == 299


def test_hot_routes_of_reads_the_module_attribute() -> None:
    assert hotpath.hot_routes_of(inbound_api) == inbound_api.HOT_ROUTES
    assert hotpath.hot_routes_of(object()) == []


async def test_a_failing_hot_handler_answers_500_problem_json() -> None:
    async def broken(svc: Any, req: HotRequest) -> HotResponse | None:
        raise RuntimeError("boom")

    inner = _Inner()
    mw = HotPaths(
        inner,  # type: ignore[arg-type]
        services=None,  # type: ignore[arg-type]
        routes=[HotRoute("POST", re.compile(r"/broken"), broken)],
        limiter=RateLimiter(1_000_000),
        max_body_bytes=100,
        default_headers=(),
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mw), base_url="http://t") as c:
        r = await c.post("/broken", content=b"x")
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/problem+json" and r.json()["status"] == 500
    assert inner.bodies == []  # not run twice through the full stack
