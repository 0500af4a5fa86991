"""S3: every route and real-time channel called by account B with account A's ids answers 404 and leaks
nothing; a route added without an entry here fails the suite ("new route without an isolation test")."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from caredesk.services import Services
from caredesk.settings import Settings
from tests.conftest import login, server_env, start_server
from tests.security.conftest import SECRET_TEXT, World
from tests.security.routes import RouteInfo, all_routes

MISSING_ID = "987654321"

# How to get A's value for each path parameter. A route whose parameter is not here fails the suite.
PARAM_VALUES: dict[str, Callable[[World], str]] = {
    "agent_id": lambda w: str(w.ids["agent_id"]),
    "team_id": lambda w: str(w.ids["team_id"]),
    "inbox_id": lambda w: str(w.ids["inbox_id"]),
    "contact_id": lambda w: str(w.ids["contact_id"]),
    "conversation_id": lambda w: str(w.ids["conversation_id"]),
    "message_id": lambda w: str(w.ids["message_id"]),
    "merge_id": lambda w: str(w.ids["merge_id"]),
    "suggestion_id": lambda w: str(w.ids["suggestion_id"]),
    "token_id": lambda w: str(w.ids["token_id"]),
    "job_id": lambda w: str(w.ids["job_id"]),
    "webhook_id": lambda w: str(w.ids["webhook_id"]),
    # Not ids: the attachment's position in A's message, a name in a per-account namespace, a page name.
    "index": lambda w: "0",
    "name": lambda w: "shop_key",
    "section": lambda w: "agents",
}
ID_PARAMS = {p for p in PARAM_VALUES if p.endswith("_id")}

# Reachable without an account's credentials on purpose; each is checked in test_public_routes_*.
PUBLIC_BY_DESIGN: dict[str, str] = {
    "/webhooks/{channel}/{token}": "provider webhook keyed by the inbox public token, authenticated by the "
    "provider's signature on the raw bytes",
    "/widget/assets/{name}": "the widget's static bundle by file name; holds no tenant data",
    "/files/{token}": "a customer's download link to one file an agent sent: the token is signed with the "
    "install's secret and names the account and the attachment",
}
MOUNTS_BY_DESIGN: dict[str, str] = {
    "/static/ui": "the workspace's CSS and JavaScript; no tenant data",
    "/demo-shop/api": "the demo business's fake order API for the demo seed; no tenant data",
}
# WebSocket routes and the test that proves B cannot read A's stream on them.
WEBSOCKETS_TESTED: dict[str, str] = {
    "/api/v1/realtime": "test_realtime_streams_carry_only_the_callers_account",
    "/widget/ws": "test_realtime_streams_carry_only_the_callers_account",
}
# Where a parameter is not another account's object, what B may get instead of 404, and why.
EXPECT: dict[tuple[str, str], tuple[set[int], str]] = {
    ("PUT", "/api/v1/automation/secrets/{name}"): ({204}, "secret names are per account: B writes its own"),
    ("GET", "/admin/{section}"): ({200}, "a page name: B sees B's own admin page"),
}


def _bodies(w: World) -> dict[tuple[str, str], dict[str, Any]]:
    """Valid bodies, so that the handler (and its account check) runs instead of a 422 from validation."""
    b_admin = w.b.admin_id
    return {
        ("POST", "/api/v1/inboxes/{inbox_id}/inbound"): {
            "json": {"id": "b-probe", "from": {"kind": "email", "value": "probe@bravo.test"}, "text": "probe"}
        },
        ("PATCH", "/api/v1/agents/{agent_id}"): {"json": {"name": "pwned"}},
        ("PATCH", "/api/v1/teams/{team_id}"): {"json": {"name": "pwned"}},
        ("PATCH", "/api/v1/inboxes/{inbox_id}"): {"json": {"name": "pwned"}},
        ("PATCH", "/api/v1/contacts/{contact_id}"): {"json": {"name": "pwned"}},
        ("POST", "/api/v1/contacts/{contact_id}/identities"): {
            "json": {"kind": "email", "value": "pwn@bravo.test"}
        },
        ("PATCH", "/api/v1/conversations/{conversation_id}"): {"json": {"priority": "urgent"}},
        ("POST", "/api/v1/conversations/{conversation_id}/messages"): {"json": {"content": "pwned"}},
        ("POST", "/api/v1/conversations/{conversation_id}/notes"): {"json": {"content": "pwned"}},
        ("POST", "/api/v1/conversations/{conversation_id}/attachments"): {
            "data": {"content": "pwned"},
            "files": [("files", ("pwned.txt", b"pwned", "text/plain"))],
        },
        ("POST", "/api/v1/conversations/{conversation_id}/assign"): {"json": {"agent_id": b_admin}},
        ("POST", "/api/v1/conversations/{conversation_id}/transfer"): {
            "json": {"note": "x", "agent_id": b_admin}
        },
        ("POST", "/api/v1/conversations/{conversation_id}/snooze"): {
            "json": {"until": "2099-01-01T00:00:00Z"}
        },
        ("POST", "/api/v1/conversations/{conversation_id}/labels"): {"json": {"add": ["pwned"]}},
        ("POST", "/api/v1/conversations/{conversation_id}/actions/{name}"): {"json": {"confirmed": True}},
        ("POST", "/api/v1/conversations/{conversation_id}/reask-check"): {"json": {"content": "your email?"}},
        ("PUT", "/api/v1/automation/secrets/{name}"): {"json": {"value": "bravo-value"}},
        ("PATCH", "/api/v1/webhooks/{webhook_id}"): {"json": {"url": "https://evil.example/x"}},
        ("POST", "/ui/c/{conversation_id}/reply"): {"data": {"content": "pwned"}},
        ("POST", "/ui/c/{conversation_id}/assign"): {"data": {"agent_id": "me"}},
        ("POST", "/ui/c/{conversation_id}/transfer"): {"data": {"target": f"agent:{b_admin}", "note": "x"}},
        ("POST", "/ui/c/{conversation_id}/status"): {"data": {"status": "resolved"}},
        ("POST", "/ui/c/{conversation_id}/labels"): {"data": {"add": "pwned"}},
        ("POST", "/ui/c/{conversation_id}/merge"): {"data": {"other": str(w.ids["contact_id"])}},
        ("POST", "/ui/c/{conversation_id}/presence"): {"data": {"state": "viewing"}},
        ("POST", "/admin/agents/{agent_id}"): {"data": {"role": "admin", "active": "on"}},
        ("POST", "/admin/teams/{team_id}"): {"data": {"skills": "pwned"}},
        ("POST", "/admin/inboxes/{inbox_id}"): {"data": {"greeting": "pwned"}},
    }


async def as_b(
    w: World, client: httpx.AsyncClient, method: str, path: str, url: str, **kw: Any
) -> httpx.Response:
    """Call as B with the credentials the route takes: bearer token (API), visitor token (widget) or the
    logged-in cookie session with its CSRF header (workspace pages)."""
    if path.startswith("/api/"):
        return await client.request(method, url, headers=w.b.auth, **kw)
    if path.startswith("/widget/api/"):
        return await client.request(
            method,
            url,
            params={"token": w.b_webchat_token},
            headers={"x-caredesk-visitor": w.b_visitor},
            **kw,
        )
    return await w.b_ui.request(method, url, headers={"x-csrf-token": w.b_csrf}, **kw)


async def snapshot(client: httpx.AsyncClient, services: Services, w: World) -> dict[str, Any]:
    """A's state as A sees it, and A's rows: any write by B to A's data changes it."""
    i = w.ids
    paths = [
        f"/api/v1/conversations/{i['conversation_id']}",
        f"/api/v1/conversations/{i['conversation_id']}/messages",
        f"/api/v1/contacts/{i['contact_id']}",
        f"/api/v1/contacts/{i['contact_id']}/timeline",
        f"/api/v1/contacts/{i['contact_id']}/link-suggestions",
        "/api/v1/contacts",
        "/api/v1/agents",
        "/api/v1/teams",
        "/api/v1/inboxes",
        "/api/v1/api-tokens",
        "/api/v1/account",
        "/api/v1/jobs/dead",
        "/api/v1/automation/secrets",
        "/api/v1/audit",
        "/api/v1/webhooks",
    ]
    out: dict[str, Any] = {}
    for p in paths:
        r = await client.get(p, headers=w.a.auth)
        assert r.status_code == 200, (p, r.text)
        out[p] = r.json()

    def counts(s: Any) -> dict[str, int]:
        return {
            t: s.execute(sa.text(f"SELECT count(*) FROM {t} WHERE account_id = :a"), {"a": w.a.id}).scalar()
            for t in (
                "messages",
                "conversations",
                "contacts",
                "identities",
                "events",
                "jobs",
                "audit_log",
                "automation_secrets",
                "raw_inbound",
                "webhook_endpoints",
                "contact_link_suggestions",
            )
        }

    out["rows"] = await services.db.read(counts)
    return out


async def test_every_route_with_a_path_parameter_hides_other_accounts_objects(
    app: Any, client: httpx.AsyncClient, services: Services, world: World
) -> None:
    w = world
    bodies = _bodies(w)
    before = await snapshot(client, services, w)
    problems: list[str] = []
    checked = 0
    for route in all_routes(app):
        if route.kind == "mount":
            if route.path not in MOUNTS_BY_DESIGN:
                problems.append(
                    f"new mount without an isolation test: {route.path} (add it to MOUNTS_BY_DESIGN)"
                )
            continue
        if route.kind == "websocket":
            if route.path not in WEBSOCKETS_TESTED:
                problems.append(f"new WebSocket route without an isolation test: {route.path}")
            continue
        if not route.params or route.path in PUBLIC_BY_DESIGN:
            continue
        missing = [p for p in route.params if p not in PARAM_VALUES]
        if missing:
            problems.append(
                f"new route without an isolation test: {route.methods} {route.path} "
                f"(path parameter {', '.join(missing)} is not in PARAM_VALUES)"
            )
            continue
        for method in route.methods:
            checked += 1
            kw = bodies.get((method, route.path), {})
            url_a = route.url({p: PARAM_VALUES[p](w) for p in route.params})
            url_missing = route.url(
                {p: MISSING_ID if p in ID_PARAMS else PARAM_VALUES[p](w) for p in route.params}
            )
            allowed, _why = EXPECT.get((method, route.path), ({404}, ""))
            r = await as_b(w, client, method, route.path, url_a, **kw)
            where = f"{method} {url_a} as B"
            w.assert_no_leak(r.text, where)
            if r.status_code not in allowed:
                problems.append(f"{where}: {r.status_code} (expected {sorted(allowed)}): {r.text[:200]}")
                continue
            r2 = await as_b(w, client, method, route.path, url_missing, **kw)
            if r2.status_code != r.status_code:
                problems.append(
                    f"{method} {route.path}: A's id answers {r.status_code} but a missing id {r2.status_code} "
                    "(an existence oracle)"
                )
    assert not problems, "\n".join(problems)
    assert checked >= 40, f"only {checked} route/method pairs were checked: is the route listing broken?"
    assert await snapshot(client, services, w) == before, "B's calls changed A's data"


async def test_the_ids_used_are_real_for_their_owner(
    app: Any, client: httpx.AsyncClient, world: World
) -> None:
    """The sweep above would pass vacuously with wrong ids: A itself must get 200 for every GET."""
    w = world
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as a_ui:
        await login(a_ui, w.a.admin_email, w.a.password)
        for route in all_routes(app):
            if route.kind != "http" or "GET" not in route.methods or not route.params:
                continue
            if route.path in PUBLIC_BY_DESIGN or any(p not in PARAM_VALUES for p in route.params):
                continue
            url = route.url({p: PARAM_VALUES[p](w) for p in route.params})
            if route.path.startswith("/widget/api/"):
                continue  # A's file belongs to A's API contact, not to a widget visitor: checked below
            r = await (client.get(url, headers=w.a.auth) if route.path.startswith("/api/") else a_ui.get(url))
            assert r.status_code == 200, f"GET {url} as A: {r.status_code} {r.text[:200]}"
        r = await a_ui.get(f"/ui/files/{w.ids['message_id']}/0")
        assert r.status_code == 200 and r.content.startswith(b"alpha-secret-file")


async def test_ids_in_bodies_and_query_strings_are_scoped(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    w = world
    r = await client.post(
        f"/api/v1/inboxes/{w.b.inbox_ids['api']}/inbound",
        headers=w.b.auth,
        json={"from": {"kind": "email", "value": "bob@bravo.test"}, "text": "bravo's own message"},
    )
    assert r.status_code == 201, r.text
    b_conv, b_contact = r.json()["conversation_id"], r.json()["contact_id"]
    before = await snapshot(client, services, w)
    i = w.ids
    h = w.b.auth
    attempts = [
        ("POST", f"/api/v1/conversations/{b_conv}/assign", {"agent_id": i["agent_id"]}),
        ("POST", f"/api/v1/conversations/{b_conv}/assign", {"team_id": i["team_id"]}),
        ("POST", f"/api/v1/conversations/{b_conv}/transfer", {"note": "x", "agent_id": i["agent_id"]}),
        ("POST", f"/api/v1/conversations/{b_conv}/transfer", {"note": "x", "team_id": i["team_id"]}),
        ("POST", "/api/v1/teams", {"name": "stolen", "agent_ids": [i["agent_id"]]}),
        ("POST", "/api/v1/contacts/merge", {"survivor_id": b_contact, "merged_id": i["contact_id"]}),
        ("POST", "/api/v1/contacts/merge", {"survivor_id": i["contact_id"], "merged_id": b_contact}),
    ]
    for method, url, body in attempts:
        r = await client.request(method, url, headers=h, json=body)
        assert r.status_code == 404, (url, body, r.status_code, r.text)
        w.assert_no_leak(r.text, f"{method} {url} {body}")
    r = await w.b_ui.post(
        f"/ui/c/{b_conv}/merge", data={"other": str(i["contact_id"])}, headers={"x-csrf-token": w.b_csrf}
    )
    assert r.status_code == 404, r.text
    for url in (
        f"/api/v1/conversations?status=all&inbox_id={i['inbox_id']}",
        f"/api/v1/conversations?status=all&assignee_id={i['agent_id']}",
        f"/api/v1/conversations?status=all&team_id={i['team_id']}",
        f"/api/v1/conversations/counts?status=all&inbox_id={i['inbox_id']}",
        "/api/v1/contacts?q=Zelda",
        "/api/v1/contacts?q=alpha.test",
        f"/api/v1/audit?target_type=conversation&target_id={i['conversation_id']}",
    ):
        r = await client.get(url, headers=h)
        assert r.status_code == 200, (url, r.text)
        w.assert_no_leak(r.text, url)
        items = r.json().get("items")
        if items is not None and "audit" not in url:
            assert items == [], (url, items)
    assert await snapshot(client, services, w) == before


async def test_list_endpoints_and_pages_show_only_the_callers_account(
    app: Any, client: httpx.AsyncClient, world: World
) -> None:
    """Every GET without a path parameter, called as B (A has data everywhere): none of A's data."""
    w = world
    streaming = {"/api/v1/events"}  # endless; covered on a real server below
    seen = 0
    for route in all_routes(app):
        if route.kind != "http" or "GET" not in route.methods or route.params or route.path in streaming:
            continue
        r = await as_b(w, client, "GET", route.path, route.path)
        assert r.status_code < 500, (route.path, r.status_code, r.text[:300])
        w.assert_no_leak(r.text, f"GET {route.path}")
        seen += 1
    assert seen >= 15
    # And B's lists are not empty because of an error: B sees its own admin in its agents list.
    r = await client.get("/api/v1/agents", headers=w.b.auth)
    assert [a["email"] for a in r.json()["items"]] == [w.b.admin_email]


def _rows(services: Services, account_id: int) -> Any:
    def q(s: Any) -> dict[str, int]:
        return {
            t: s.execute(
                sa.text(f"SELECT count(*) FROM {t} WHERE account_id = :a"), {"a": account_id}
            ).scalar()
            for t in ("messages", "conversations", "contacts", "identities", "raw_inbound", "events")
        }

    return services.db.read(q)


async def test_public_routes_with_a_public_token_but_no_credentials_write_and_reveal_nothing(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    w = world
    before = await _rows(services, w.a.id)
    inbox = (await client.get(f"/api/v1/inboxes/{w.ids['inbox_id']}", headers=w.a.auth)).json()
    api_token = inbox["public_token"]
    payload = json.dumps(
        {"id": "forged-1", "from": {"kind": "email", "value": "x@evil.test"}, "text": "forged"}
    )
    # The API channel's webhook without a signature, with a wrong one, and for every other adapter name.
    for headers in (
        {},
        {"webhook-id": "msg_1", "webhook-timestamp": "1700000000", "webhook-signature": "v1,AAAA"},
    ):
        r = await client.post(f"/webhooks/api/{api_token}", content=payload, headers=headers)
        assert r.status_code in (401, 403), r.text
        w.assert_no_leak(r.text, "webhook")
    for channel in ("twilio", "whatsapp", "telegram", "messenger", "voice", "nonexistent"):
        for method in ("GET", "POST"):
            r = await client.request(method, f"/webhooks/{channel}/{api_token}", content=payload)
            assert r.status_code in (401, 403, 404, 405), (channel, method, r.status_code, r.text)
            w.assert_no_leak(r.text, f"{method} /webhooks/{channel}")
    # The widget with A's public token: no visitor token, B's visitor token, a forged one.
    tok = w.a_webchat_token
    r = await client.post("/widget/api/session", json={"token": tok, "visitor": w.b_visitor})
    assert r.status_code == 200 and r.json()["messages"] == [] and r.json()["contact"] is None
    w.assert_no_leak(r.text, "widget session", public=("Shop alpha",))  # A's widget shows A's name
    for visitor in (w.b_visitor, "forged-visitor-token.abc"):
        calls = [
            (
                "/widget/api/messages",
                {"token": tok, "visitor": visitor, "client_id": "forged-01", "text": "x"},
            ),
            ("/widget/api/contact", {"token": tok, "visitor": visitor, "email": "x@evil.test"}),
            ("/widget/api/typing", {"token": tok, "visitor": visitor}),
            ("/widget/api/read", {"token": tok, "visitor": visitor, "up_to": 10**6}),
            (
                "/widget/api/identify",
                {"token": tok, "visitor": visitor, "user_id": "u1", "user_hash": "0" * 64},
            ),
        ]
        for url, body in calls:
            r = await client.post(url, json=body)
            assert r.status_code in (401, 403), (url, r.status_code, r.text)
            w.assert_no_leak(r.text, url)
        r = await client.get(
            "/widget/api/events", params={"token": tok}, headers={"x-caredesk-visitor": visitor}
        )
        assert r.status_code == 401, r.text
        r = await client.get(
            f"/widget/api/files/{w.ids['message_id']}/0",
            params={"token": tok},
            headers={"x-caredesk-visitor": visitor},
        )
        assert r.status_code in (401, 404), r.text
        w.assert_no_leak(r.text, "widget file")
    # A file link that is not one the server signed (another secret, a changed byte, garbage) finds nothing.
    from caredesk.conversations.attachments import link_token

    good = link_token(services.settings.secret_key, w.a.id, 1)
    for bad in (
        link_token("another-install-secret", w.a.id, 1),
        ("B" if good[0] != "B" else "C") + good[1:],
        "not-a-token",
    ):
        r = await client.get(f"/files/{bad}")
        assert r.status_code == 404, (bad, r.status_code, r.text)
        w.assert_no_leak(r.text, "file link")
    for name in ("frame.js", "../../pyproject.toml", "%2e%2e%2fsettings.py"):
        r = await client.get(f"/widget/assets/{name}")
        assert r.status_code in (200, 404), r.text
        w.assert_no_leak(r.text, "widget asset")
    assert await _rows(services, w.a.id) == before


@pytest.mark.slow
async def test_realtime_streams_carry_only_the_callers_account(
    settings: Settings, client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """Over a real server: B's agent WebSocket, B's SSE stream and a widget socket opened with A's inbox
    token but B's visitor token never carry A's events, from the start of the stream or live."""
    w = world
    server = start_server(server_env(settings))
    try:
        base = server.url
        ws_base = base.replace("http", "ws")
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:

            async def post(acc: Any, text: str, msg_id: str) -> None:
                r = await http.post(
                    f"/api/v1/inboxes/{acc.inbox_ids['api']}/inbound",
                    headers=acc.auth,
                    json={"id": msg_id, "from": {"kind": "email", "value": "live@example.com"}, "text": text},
                )
                assert r.status_code in (200, 201), r.text

            # A widget socket with A's inbox token and B's visitor token is refused.
            with pytest.raises((ConnectionClosed, InvalidStatus)):
                async with websockets.connect(
                    f"{ws_base}/widget/ws?token={w.a_webchat_token}&visitor={w.b_visitor}"
                ) as ws:
                    await asyncio.wait_for(ws.recv(), 5)

            async with websockets.connect(
                f"{ws_base}/api/v1/realtime?access_token={w.b.token}&last_event_id=0"
            ) as ws:
                await post(w.a, SECRET_TEXT + " live", "live-a")
                await post(w.b, "bravo-marker", "live-b")
                frames: list[str] = []

                async def until_marker() -> None:
                    while "bravo-marker" not in (frames[-1] if frames else ""):
                        frames.append(str(await ws.recv()))

                await asyncio.wait_for(until_marker(), 15)
            text = "\n".join(frames)
            w.assert_no_leak(text, "B's WebSocket")
            assert "live-a" not in text

            sse_lines: list[str] = []
            async with http.stream("GET", "/api/v1/events?last_event_id=0", headers=w.b.auth) as resp:
                assert resp.status_code == 200

                async def read_sse() -> None:
                    async for line in resp.aiter_lines():
                        sse_lines.append(line)
                        if "bravo-marker" in line:
                            return

                await asyncio.wait_for(read_sse(), 15)
            w.assert_no_leak("\n".join(sse_lines), "B's SSE stream")
    finally:
        server.stop()


def test_exception_lists_name_existing_routes(app: Any) -> None:
    """Stale entries hide nothing but mislead: every listed route must still exist."""
    paths = {r.path for r in all_routes(app)}
    for path in [*PUBLIC_BY_DESIGN, *MOUNTS_BY_DESIGN, *WEBSOCKETS_TESTED, *(p for _m, p in EXPECT)]:
        assert path in paths, f"{path} is listed in test_tenant_isolation but no longer served"
    info: list[RouteInfo] = [r for r in all_routes(app) if r.kind == "websocket"]
    assert {r.path for r in info} <= set(WEBSOCKETS_TESTED)
