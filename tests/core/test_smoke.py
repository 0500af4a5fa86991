from __future__ import annotations

import httpx

from tests.conftest import AccountFixture, login, post_inbound


async def test_inbound_reply_and_dedupe(client: httpx.AsyncClient, account: AccountFixture) -> None:
    r1 = await post_inbound(client, account, "Where is my order TH-12345?", msg_id="p-1")
    assert r1.status_code == 201, r1.text
    r2 = await post_inbound(client, account, "Where is my order TH-12345?", msg_id="p-1")
    assert r2.status_code == 200
    assert r2.json()["duplicate"] is True
    assert r2.json()["message_id"] == r1.json()["message_id"]
    conv_id = r1.json()["conversation_id"]
    csrf = await login(client, account.admin_email, account.password)
    r = await client.post(
        f"/api/v1/conversations/{conv_id}/messages",
        json={"content": "It ships today."},
        headers={"x-csrf-token": csrf},
    )
    assert r.status_code == 201, r.text
    msgs = (await client.get(f"/api/v1/conversations/{conv_id}/messages")).json()["items"]
    assert [m["type"] for m in msgs] == ["incoming", "outgoing"]
