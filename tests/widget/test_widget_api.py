"""The widget's visitor API: identity, idempotent sends, what a visitor may see, identify, uploads."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select

from caredesk.accounts.actions import update_inbox
from caredesk.conversations.actions import send_reply
from caredesk.conversations.models import Message
from caredesk.platform.security import hmac_sha256_hex
from caredesk.services import Services
from tests.conftest import AccountFixture


async def _token(services: Services, acc: AccountFixture) -> str:
    from caredesk.accounts.models import Inbox

    return str(await services.db.read(lambda s: s.get(Inbox, acc.inbox_ids["webchat"]).public_token))


async def _session(client: httpx.AsyncClient, token: str, visitor: str | None = None) -> dict[str, Any]:
    r = await client.post("/widget/api/session", json={"token": token, "visitor": visitor})
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _send(
    client: httpx.AsyncClient, token: str, visitor: str, text: str, client_id: str
) -> httpx.Response:
    return await client.post(
        "/widget/api/messages",
        json={"token": token, "visitor": visitor, "client_id": client_id, "text": text},
    )


async def test_visitor_keeps_history_and_a_resend_is_stored_once(
    client: httpx.AsyncClient, services: Services, account: AccountFixture
) -> None:
    token = await _token(services, account)
    first = await _session(client, token)
    visitor = first["visitor"]
    assert first["messages"] == [] and first["contact"] is None
    for _ in range(3):  # the network dropped the answer twice; the widget resent with the same client id
        r = await _send(client, token, visitor, "hello <b>there</b>", "client-aaaa-0001")
        assert r.status_code == 201, r.text
    count = await services.db.read(lambda s: s.execute(select(func.count(Message.id))).scalar())
    assert count == 1
    again = await _session(client, token, visitor)
    assert again["visitor"] == visitor
    assert [m["content"] for m in again["messages"]] == ["hello <b>there</b>"]
    assert again["messages"][0]["client_id"] == "client-aaaa-0001"


async def test_a_forged_visitor_token_gets_a_fresh_identity_not_someone_elses(
    client: httpx.AsyncClient, services: Services, account: AccountFixture
) -> None:
    token = await _token(services, account)
    v = (await _session(client, token))["visitor"]
    await _send(client, token, v, "private order details", "client-bbbb-0001")
    forged = v[:-3] + ("AAA" if not v.endswith("AAA") else "BBB")
    s = await _session(client, token, forged)
    assert s["visitor"] != v and s["messages"] == []
    r = await _send(client, token, forged, "hi", "client-bbbb-0002")
    assert r.status_code == 401


async def test_visitor_never_sees_notes_or_internal_activity(
    client: httpx.AsyncClient, services: Services, account: AccountFixture
) -> None:
    token = await _token(services, account)
    v = (await _session(client, token))["visitor"]
    conv_id = (await _send(client, token, v, "help", "client-cccc-0001")).json()["conversation_id"]
    await services.db.write(send_reply, account.actor, conv_id, "internal: customer is grumpy", private=True)
    await services.db.write(send_reply, account.actor, conv_id, "Happy to help!")
    s = await _session(client, token, v)
    assert [m["content"] for m in s["messages"]] == ["help", "Happy to help!"]
    assert all("meta" not in m and "sender_id" not in m for m in s["messages"])
    polled = await client.get(
        "/widget/api/events", params={"token": token, "after": 0}, headers={"x-caredesk-visitor": v}
    )
    contents = [e["data"].get("content") for e in polled.json()["events"] if e["type"] == "message.created"]
    assert contents == ["help", "Happy to help!"]


async def test_identify_requires_the_sites_hmac(
    client: httpx.AsyncClient, services: Services, account: AccountFixture
) -> None:
    token = await _token(services, account)
    await services.db.write(
        update_inbox,
        account.actor,
        account.inbox_ids["webchat"],
        {"config": {"identity_secret": "s3cret-site-key"}},
    )
    # Customer 42 chats from their laptop.
    laptop = (await _session(client, token))["visitor"]
    r = await client.post(
        "/widget/api/identify",
        json={
            "token": token,
            "visitor": laptop,
            "user_id": "42",
            "user_hash": hmac_sha256_hex("s3cret-site-key", "42"),
        },
    )
    assert r.status_code == 200, r.text
    await _send(client, token, laptop, "my order TH-1", "client-dddd-0001")
    # Someone else claims to be user 42 without the secret: refused, sees nothing.
    thief = (await _session(client, token))["visitor"]
    bad = await client.post(
        "/widget/api/identify",
        json={"token": token, "visitor": thief, "user_id": "42", "user_hash": "0" * 64},
    )
    assert bad.status_code == 401
    assert (await _session(client, token, thief))["messages"] == []
    # The real customer on their phone, vouched for by the site, gets their history.
    phone = (await _session(client, token))["visitor"]
    ok = await client.post(
        "/widget/api/identify",
        json={
            "token": token,
            "visitor": phone,
            "user_id": "42",
            "user_hash": hmac_sha256_hex("s3cret-site-key", "42"),
        },
    )
    assert [m["content"] for m in ok.json()["messages"]] == ["my order TH-1"]


async def test_uploads_check_type_and_size_and_files_are_private(
    client: httpx.AsyncClient, services: Services, account: AccountFixture
) -> None:
    token = await _token(services, account)
    v = (await _session(client, token))["visitor"]
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 100
    bad = await client.post(
        "/widget/api/uploads",
        data={"token": token, "visitor": v},
        files={"file": ("x.html", b"<script>alert(1)</script>", "text/html")},
    )
    assert bad.status_code == 422
    fake = await client.post(
        "/widget/api/uploads",
        data={"token": token, "visitor": v},
        files={"file": ("x.png", b"<svg onload=alert(1)>", "image/png")},
    )
    assert fake.status_code == 422
    up = await client.post(
        "/widget/api/uploads",
        data={"token": token, "visitor": v},
        files={"file": ("<img src=x onerror=alert(1)>.png", png, "image/png")},
    )
    assert up.status_code == 201, up.text
    r = await client.post(
        "/widget/api/messages",
        json={
            "token": token,
            "visitor": v,
            "client_id": "client-eeee-0001",
            "text": "",
            "uploads": [up.json()["upload"]],
        },
    )
    assert r.status_code == 201, r.text
    mid = r.json()["id"]
    got = await client.get(
        f"/widget/api/files/{mid}/0", params={"token": token}, headers={"x-caredesk-visitor": v}
    )
    assert got.status_code == 200 and got.content == png
    assert "sandbox" in got.headers["content-security-policy"]
    other = (await _session(client, token))["visitor"]
    denied = await client.get(
        f"/widget/api/files/{mid}/0", params={"token": token}, headers={"x-caredesk-visitor": other}
    )
    assert denied.status_code == 404
    # Another visitor cannot attach this visitor's upload either.
    stolen = await client.post(
        "/widget/api/messages",
        json={
            "token": token,
            "visitor": other,
            "client_id": "client-eeee-0002",
            "text": "x",
            "uploads": [up.json()["upload"]],
        },
    )
    assert stolen.status_code == 422


async def test_bad_input_is_a_4xx(
    client: httpx.AsyncClient, services: Services, account: AccountFixture
) -> None:
    token = await _token(services, account)
    assert (await client.post("/widget/api/session", json={"token": "nope-nope-nope"})).status_code == 404
    assert (await client.post("/widget/api/session", json={"token": 5})).status_code == 422
    v = (await _session(client, token))["visitor"]
    assert (await _send(client, token, v, "  ", "client-ffff-0001")).status_code == 422
    assert (await _send(client, token, v, "x", "bad id!")).status_code == 422
    api_inbox = account.inbox_ids["api"]
    from caredesk.accounts.models import Inbox

    api_token = await services.db.read(lambda s: s.get(Inbox, api_inbox).public_token)
    assert (await client.post("/widget/api/session", json={"token": api_token})).status_code == 404


async def test_frame_may_be_embedded_anywhere_but_runs_only_our_scripts(
    client: httpx.AsyncClient, services: Services, account: AccountFixture
) -> None:
    token = await _token(services, account)
    r = await client.get("/widget/frame", params={"token": token})
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert (
        "frame-ancestors *" in csp
        and "script-src 'self'" in csp
        and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    )
