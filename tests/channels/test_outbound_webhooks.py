"""Outbound webhooks: an account registers endpoints; its domain events reach them through the outbox
(the events table, read after a per-endpoint cursor), Standard-Webhooks signed, retried with backoff and
Retry-After, dead-lettered when they keep failing, idempotent by event id (webhook-id), and never another
account's. The receivers are real HTTP servers on loopback."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from caredesk.channels import webhooks as wh
from caredesk.channels.api import standard_webhooks
from caredesk.channels.models import WebhookEndpoint
from caredesk.platform import jobs
from caredesk.platform.events import record_event
from caredesk.platform.models import utcnow
from caredesk.services import Services
from tests.channels.fake_provider import FakeProvider, Recorded
from tests.channels.test_twilio import _run_jobs_now
from tests.conftest import AccountFixture, login, post_inbound

pytestmark = pytest.mark.postgres


def _verified(rec: Recorded, secret: str) -> dict[str, Any]:
    """The receiver's side: check the signature on the raw body as any Standard Webhooks library does."""
    hdrs = {k: rec.headers[k] for k in ("webhook-id", "webhook-timestamp", "webhook-signature")}
    assert standard_webhooks.verify(secret, hdrs, rec.body) == rec.headers["webhook-id"]
    body: dict[str, Any] = rec.json()
    return body


async def _settle(services: Services) -> None:
    """Let the after-commit dispatch finish, then run the due jobs (deliveries included)."""
    await services.extras["webhooks.dispatcher"].idle()
    await _run_jobs_now(services)


async def _create(
    client: httpx.AsyncClient, acc: AccountFixture, url: str, types: list[str]
) -> dict[str, Any]:
    r = await client.post("/api/v1/webhooks", headers=acc.auth, json={"url": url, "event_types": types})
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


async def test_endpoints_are_managed_by_admins_and_validated(
    client: httpx.AsyncClient, services: Services, account: AccountFixture
) -> None:
    h = account.auth
    created = await _create(
        client, account, "https://crm.example/hooks", ["message.created", "conversation.*"]
    )
    assert created["secret"].startswith("whsec_") and created["active"] is True
    wid = created["id"]
    listed = (await client.get("/api/v1/webhooks", headers=h)).json()["items"]
    assert [w["id"] for w in listed] == [wid] and "secret" not in listed[0]
    r = await client.patch(f"/api/v1/webhooks/{wid}", headers=h, json={"event_types": ["*"], "active": False})
    assert r.status_code == 200 and r.json()["event_types"] == ["*"] and "secret" not in r.json()
    r = await client.patch(f"/api/v1/webhooks/{wid}", headers=h, json={"rotate_secret": True})
    assert r.json()["secret"] != created["secret"]
    for bad in (
        {"url": "ftp://x.example/a", "event_types": ["message.created"]},
        {"url": "https://x.example/a", "event_types": ["message.exploded"]},
        {"url": "https://x.example/a", "event_types": []},
        {"url": "https://x.example/a", "event_types": ["message.created"], "secret": "not-base64-$$$$$$$$"},
        {"url": "https://x.example/a", "event_types": ["message.created"], "extra": 1},
    ):
        r = await client.post("/api/v1/webhooks", headers=h, json=bad)
        assert r.status_code == 422, (bad, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    # An agent (not an admin) can neither list nor create.
    await client.post(
        "/api/v1/agents",
        headers=h,
        json={"email": "plain@alpha.test", "name": "Plain", "role": "agent", "password": "long enough pw"},
    )
    csrf = await login(client, "plain@alpha.test", "long enough pw")
    assert (await client.get("/api/v1/webhooks")).status_code == 403
    r = await client.post(
        "/api/v1/webhooks",
        headers={"x-csrf-token": csrf},
        json={"url": "https://x.example/a", "event_types": ["message.created"]},
    )
    assert r.status_code == 403
    client.cookies.clear()
    assert (await client.delete(f"/api/v1/webhooks/{wid}", headers=h)).status_code == 204
    assert (await client.get(f"/api/v1/webhooks/{wid}", headers=h)).status_code == 404


async def test_events_are_delivered_signed_with_their_event_id(
    client: httpx.AsyncClient, services: Services, account: AccountFixture
) -> None:
    receiver = FakeProvider().start()
    try:
        # Events from before the endpoint existed are not sent.
        r = await post_inbound(client, account, "before the webhook", msg_id="old-1")
        conv_id = r.json()["conversation_id"]
        ep = await _create(
            client,
            account,
            receiver.url + "/hooks/caredesk",
            ["message.created", "conversation.created", "conversation.resolved"],
        )
        r = await post_inbound(client, account, "Where is my parcel?", msg_id="n-1", sender="new@example.com")
        new_conv = r.json()["conversation_id"]
        await _settle(services)
        assert (
            await client.post(f"/api/v1/conversations/{new_conv}/resolve", headers=account.auth)
        ).is_success
        await _settle(services)
        # Deliveries run concurrently: they arrive in any order, each with its event's id and seq.
        for rec in receiver.requests:
            body = _verified(rec, ep["secret"])
            assert rec.headers["webhook-id"] == wh.message_id(account.id, body["event_id"])
        got = sorted((_verified(rec, ep["secret"]) for rec in receiver.requests), key=lambda g: g["event_id"])
        assert all(rec.path == "/hooks/caredesk" for rec in receiver.requests)
        assert all(rec.headers["content-type"] == "application/json" for rec in receiver.requests)
        types = [g["type"] for g in got]
        assert types[:2] == ["conversation.created", "message.created"]
        assert types.count("conversation.resolved") == 1 and "conversation.updated" not in types
        created = next(
            g
            for g in got
            if g["type"] == "message.created" and g["data"].get("content") == "Where is my parcel?"
        )
        assert created["conversation_id"] == new_conv and created["data"]["type"] == "incoming"
        assert not any(g["conversation_id"] == conv_id for g in got)  # the old conversation's events: before
        ids = [rec.headers["webhook-id"] for rec in receiver.requests]
        assert len(set(ids)) == len(ids)  # one delivery per event
    finally:
        receiver.stop()


async def test_retries_honour_retry_after_then_dead_letter(
    client: httpx.AsyncClient, services: Services, account: AccountFixture
) -> None:
    receiver = FakeProvider().start()
    try:
        ep = await _create(client, account, receiver.url + "/h", ["message.created"])
        receiver.fail_next = [(500, {}), (429, {"Retry-After": "120"})]
        await post_inbound(client, account, "retry me", msg_id="r-1")
        await services.extras["webhooks.dispatcher"].idle()
        assert services.worker is not None

        def deliveries(s: Any) -> list[jobs.Job]:
            return list(s.execute(select(jobs.Job).where(jobs.Job.kind == "webhook.deliver")).scalars())

        await services.worker.run_until_idle()
        [job] = await services.db.read(deliveries)
        assert job.status == jobs.QUEUED and job.attempts == 1 and "500" in (job.last_error or "")
        await _run_jobs_now(services)
        [job] = await services.db.read(deliveries)
        assert job.status == jobs.QUEUED and job.attempts == 2 and "429" in (job.last_error or "")
        assert job.run_at >= utcnow() + dt.timedelta(seconds=100)  # Retry-After: 120 honoured
        await services.worker.run_until_idle()
        assert len(receiver.requests) == 2  # not due yet: nothing sent
        await _run_jobs_now(services)
        [job] = await services.db.read(deliveries)
        assert job.status == jobs.DONE and job.attempts == 3
        assert len(receiver.requests) == 3
        assert len({rec.headers["webhook-id"] for rec in receiver.requests}) == 1  # one event, one id
        for rec in receiver.requests:
            assert _verified(rec, ep["secret"])["data"]["content"] == "retry me"

        # A receiver that keeps failing: the delivery ends as a visible dead letter after MAX_ATTEMPTS.
        receiver.requests.clear()
        receiver.reply = lambda rec: (503, {"down": True})
        await post_inbound(client, account, "never arrives", msg_id="r-2")
        await services.extras["webhooks.dispatcher"].idle()
        for _ in range(wh.MAX_ATTEMPTS + 2):
            await _run_jobs_now(services)
        assert len(receiver.requests) == wh.MAX_ATTEMPTS
        dead = (await client.get("/api/v1/jobs/dead", headers=account.auth)).json()["items"]
        [d] = [x for x in dead if x["kind"] == "webhook.deliver"]
        assert d["attempts"] == wh.MAX_ATTEMPTS and "503" in d["last_error"]
        # The one-click retry really reaches the receiver again.
        receiver.reply = None
        assert (await client.post(f"/api/v1/jobs/{d['id']}/retry", headers=account.auth)).status_code == 200
        await _run_jobs_now(services)
        assert receiver.requests[-1].json()["data"]["content"] == "never arrives"
        assert len({rec.headers["webhook-id"] for rec in receiver.requests}) == 1
    finally:
        receiver.stop()


async def test_no_event_crosses_accounts(
    client: httpx.AsyncClient, services: Services, account: AccountFixture, other_account: AccountFixture
) -> None:
    ra, rb = FakeProvider().start(), FakeProvider().start()
    try:
        ea = await _create(client, account, ra.url + "/a", ["*"])
        eb = await _create(client, other_account, rb.url + "/b", ["*"])
        for i in range(3):
            await post_inbound(client, account, f"alpha-secret-{i}", msg_id=f"a-{i}")
            await post_inbound(client, other_account, f"bravo-{i}", msg_id=f"b-{i}")
        await _settle(services)
        a_bodies = [_verified(rec, ea["secret"]) for rec in ra.requests]
        b_bodies = [_verified(rec, eb["secret"]) for rec in rb.requests]
        assert a_bodies and b_bodies
        assert all(rec.headers["webhook-id"].startswith(f"evt_{account.id}_") for rec in ra.requests)
        assert all(rec.headers["webhook-id"].startswith(f"evt_{other_account.id}_") for rec in rb.requests)
        assert "alpha-secret" not in b"".join(rec.body for rec in rb.requests).decode()
        assert "bravo-" not in b"".join(rec.body for rec in ra.requests).decode()
        # B cannot see, change or delete A's endpoint: it does not exist for B.
        for method, kw in (("GET", {}), ("PATCH", {"json": {"active": False}}), ("DELETE", {})):
            r = await client.request(method, f"/api/v1/webhooks/{ea['id']}", headers=other_account.auth, **kw)
            assert r.status_code == 404, (method, r.text)
        listed = (await client.get("/api/v1/webhooks", headers=other_account.auth)).json()["items"]
        assert [w["id"] for w in listed] == [eb["id"]]
    finally:
        ra.stop()
        rb.stop()


async def test_dispatch_never_skips_or_doubles_an_event(
    client: httpx.AsyncClient, services: Services, account: AccountFixture, monkeypatch: Any
) -> None:
    """Events committed where no dispatcher heard of them (another process, a crash right after commit)
    are picked up by the sweep; dispatching twice, even at once, enqueues each delivery once."""
    monkeypatch.setattr(wh, "DISPATCH_BATCH", 25)  # several batches
    N = 120
    receiver = FakeProvider().start()
    try:
        await _create(client, account, receiver.url + "/h", ["contact.updated"])
        await services.extras["webhooks.dispatcher"].idle()

        def burst(s: Any) -> None:
            for i in range(N):
                record_event(s, account.id, "contact.updated", {"id": 1, "n": i})
                if i % 7 == 0:
                    record_event(s, account.id, "conversation.read", {"id": 1})  # not subscribed

        services.db.write_sync(burst)  # no after-commit hooks: as if written by another process
        await asyncio.gather(
            wh.dispatch_all(services.db, account.id), wh.dispatch_all(services.db, account.id)
        )
        await services.db.write(
            lambda s: s.execute(
                update(jobs.Job).where(jobs.Job.kind == "webhooks.sweep").values(run_at=utcnow())
            )
        )
        await _run_jobs_now(services)
        ns = [rec.json()["data"]["n"] for rec in receiver.requests]
        assert sorted(ns) == list(range(N))
        cursor = await services.db.read(lambda s: s.execute(select(WebhookEndpoint.cursor)).scalar_one())
        last = await services.db.read(wh._last_seq, account.id)
        assert cursor == last
    finally:
        receiver.stop()


def test_retry_after_takes_seconds_or_an_http_date() -> None:
    from caredesk.channels.base import retry_after_seconds

    now = 1_700_000_000.0  # Tue, 14 Nov 2023 22:13:20 GMT
    assert retry_after_seconds("120", now) == 120.0
    assert retry_after_seconds("Tue, 14 Nov 2023 22:15:20 GMT", now) == 120.0
    assert retry_after_seconds("Tue, 14 Nov 2023 22:00:00 GMT", now) == 0.0  # already past
    for bad in (None, "", "soon", "Tue, 14 Nov 2023 22:15:20", "-", "Mon, 99 Foo 2023 99:99:99 GMT"):
        assert retry_after_seconds(bad, now) is None, bad
