"""Twilio SMS/WhatsApp: the documented signature example, verification, parsing, dedupe, statuses, REST sends."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl

import httpx
import pytest

from caredesk.channels.twilio.signature import twilio_signature
from caredesk.services import Services
from tests.channels.fake_provider import FakeProvider
from tests.channels.helpers import PUBLIC, counts, fixture, make_inbox, messages
from tests.conftest import AccountFixture

TOKEN = "f3a9c2d1e8b7a6c5d4e3f2a1b0c9d8e7"
FORM = {"content-type": "application/x-www-form-urlencoded"}


def test_signature_reproduces_twilios_documented_example() -> None:
    # Twilio's webhook-security docs and twilio-node's test suite: this URL, these parameters and
    # auth token 12345 give exactly these signatures (the two differ only in the caller's number).
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    for caller, expected in (
        ("+14158675310", "GvWf1cFY/Q7PnoempGyD5oXAezc="),
        ("+14158675309", "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
    ):
        params = {
            "CallSid": "CA1234567890ABCDE",
            "Caller": caller,
            "Digits": "1234",
            "From": caller,
            "To": "+18005551212",
        }
        assert twilio_signature("12345", url, params.items()) == expected


def signed(path: str, body: bytes, token: str = TOKEN) -> dict[str, str]:
    return {
        **FORM,
        "x-twilio-signature": twilio_signature(
            token, PUBLIC + path, parse_qsl(body.decode(), keep_blank_values=True)
        ),
    }


@pytest.fixture
def sms_inbox(services: Services, account: AccountFixture) -> tuple[int, str]:
    return make_inbox(
        services,
        account.id,
        "twilio_sms",
        {
            "auth_token": TOKEN,
            "account_sid": "ACf00000000000000000000000000000aa",
            "from_number": "+14155238886",
        },
    )


async def test_inbound_sms_is_stored_once_whatever_the_redeliveries(
    client: httpx.AsyncClient, services: Services, sms_inbox: tuple[int, str]
) -> None:
    inbox_id, token = sms_inbox
    path = f"/webhooks/twilio/{token}"
    body = fixture("twilio_sms_inbound.form")
    for _ in range(10):
        r = await client.post(path, content=body, headers=signed(path, body))
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/xml") and "<Response>" in r.text
    rs = await asyncio.gather(
        *(client.post(path, content=body, headers=signed(path, body)) for _ in range(20))
    )
    assert all(x.status_code == 200 for x in rs)
    assert counts(services, inbox_id)["messages"] == 1
    m = messages(services, inbox_id)[0]
    assert m.content == "Hi there, my order #12345 hasn't arrived"
    assert m.channel_message_id == "SM1f0e8ae6ade43cb3c0ce4525424e404f"
    contact = await client.get(f"/api/v1/conversations/{m.conversation_id}", headers={"authorization": "x"})
    assert contact.status_code == 401  # the API is not open: the webhook is


async def test_whatsapp_media_and_identity(
    client: httpx.AsyncClient, services: Services, account: AccountFixture
) -> None:
    inbox_id, token = make_inbox(services, account.id, "twilio_whatsapp", {"auth_token": TOKEN})
    path = f"/webhooks/twilio/{token}"
    body = fixture("twilio_whatsapp_inbound.form")
    r = await client.post(path, content=body, headers=signed(path, body))
    assert r.status_code == 200, r.text
    m = messages(services, inbox_id)[0]
    assert m.meta["media"][0]["content_type"] == "image/jpeg"
    assert m.meta["media"][0]["url"].startswith("https://api.twilio.com/2010-04-01/Accounts/")
    conv = (await client.get(f"/api/v1/conversations/{m.conversation_id}", headers=account.auth)).json()
    contact = (await client.get(f"/api/v1/contacts/{conv['contact_id']}", headers=account.auth)).json()
    assert contact["name"] == "Ann Berger"
    assert {"kind": "whatsapp", "value": "+4915112345678"} in [
        {"kind": i["kind"], "value": i["value"]} for i in contact["identities"]
    ]


@pytest.mark.parametrize("case", ["forged", "wrong_secret", "missing", "other_url", "tampered_param"])
async def test_bad_signatures_write_nothing(
    client: httpx.AsyncClient, services: Services, sms_inbox: tuple[int, str], case: str
) -> None:
    inbox_id, token = sms_inbox
    path = f"/webhooks/twilio/{token}"
    body = fixture("twilio_sms_inbound.form")
    headers = signed(path, body)
    if case == "forged":
        sig = headers["x-twilio-signature"]
        headers["x-twilio-signature"] = ("A" if sig[0] != "A" else "B") + sig[1:]
    elif case == "wrong_secret":
        headers = signed(path, body, token="0" * 32)
    elif case == "missing":
        del headers["x-twilio-signature"]
    elif case == "other_url":
        headers = {
            **FORM,
            "x-twilio-signature": twilio_signature(
                TOKEN, PUBLIC + "/webhooks/twilio/other", parse_qsl(body.decode())
            ),
        }
    elif case == "tampered_param":
        body = body.replace(b"Hi+there", b"Hi+thera")
    r = await client.post(path, content=body, headers=headers)
    assert r.status_code in (401, 403), r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert counts(services, inbox_id) == {"messages": 0, "conversations": 0, "raw": 0, "malformed": 0}


async def test_malformed_body_is_400_and_kept(
    client: httpx.AsyncClient, services: Services, sms_inbox: tuple[int, str]
) -> None:
    inbox_id, token = sms_inbox
    path = f"/webhooks/twilio/{token}"
    body = b"AccountSid=AC1&From=%2B14158675310&Body=no+sid"
    r = await client.post(path, content=body, headers=signed(path, body))
    assert r.status_code == 400
    assert "MessageSid is missing" in r.json()["detail"]
    assert counts(services, inbox_id) == {"messages": 0, "conversations": 0, "raw": 1, "malformed": 1}


async def test_unknown_inbox_or_wrong_channel_is_404(
    client: httpx.AsyncClient, sms_inbox: tuple[int, str]
) -> None:
    _, token = sms_inbox
    assert (await client.post("/webhooks/twilio/nope", content=b"a=b", headers=FORM)).status_code == 404
    assert (await client.post(f"/webhooks/telegram/{token}", content=b"{}")).status_code == 404
    assert (await client.post(f"/webhooks/unknown/{token}", content=b"{}")).status_code == 404


async def test_reply_goes_out_through_rest_and_statuses_flow_back(
    client: httpx.AsyncClient, services: Services, account: AccountFixture
) -> None:
    fake = FakeProvider(
        reply=lambda rec: (201, {"sid": "SMb7c0a2ce80504485a6f653a7110836f5", "status": "queued"})
    ).start()
    try:
        inbox_id, token = make_inbox(
            services,
            account.id,
            "twilio_sms",
            {
                "auth_token": TOKEN,
                "account_sid": "ACf00000000000000000000000000000aa",
                "from_number": "+14155238886",
                "api_base": fake.url,
            },
        )
        path = f"/webhooks/twilio/{token}"
        body = fixture("twilio_sms_inbound.form")
        assert (await client.post(path, content=body, headers=signed(path, body))).status_code == 200
        conv_id = messages(services, inbox_id)[0].conversation_id
        fake.fail_next = [(503, {}), (429, {"Retry-After": "0"})]
        r = await client.post(
            f"/api/v1/conversations/{conv_id}/messages",
            json={"content": "Sorry! It ships today."},
            headers=account.auth,
        )
        assert r.status_code == 201, r.text
        reply_id = r.json()["id"]
        for _ in range(3):
            await _run_jobs_now(services)
        assert len(fake.requests) == 3  # two injected failures, then the send
        sent = fake.requests[-1]
        assert sent.path == "/2010-04-01/Accounts/ACf00000000000000000000000000000aa/Messages.json"
        form = dict(parse_qsl(sent.body.decode()))
        assert (
            form["To"] == "+14158675310"
            and form["From"] == "+14155238886"
            and form["Body"] == "Sorry! It ships today."
        )
        assert form["StatusCallback"] == f"{PUBLIC}/webhooks/twilio/{token}"
        assert sent.headers["authorization"].startswith("Basic ")
        reply = next(m for m in messages(services, inbox_id) if m.id == reply_id)
        assert reply.status == "sent" and reply.channel_message_id == "SMb7c0a2ce80504485a6f653a7110836f5"
        for name, status in (
            ("twilio_status_delivered.form", "delivered"),
            ("twilio_status_undelivered.form", "failed"),
        ):
            body = fixture(name)
            assert (await client.post(path, content=body, headers=signed(path, body))).status_code == 200
            reply = next(m for m in messages(services, inbox_id) if m.id == reply_id)
            assert reply.status == status
        assert reply.error == "Twilio error 30003"
    finally:
        fake.stop()


async def test_permanent_provider_error_is_not_retried(
    client: httpx.AsyncClient, services: Services, account: AccountFixture
) -> None:
    fake = FakeProvider(
        reply=lambda rec: (400, {"code": 21211, "message": "The 'To' number is not a valid phone number."})
    ).start()
    try:
        inbox_id, token = make_inbox(
            services,
            account.id,
            "twilio_sms",
            {
                "auth_token": TOKEN,
                "account_sid": "ACf00000000000000000000000000000aa",
                "from_number": "+14155238886",
                "api_base": fake.url,
            },
        )
        path = f"/webhooks/twilio/{token}"
        body = fixture("twilio_sms_inbound.form")
        await client.post(path, content=body, headers=signed(path, body))
        conv_id = messages(services, inbox_id)[0].conversation_id
        r = await client.post(
            f"/api/v1/conversations/{conv_id}/messages", json={"content": "hello"}, headers=account.auth
        )
        for _ in range(3):
            await _run_jobs_now(services)
        assert len(fake.requests) == 1
        reply = next(m for m in messages(services, inbox_id) if m.id == r.json()["id"])
        assert reply.status == "failed" and "21211" in (reply.error or "")
    finally:
        fake.stop()


async def _run_jobs_now(services: Services) -> None:
    """Run due jobs, making retries due at once (backoff is tested in the job system, not here)."""
    from sqlalchemy import update

    from caredesk.platform.jobs import Job
    from caredesk.platform.models import utcnow

    def due(s: object) -> None:
        s.execute(update(Job).where(Job.status == "queued").values(run_at=utcnow()))  # type: ignore[attr-defined]

    await services.db.write(due)
    assert services.worker is not None
    await services.worker.run_until_idle()


async def test_valid_deliveries_take_the_hot_path_and_refusals_the_full_stack(
    client: httpx.AsyncClient,
    services: Services,
    sms_inbox: tuple[int, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """caredesk.web.hotpath: a delivery that verifies and parses never reaches the FastAPI route (which
    reads the request through `raw_request`); a forged or malformed one does, and is answered there."""
    from caredesk.channels import routes

    full_stack: list[str] = []
    real = routes.raw_request

    async def spy(request: object, svc: Services) -> object:
        full_stack.append(str(getattr(request, "url", "")))
        return await real(request, svc)  # type: ignore[arg-type]

    monkeypatch.setattr(routes, "raw_request", spy)
    inbox_id, token = sms_inbox
    path = f"/webhooks/twilio/{token}"
    body = fixture("twilio_sms_inbound.form")
    r = await client.post(path, content=body, headers=signed(path, body))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/xml")
    assert "<Response>" in r.text and "content-security-policy" in r.headers
    assert full_stack == [] and counts(services, inbox_id)["messages"] == 1

    forged = {**signed(path, body), "x-twilio-signature": "AAAA"}
    assert (await client.post(path, content=body, headers=forged)).status_code in (401, 403)
    bad = b"AccountSid=AC1&From=%2B14158675310&Body=no+sid"
    assert (await client.post(path, content=bad, headers=signed(path, bad))).status_code == 400
    assert len(full_stack) == 2
    assert counts(services, inbox_id) == {"messages": 1, "conversations": 1, "raw": 2, "malformed": 1}
