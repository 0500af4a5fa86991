"""A reply a channel refused is shown as failed with the reason; Retry (in the timeline, through the API,
or on the admin page's dead letters) really sends it again, and the status follows what happened."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import select

from caredesk.conversations.actions import mark_delivery
from caredesk.conversations.delivery import Outbound, Receipt
from caredesk.conversations.models import Message
from caredesk.platform import jobs
from caredesk.platform.jobs import PermanentFailure
from caredesk.services import Services
from tests.conftest import AccountFixture, login, post_inbound


@dataclass
class Provider:
    """A channel's sender that refuses while `refuse` is set and records every call's idempotency key."""

    refuse: bool = True
    calls: list[tuple[str, str]] = field(default_factory=list)

    async def send(self, msg: Outbound, idempotency_key: str) -> Receipt:
        self.calls.append((msg.content, idempotency_key))
        if self.refuse:
            raise PermanentFailure("provider refused the message (400): number is blocked")
        return Receipt(channel_message_id=f"p:{idempotency_key}")


async def _failed_reply(
    client: httpx.AsyncClient, account: AccountFixture, services: Services, provider: Provider
) -> tuple[int, int]:
    services.senders["api"] = provider
    conv = (await post_inbound(client, account, "where is it?", sender="r@example.com")).json()[
        "conversation_id"
    ]
    r = await client.post(
        f"/api/v1/conversations/{conv}/messages", json={"content": "On its way!"}, headers=account.auth
    )
    assert r.status_code == 201, r.text
    await services.worker.run_until_idle()  # type: ignore[union-attr]
    return int(conv), int(r.json()["id"])


async def _message(
    client: httpx.AsyncClient, account: AccountFixture, conv: int, msg_id: int
) -> dict[str, Any]:
    items = (await client.get(f"/api/v1/conversations/{conv}/messages", headers=account.auth)).json()["items"]
    return next(m for m in items if m["id"] == msg_id)


async def test_failed_reply_is_shown_with_its_reason_and_retry_really_resends(
    client: httpx.AsyncClient, account: AccountFixture, services: Services
) -> None:
    provider = Provider()
    conv, msg_id = await _failed_reply(client, account, services, provider)
    m = await _message(client, account, conv, msg_id)
    assert m["status"] == "failed" and "number is blocked" in m["error"]
    csrf = await login(client, account.admin_email, account.password)
    page = await client.get(f"/ui/c/{conv}")
    entry = page.text[page.text.index(f'id="m-{msg_id}"') :].split("</li>", 1)[0]
    assert "Not delivered: provider refused the message (400): number is blocked" in entry
    assert f'hx-post="/ui/c/{conv}/messages/{msg_id}/retry"' in entry
    # Retry: the entry comes back queued (no Retry button), the provider is called again and accepts.
    provider.refuse = False
    r = await client.post(f"/ui/c/{conv}/messages/{msg_id}/retry", headers={"x-csrf-token": csrf})
    assert r.status_code == 200, r.text
    assert 'data-testid="delivery-status">queued<' in r.text and "retry-delivery" not in r.text
    await services.worker.run_until_idle()  # type: ignore[union-attr]
    m = await _message(client, account, conv, msg_id)
    assert m["status"] == "sent" and m["error"] is None
    assert [c[0] for c in provider.calls] == ["On its way!", "On its way!"]
    assert provider.calls[0][1] == provider.calls[1][1]  # the same delivery, the same idempotency key
    one = await client.get(f"/ui/c/{conv}/messages/{msg_id}")
    assert 'data-testid="delivery-status">sent<' in one.text and "Not delivered" not in one.text
    # A message that has not failed is not sent twice.
    again = await client.post(f"/ui/c/{conv}/messages/{msg_id}/retry", headers={"x-csrf-token": csrf})
    assert again.status_code == 409
    api = await client.post(f"/api/v1/conversations/{conv}/messages/{msg_id}/retry", headers=account.auth)
    assert api.status_code == 409 and api.headers["content-type"].startswith("application/problem+json")
    assert len(provider.calls) == 2


async def test_api_retry_and_a_failure_reported_after_the_send(
    client: httpx.AsyncClient, account: AccountFixture, services: Services
) -> None:
    """The provider took the message, then reported it undelivered (the job had finished): Retry sends
    a new delivery with a new idempotency key."""
    provider = Provider(refuse=False)
    conv, msg_id = await _failed_reply(client, account, services, provider)
    assert (await _message(client, account, conv, msg_id))["status"] == "sent"
    await services.db.write(mark_delivery, account.id, msg_id, "failed", error="undelivered: handset off")
    r = await client.post(f"/api/v1/conversations/{conv}/messages/{msg_id}/retry", headers=account.auth)
    assert r.status_code == 200 and r.json()["status"] == "queued", r.text
    await services.worker.run_until_idle()  # type: ignore[union-attr]
    assert (await _message(client, account, conv, msg_id))["status"] == "sent"
    assert len(provider.calls) == 2 and provider.calls[0][1] != provider.calls[1][1]
    # Other accounts' ids are not found.
    other = await client.post(
        f"/api/v1/conversations/{conv}/messages/{msg_id + 1000}/retry", headers=account.auth
    )
    assert other.status_code == 404


async def test_dead_letters_page_lists_and_retries(
    client: httpx.AsyncClient, account: AccountFixture, services: Services
) -> None:
    provider = Provider()
    conv, msg_id = await _failed_reply(client, account, services, provider)
    csrf = await login(client, account.admin_email, account.password)
    page = await client.get("/admin/dead-letters")
    assert page.status_code == 200
    row = re.search(r'<tr data-job-id="(\d+)">(.*?)</tr>', page.text, re.S)
    assert row, page.text
    job_id = int(row.group(1))
    assert "message.deliver" in row.group(2) and f'href="/c/{conv}"' in row.group(2)
    assert "number is blocked" in row.group(2) and "On its way!" in row.group(2)
    assert 'href="/admin/dead-letters" aria-current="page"' in page.text
    provider.refuse = False
    r = await client.post(f"/admin/jobs/{job_id}/retry", data={"csrf_token": csrf})
    assert r.status_code == 303 and r.headers["location"] == "/admin/dead-letters"
    assert (await _message(client, account, conv, msg_id))["status"] == "queued"
    await services.worker.run_until_idle()  # type: ignore[union-attr]
    assert (await _message(client, account, conv, msg_id))["status"] == "sent"
    assert "no-dead-letters" in (await client.get("/admin/dead-letters")).text
    missing = await client.post(f"/admin/jobs/{job_id}/retry", data={"csrf_token": csrf})
    assert missing.status_code == 404 and "no dead job with this id" in missing.text
    # The API's retry resets a failed reply the same way.
    provider.refuse = True
    r2 = await client.post(
        f"/api/v1/conversations/{conv}/messages", json={"content": "second"}, headers=account.auth
    )
    await services.worker.run_until_idle()  # type: ignore[union-attr]
    second = r2.json()["id"]
    dead = await services.db.read(
        lambda s: s.execute(
            select(jobs.Job.id).where(
                jobs.Job.idempotency_key == f"deliver:{second}", jobs.Job.status == "dead"
            )
        ).scalar_one()
    )
    provider.refuse = False
    assert (await client.post(f"/api/v1/jobs/{dead}/retry", headers=account.auth)).status_code == 200
    await services.worker.run_until_idle()  # type: ignore[union-attr]
    assert (await _message(client, account, conv, second))["status"] == "sent"
    row = await services.db.read(lambda s: s.get(Message, second))
    assert row is not None and row.status == "sent" and row.error is None
