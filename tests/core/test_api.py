"""The REST API v1 as an integration sees it: lifecycle of a conversation, contacts, audit, errors."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from caredesk.services import Services
from tests.conftest import AccountFixture, login, post_inbound

pytestmark = pytest.mark.postgres


async def _new_agent(
    client: httpx.AsyncClient, acc: AccountFixture, email: str, **extra: object
) -> dict[str, object]:
    r = await client.post(
        "/api/v1/agents",
        headers=acc.auth,
        json={"email": email, "name": email.split("@")[0], "password": "agent-password-1", **extra},
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_conversation_lifecycle(
    client: httpx.AsyncClient, account: AccountFixture, services: Services
) -> None:
    h = account.auth
    conv_id = (await post_inbound(client, account, "My parcel TH-100 never arrived", msg_id="x1")).json()[
        "conversation_id"
    ]
    jonas = await _new_agent(client, account, "jonas@alpha.test", skills=["orders"])
    team = (
        await client.post("/api/v1/teams", headers=h, json={"name": "Orders", "agent_ids": [jonas["id"]]})
    ).json()

    r = await client.post(
        f"/api/v1/conversations/{conv_id}/assign", headers=h, json={"agent_id": account.admin_id}
    )
    assert r.status_code == 200 and r.json()["assignee_id"] == account.admin_id

    # A transfer without a handoff note is refused: the next person must not have to ask again.
    r = await client.post(
        f"/api/v1/conversations/{conv_id}/transfer", headers=h, json={"note": " ", "agent_id": jonas["id"]}
    )
    assert r.status_code == 422
    r = await client.post(
        f"/api/v1/conversations/{conv_id}/transfer",
        headers=h,
        json={
            "note": "Parcel lost; customer already gave the order number",
            "agent_id": jonas["id"],
            "team_id": team["id"],
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["assignee_id"] == jonas["id"] and body["team_id"] == team["id"]
    assert body["case_brief"]["handoffs"][-1]["note"].startswith("Parcel lost")

    r = await client.post(
        f"/api/v1/conversations/{conv_id}/labels", headers=h, json={"add": ["lost-parcel", "vip"]}
    )
    assert r.json()["labels"] == ["lost-parcel", "vip"]
    until = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).isoformat()
    r = await client.post(f"/api/v1/conversations/{conv_id}/snooze", headers=h, json={"until": until})
    assert r.json()["status"] == "snoozed"
    r = await client.post(
        f"/api/v1/conversations/{conv_id}/snooze", headers=h, json={"until": "2001-01-01T00:00:00Z"}
    )
    assert r.status_code == 422
    assert (await client.post(f"/api/v1/conversations/{conv_id}/resolve", headers=h)).json()[
        "status"
    ] == "resolved"
    assert (await client.post(f"/api/v1/conversations/{conv_id}/resolve", headers=h)).status_code == 409
    assert (await client.post(f"/api/v1/conversations/{conv_id}/reopen", headers=h)).json()[
        "status"
    ] == "open"

    # Private note vs reply; activity entries are inline in the timeline.
    await client.post(
        f"/api/v1/conversations/{conv_id}/notes", headers=h, json={"content": "Called DHL, claim opened"}
    )
    await client.post(
        f"/api/v1/conversations/{conv_id}/messages",
        headers=h,
        json={"content": "We've opened a claim and are sending a new one today."},
    )
    msgs = (await client.get(f"/api/v1/conversations/{conv_id}/messages", headers=h)).json()["items"]
    types = [m["type"] for m in msgs]
    assert types[0] == "incoming" and "note" in types and "outgoing" in types and types.count("activity") >= 4
    transferred = [m for m in msgs if m["type"] == "activity" and m["meta"].get("action") == "transferred"]
    assert "Parcel lost" in transferred[0]["content"]

    # Filters and counts.
    mine = (await client.get("/api/v1/conversations", headers=h, params={"assignee_id": jonas["id"]})).json()[
        "items"
    ]
    assert [c["id"] for c in mine] == [conv_id]
    labelled = (
        await client.get("/api/v1/conversations", headers=h, params={"label": "lost-parcel", "status": "all"})
    ).json()["items"]
    assert [c["id"] for c in labelled] == [conv_id]
    counts = (await client.get("/api/v1/conversations/counts", headers=h)).json()
    assert counts["all"] == 1 and counts["unassigned"] == 0

    # The reply is delivered through the outbox (web chat/API inboxes: marked sent by the job).
    await services.worker.run_until_idle()  # type: ignore[union-attr]
    msgs = (await client.get(f"/api/v1/conversations/{conv_id}/messages", headers=h)).json()["items"]
    assert [m["status"] for m in msgs if m["type"] == "outgoing"] == ["sent"]

    audit = (
        await client.get(
            "/api/v1/audit", headers=h, params={"target_type": "conversation", "target_id": conv_id}
        )
    ).json()["items"]
    actions = {e["action"] for e in audit}
    assert {
        "conversation.assigned",
        "conversation.transferred",
        "conversation.resolved",
        "conversation.snoozed",
    } <= actions


async def test_contact_merge_is_recorded_and_reversible(
    client: httpx.AsyncClient, account: AccountFixture
) -> None:
    h = account.auth
    by_mail = (
        await post_inbound(client, account, "hi by mail", msg_id="m1", sender="ana@example.com")
    ).json()
    by_phone = (
        await post_inbound(client, account, "hi by sms", msg_id="m2", sender="+49 151 1234567", kind="phone")
    ).json()
    assert by_mail["contact_id"] != by_phone["contact_id"]
    r = await client.post(
        "/api/v1/contacts/merge",
        headers=h,
        json={"survivor_id": by_mail["contact_id"], "merged_id": by_phone["contact_id"]},
    )
    assert r.status_code == 201, r.text
    merge_id = r.json()["merge_id"]
    contact = (await client.get(f"/api/v1/contacts/{by_mail['contact_id']}", headers=h)).json()
    assert sorted(i["kind"] for i in contact["identities"]) == ["email", "phone"]
    assert {i["value"] for i in contact["identities"]} == {"ana@example.com", "+491511234567"}
    timeline = (await client.get(f"/api/v1/contacts/{by_mail['contact_id']}/timeline", headers=h)).json()[
        "items"
    ]
    assert [m["content"] for m in timeline] == ["hi by mail", "hi by sms"]
    # A new SMS from that number now lands on the merged contact: one person, one timeline.
    again = (
        await post_inbound(client, account, "again", msg_id="m3", sender="+491511234567", kind="phone")
    ).json()
    assert again["contact_id"] == by_mail["contact_id"]

    r = await client.post(f"/api/v1/contacts/merges/{merge_id}/undo", headers=h)
    assert r.status_code == 200
    restored = (await client.get(f"/api/v1/contacts/{by_phone['contact_id']}", headers=h)).json()
    assert [i["kind"] for i in restored["identities"]] == ["phone"] and restored["merged_into_id"] is None
    assert (await client.post(f"/api/v1/contacts/merges/{merge_id}/undo", headers=h)).status_code == 409
    audit = (await client.get("/api/v1/audit", headers=h, params={"target_type": "contact"})).json()["items"]
    assert {"contact.merged", "contact.unmerged"} <= {e["action"] for e in audit}


async def test_contact_search_and_identities(client: httpx.AsyncClient, account: AccountFixture) -> None:
    h = account.auth
    r = await client.post(
        "/api/v1/contacts",
        headers=h,
        json={"name": "Zoë Brown", "email": "Zoe@Example.com", "phone": "+44 20 7946 0958"},
    )
    assert r.status_code == 201, r.text
    c = r.json()
    assert c["email"] == "zoe@example.com" and c["phone"] == "+442079460958"
    assert [
        x["id"]
        for x in (await client.get("/api/v1/contacts", headers=h, params={"q": "zoe@"})).json()["items"]
    ] == [c["id"]]
    assert [
        x["id"]
        for x in (await client.get("/api/v1/contacts", headers=h, params={"q": "brown"})).json()["items"]
    ] == [c["id"]]
    r = await client.post(
        f"/api/v1/contacts/{c['id']}/identities", headers=h, json={"kind": "phone", "value": "not a number"}
    )
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    other = (await client.post("/api/v1/contacts", headers=h, json={"name": "Other"})).json()
    r = await client.post(
        f"/api/v1/contacts/{other['id']}/identities",
        headers=h,
        json={"kind": "email", "value": "zoe@example.com"},
    )
    assert r.status_code == 409 and r.json()["contact_id"] == c["id"]


async def test_auth_roles_and_csrf(client: httpx.AsyncClient, account: AccountFixture) -> None:
    assert (await client.get("/api/v1/conversations")).status_code == 401
    assert (
        await client.get("/api/v1/conversations", headers={"authorization": "Bearer cd_nope"})
    ).status_code == 401
    await _new_agent(client, account, "plain@alpha.test")
    csrf = await login(client, "plain@alpha.test", "agent-password-1")
    # An agent may not create agents (admin only), and cookie sessions need the CSRF header.
    r = await client.post(
        "/api/v1/agents", json={"email": "x@alpha.test", "name": "X"}, headers={"x-csrf-token": csrf}
    )
    assert r.status_code == 403
    r = await client.patch("/api/v1/agents/999999", json={"availability": "away"})
    assert r.status_code == 403 and "CSRF" in r.json()["detail"]
    me = (await client.get("/api/v1/me")).json()
    r = await client.patch(
        f"/api/v1/agents/{me['agent']['id']}", json={"availability": "away"}, headers={"x-csrf-token": csrf}
    )
    assert r.status_code == 200 and r.json()["availability"] == "away"
    assert (
        await client.post("/api/v1/auth/login", json={"email": "plain@alpha.test", "password": "wrong-wrong"})
    ).status_code == 401


async def test_errors_are_problem_json(client: httpx.AsyncClient, account: AccountFixture) -> None:
    h = account.auth
    for r in (
        await client.get("/api/v1/conversations/987654", headers=h),
        await client.post("/api/v1/agents", headers=h, json={"email": "bad", "name": "x"}),
        await client.post(
            "/api/v1/agents", headers=h, json={"email": "a@b.test", "name": "x", "capacity": False}
        ),
        await client.post(
            "/api/v1/teams",
            headers=h,
            content=b"{not json",
        ),
        await client.post(
            f"/api/v1/inboxes/{account.inbox_ids['api']}/inbound",
            headers=h,
            json={"from": {"value": "a@b.c"}, "text": "x", "extra": 1},
        ),
    ):
        assert r.status_code in (404, 422), r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["detail"]


async def test_body_limit_and_nothing_lost(client: httpx.AsyncClient, account: AccountFixture) -> None:
    big = b'{"from": {"value": "a@b.example"}, "text": "' + b"x" * 2_000_000 + b'"}'
    r = await client.post(
        f"/api/v1/inboxes/{account.inbox_ids['api']}/inbound",
        headers={**account.auth, "content-type": "application/json"},
        content=big,
    )
    assert r.status_code == 413
    ok = await post_inbound(client, account, "still here", msg_id="after-big")
    assert ok.status_code == 201


async def test_dead_letters_listed_and_retried(
    client: httpx.AsyncClient, account: AccountFixture, services: Services
) -> None:
    from caredesk.platform import jobs

    await services.db.write(lambda s: jobs.enqueue(s, "no.such.kind", {}, account_id=account.id, key="dl"))
    await services.worker.run_until_idle()  # type: ignore[union-attr]
    dead = (await client.get("/api/v1/jobs/dead", headers=account.auth)).json()["items"]
    assert len(dead) == 1 and "no handler" in dead[0]["last_error"]
    r = await client.post(f"/api/v1/jobs/{dead[0]['id']}/retry", headers=account.auth)
    assert r.status_code == 200 and r.json()["status"] == "queued"
    assert (await client.post("/api/v1/jobs/424242/retry", headers=account.auth)).status_code == 404
