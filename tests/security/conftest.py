"""Two tenants: A (`account`) owns one of every object, with secret strings that must never reach B."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from caredesk.conversations.models import Attachment
from caredesk.platform.jobs import Job
from caredesk.services import Services
from tests.conftest import AccountFixture, login

# Strings only A's data contains: if one shows up in an answer to B, A's data leaked.
SECRET_CONTACT = "Zelda Alphasecret"
SECRET_TEXT = "alpha-secret-message-7731"
SECRET_NOTE = "alpha-private-note-5523"
SECRET_AGENT = "Agent Alphahidden"
SECRET_TEAM = "Team Alphahidden"
SECRET_INBOX = "Inbox Alphahidden"
SECRET_JOB = "alpha-dead-job-payload-9911"
SECRET_FILE = b"alpha-secret-file-contents-4410"
SECRET_WEBHOOK_URL = "https://alpha-hidden-crm.example/hooks/8812"
SECRET_PHONE = "+4915199887766"


@dataclass
class World:
    a: AccountFixture
    b: AccountFixture
    ids: dict[str, int]
    a_token_raw: str  # a second API token of A, created through the API
    a_webchat_token: str
    b_webchat_token: str
    b_visitor: str  # B's widget visitor token (signed for account B)
    b_ui: httpx.AsyncClient  # B logged in with a cookie session
    b_csrf: str
    secrets: list[str] = field(default_factory=list)

    def assert_no_leak(self, body: str, where: str, *, public: tuple[str, ...] = ()) -> None:
        """`public`: strings A shows to anyone by design (the business name in A's own chat widget)."""
        for s in self.secrets:
            if s in public:
                continue
            assert s not in body, f"{where}: answer to B contains A's data {s!r}: {body[:300]}"


async def _ok(r: httpx.Response) -> Any:
    assert r.status_code in (200, 201, 204), f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    return r.json() if r.content else None


@pytest.fixture
async def world(
    app: Any,
    client: httpx.AsyncClient,
    services: Services,
    account: AccountFixture,
    other_account: AccountFixture,
) -> AsyncIterator[World]:
    a, b = account, other_account
    h = a.auth
    ids: dict[str, int] = {}
    agent = await _ok(
        await client.post(
            "/api/v1/agents", headers=h, json={"email": "hidden@alpha.test", "name": SECRET_AGENT}
        )
    )
    ids["agent_id"] = agent["id"]
    team = await _ok(
        await client.post("/api/v1/teams", headers=h, json={"name": SECRET_TEAM, "agent_ids": [agent["id"]]})
    )
    ids["team_id"] = team["id"]
    inbox = await _ok(
        await client.post("/api/v1/inboxes", headers=h, json={"name": SECRET_INBOX, "channel": "api"})
    )
    ids["inbox_id"] = inbox["id"]
    r = await client.post(
        f"/api/v1/inboxes/{inbox['id']}/inbound",
        headers=h,
        json={
            "id": "a-1",
            "from": {"kind": "email", "value": "zelda@alpha.test", "name": SECRET_CONTACT},
            "text": SECRET_TEXT,
        },
    )
    first = await _ok(r)
    ids["conversation_id"] = first["conversation_id"]
    ids["contact_id"] = first["contact_id"]
    ids["message_id"] = first["message_id"]
    await _ok(
        await client.post(
            f"/api/v1/conversations/{first['conversation_id']}/notes",
            headers=h,
            json={"content": SECRET_NOTE},
        )
    )
    tok = await _ok(await client.post("/api/v1/api-tokens", headers=h, json={"name": "alpha integration"}))
    ids["token_id"] = tok["id"]
    c1 = await _ok(
        await client.post(
            "/api/v1/contacts", headers=h, json={"name": "Alpha Keeper", "email": "k@alpha.test"}
        )
    )
    c2 = await _ok(
        await client.post(
            "/api/v1/contacts", headers=h, json={"name": "Alpha Merged", "email": "m@alpha.test"}
        )
    )
    merge = await _ok(
        await client.post(
            "/api/v1/contacts/merge", headers=h, json={"survivor_id": c1["id"], "merged_id": c2["id"]}
        )
    )
    ids["merge_id"] = merge["merge_id"]
    # A's contact also wrote by WhatsApp from a number an agent typed in (unverified): a link suggestion.
    await _ok(
        await client.post(
            f"/api/v1/contacts/{first['contact_id']}/identities",
            headers=h,
            json={"kind": "phone", "value": SECRET_PHONE},
        )
    )
    twin = await _ok(
        await client.post(
            f"/api/v1/inboxes/{inbox['id']}/inbound",
            headers=h,
            json={
                "id": "a-2",
                "from": {"kind": "whatsapp", "value": SECRET_PHONE, "name": "Alpha Twin"},
                "text": "hi",
            },
        )
    )
    [suggestion] = (
        await _ok(await client.get(f"/api/v1/contacts/{twin['contact_id']}/link-suggestions", headers=h))
    )["items"]
    ids["suggestion_id"] = suggestion["id"]
    await _ok(
        await client.put("/api/v1/automation/secrets/shop_key", headers=h, json={"value": "alpha-shop-key"})
    )
    hook = await _ok(
        await client.post(
            "/api/v1/webhooks",
            headers=h,
            json={"url": SECRET_WEBHOOK_URL, "event_types": ["message.created"]},
        )
    )
    ids["webhook_id"] = hook["id"]

    def seed(s: Session) -> tuple[int, str, str]:
        key = services.storage.put(a.id, "alpha.txt", SECRET_FILE)
        s.add(
            Attachment(
                account_id=a.id,
                message_id=first["message_id"],
                filename="alpha.txt",
                content_type="text/plain",
                size=len(SECRET_FILE),
                storage_key=key,
            )
        )
        job = Job(
            account_id=a.id, kind="message.deliver", payload={"note": SECRET_JOB}, status="dead", attempts=8
        )
        s.add(job)
        s.flush()
        from caredesk.accounts.models import Inbox

        tokens = {
            i.account_id: i.public_token
            for i in s.query(Inbox).filter(Inbox.channel == "webchat", Inbox.account_id.in_([a.id, b.id]))
        }
        return job.id, tokens[a.id], tokens[b.id]

    ids["job_id"], a_web, b_web = await services.db.write(seed)
    session = await _ok(await client.post("/widget/api/session", json={"token": b_web}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as b_ui:
        csrf = await login(b_ui, b.admin_email, b.password)
        yield World(
            a=a,
            b=b,
            ids=ids,
            a_token_raw=tok["token"],
            a_webchat_token=a_web,
            b_webchat_token=b_web,
            b_visitor=session["visitor"],
            b_ui=b_ui,
            b_csrf=csrf,
            secrets=[
                SECRET_CONTACT,
                SECRET_TEXT,
                SECRET_NOTE,
                SECRET_AGENT,
                SECRET_TEAM,
                SECRET_INBOX,
                SECRET_JOB,
                SECRET_FILE.decode(),
                "zelda@alpha.test",
                "Alpha Keeper",
                "Alpha Merged",
                "Alpha Twin",
                SECRET_PHONE,
                "alpha-shop-key",
                SECRET_WEBHOOK_URL,
                hook["secret"],
                tok["token"],
                a.token,
                "Shop alpha",
                "admin@alpha.test",
            ],
        )
