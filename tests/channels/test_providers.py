"""WhatsApp Cloud, Messenger, Telegram and the API channel: handshakes, signatures (valid, forged, wrong
secret, missing, stale, replayed), parsing of recorded payloads, dedupe, statuses and outbound calls."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from caredesk.channels.api import standard_webhooks
from caredesk.conversations.models import Message
from caredesk.services import Services
from tests.channels.fake_provider import FakeProvider
from tests.channels.helpers import counts, fixture, make_inbox, messages
from tests.conftest import AccountFixture

APP_SECRET = "meta-app-secret-0123456789"
WH_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
JSON = {"content-type": "application/json"}
ZERO = {"messages": 0, "conversations": 0, "raw": 0, "malformed": 0}


def hub(body: bytes, secret: str = APP_SECRET) -> dict[str, str]:
    return {
        **JSON,
        "x-hub-signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
    }


def forge(value: str) -> str:
    i = len(value) - 3
    return value[:i] + ("0" if value[i] != "0" else "1") + value[i + 1 :]


# ---- WhatsApp Cloud -------------------------------------------------------------------------------


@pytest.fixture
def wa(services: Services, account: AccountFixture) -> tuple[int, str]:
    return make_inbox(
        services,
        account.id,
        "whatsapp_cloud",
        {
            "app_secret": APP_SECRET,
            "verify_token": "let-me-in",
            "phone_number_id": "106540352242922",
            "access_token": "EAAG",
        },
    )


async def test_whatsapp_handshake(client: httpx.AsyncClient, wa: tuple[int, str]) -> None:
    url = f"/webhooks/whatsapp/{wa[1]}"
    ok = await client.get(
        url, params={"hub.mode": "subscribe", "hub.verify_token": "let-me-in", "hub.challenge": "1158201444"}
    )
    assert ok.status_code == 200 and ok.text == "1158201444"
    bad = await client.get(
        url, params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"}
    )
    assert bad.status_code == 403


async def test_whatsapp_messages_statuses_and_dedupe(
    client: httpx.AsyncClient, services: Services, wa: tuple[int, str]
) -> None:
    inbox_id, token = wa
    url = f"/webhooks/whatsapp/{token}"
    body = fixture("whatsapp_cloud_text.json")
    for _ in range(10):
        assert (await client.post(url, content=body, headers=hub(body))).status_code == 200
    [m] = messages(services, inbox_id)
    assert m.content == "Does it come in another color?"

    # An outgoing message the status in the second payload refers to.
    def outgoing(s: Any) -> None:
        s.add(
            Message(
                account_id=m.account_id,
                conversation_id=m.conversation_id,
                inbox_id=inbox_id,
                type="outgoing",
                sender_type="agent",
                content="Yes, blue.",
                channel_message_id="wamid.OUT-1",
                status="sent",
                meta={},
                signals={},
            )
        )

    await services.db.write(outgoing)
    body = fixture("whatsapp_cloud_mixed.json")
    r = await client.post(url, content=body, headers=hub(body))
    assert r.status_code == 200 and r.json()["statuses"] == 1
    stored = messages(services, inbox_id)
    button = next(x for x in stored if x.meta.get("interactive"))
    assert button.content == "Track my order" and button.meta["interactive"]["id"] == "track-order"
    image = next(x for x in stored if x.meta.get("media"))
    assert image.content == "The box arrived like this" and image.meta["media"][0]["id"] == "1003383421387256"
    assert next(x for x in stored if x.channel_message_id == "wamid.OUT-1").status == "delivered"
    assert len({x.conversation_id for x in stored}) == 1


@pytest.mark.parametrize("case", ["forged", "wrong_secret", "missing", "bad_prefix"])
async def test_whatsapp_bad_signatures(
    client: httpx.AsyncClient, services: Services, wa: tuple[int, str], case: str
) -> None:
    body = fixture("whatsapp_cloud_text.json")
    headers = hub(body)
    if case == "forged":
        headers["x-hub-signature-256"] = forge(headers["x-hub-signature-256"])
    elif case == "wrong_secret":
        headers = hub(body, "another-secret")
    elif case == "missing":
        del headers["x-hub-signature-256"]
    else:
        headers["x-hub-signature-256"] = headers["x-hub-signature-256"].replace("sha256=", "sha1=")
    r = await client.post(f"/webhooks/whatsapp/{wa[1]}", content=body, headers=headers)
    assert r.status_code in (401, 403)
    assert counts(services, wa[0]) == ZERO


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"object":"page"}',
        b'{"object":"whatsapp_business_account","entry":{}}',
        b"\xff\xfe",
        b"[" * 100 + b"]" * 100,
    ],
)
async def test_whatsapp_malformed(
    client: httpx.AsyncClient, services: Services, wa: tuple[int, str], body: bytes
) -> None:
    r = await client.post(f"/webhooks/whatsapp/{wa[1]}", content=body, headers=hub(body))
    assert r.status_code == 400 and r.json()["detail"].startswith("malformed whatsapp payload")
    assert counts(services, wa[0])["malformed"] == 1 and counts(services, wa[0])["messages"] == 0


async def test_whatsapp_window_and_templates(
    client: httpx.AsyncClient, services: Services, account: AccountFixture, wa: tuple[int, str]
) -> None:
    fake = FakeProvider(
        reply=lambda rec: (
            200,
            {"messaging_product": "whatsapp", "messages": [{"id": "wamid.SENT-" + str(len(fake.requests))}]},
        )
    ).start()
    try:
        inbox_id, token = make_inbox(
            services,
            account.id,
            "whatsapp_cloud",
            {
                "app_secret": APP_SECRET,
                "phone_number_id": "106540352242922",
                "access_token": "EAAG",
                "api_base": fake.url,
            },
        )
        body = fixture("whatsapp_cloud_text.json")
        await client.post(f"/webhooks/whatsapp/{token}", content=body, headers=hub(body))
        conv_id = messages(services, inbox_id)[0].conversation_id
        w = (await client.get(f"/api/v1/conversations/{conv_id}/channel-window", headers=account.auth)).json()
        assert w["applies"] and w["open"] and not w["templates_only"]
        r = await client.post(
            f"/api/v1/conversations/{conv_id}/messages",
            json={"content": "Yes, in blue."},
            headers=account.auth,
        )
        assert services.worker is not None
        await services.worker.run_until_idle()
        sent = fake.requests[-1]
        assert sent.path == "/106540352242922/messages" and sent.headers["authorization"] == "Bearer EAAG"
        assert sent.json() == {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "16505551234",
            "type": "text",
            "text": {"preview_url": False, "body": "Yes, in blue."},
        }
        assert (
            next(m for m in messages(services, inbox_id) if m.id == r.json()["id"]).channel_message_id
            == "wamid.SENT-1"
        )

        def age(s: Any) -> None:
            s.execute(
                update(Message)
                .where(Message.inbox_id == inbox_id, Message.type == "incoming")
                .values(created_at=dt.datetime(2020, 1, 1))
            )

        await services.db.write(age)
        w = (await client.get(f"/api/v1/conversations/{conv_id}/channel-window", headers=account.auth)).json()
        assert not w["open"] and w["templates_only"] and "template" in w["notice"]
        r = await client.post(
            f"/api/v1/conversations/{conv_id}/messages",
            json={"content": "Still there?"},
            headers=account.auth,
        )
        await services.worker.run_until_idle()
        late = next(m for m in messages(services, inbox_id) if m.id == r.json()["id"])
        assert late.status == "failed" and "24-hour window" in (late.error or "")
        assert len(fake.requests) == 1  # nothing was sent outside the window
    finally:
        fake.stop()


# ---- Messenger ------------------------------------------------------------------------------------


async def test_messenger(client: httpx.AsyncClient, services: Services, account: AccountFixture) -> None:
    inbox_id, token = make_inbox(
        services, account.id, "messenger", {"app_secret": APP_SECRET, "verify_token": "vt"}
    )
    body = fixture("messenger_message.json")
    for _ in range(3):
        assert (
            await client.post(f"/webhooks/messenger/{token}", content=body, headers=hub(body))
        ).status_code == 200
    [m] = messages(services, inbox_id)
    assert m.content == "Do you ship to Norway?"
    bad = await client.post(f"/webhooks/messenger/{token}", content=body, headers=hub(body, "x"))
    assert bad.status_code == 403


# ---- Telegram -------------------------------------------------------------------------------------


async def test_telegram(client: httpx.AsyncClient, services: Services, account: AccountFixture) -> None:
    fake = FakeProvider(
        reply=lambda rec: (200, {"ok": True, "result": {"message_id": 1366, "chat": {"id": 987654321}}})
    ).start()
    try:
        inbox_id, token = make_inbox(
            services,
            account.id,
            "telegram",
            {"secret_token": "tg-secret_1", "bot_token": "123:ABC", "api_base": fake.url},
        )
        url = f"/webhooks/telegram/{token}"
        body = fixture("telegram_message.json")
        good = {**JSON, "x-telegram-bot-api-secret-token": "tg-secret_1"}
        for headers in ({**JSON}, {**JSON, "x-telegram-bot-api-secret-token": "tg-secret_2"}):
            assert (await client.post(url, content=body, headers=headers)).status_code in (401, 403)
        assert counts(services, inbox_id) == ZERO
        results = [await client.post(url, content=body, headers=good) for _ in range(10)]
        assert all(r.status_code == 200 for r in results)
        assert [r.json()["replayed"] for r in results] == [False] + [True] * 9
        [m] = messages(services, inbox_id)
        assert m.content == "Hi, where is my parcel?" and m.channel_message_id == "987654321:1365"
        r = await client.post(
            f"/api/v1/conversations/{m.conversation_id}/messages",
            json={"content": "Tomorrow."},
            headers=account.auth,
        )
        assert services.worker is not None
        await services.worker.run_until_idle()
        assert fake.requests[-1].path == "/bot123:ABC/sendMessage"
        assert fake.requests[-1].json() == {"chat_id": 987654321, "text": "Tomorrow."}
        assert next(x for x in messages(services, inbox_id) if x.id == r.json()["id"]).status == "sent"
    finally:
        fake.stop()


# ---- API channel (Standard Webhooks) --------------------------------------------------------------


def test_standard_webhooks_reference_vector() -> None:
    # The example from the Standard Webhooks reference libraries' tests.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    assert (
        standard_webhooks.sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


@pytest.mark.parametrize(
    "case", ["valid", "forged", "wrong_secret", "missing", "stale", "future", "replayed"]
)
async def test_api_channel_signatures(
    client: httpx.AsyncClient, services: Services, account: AccountFixture, case: str
) -> None:
    inbox_id, token = make_inbox(services, account.id, "api", {"webhook_secret": WH_SECRET})
    url = f"/webhooks/api/{token}"
    body = fixture("api_message.json")
    now = int(time.time())
    headers = {**JSON, **standard_webhooks.headers_for(WH_SECRET, "msg_2f1a", body, now)}
    if case == "forged":
        headers["webhook-signature"] = forge(headers["webhook-signature"])
    elif case == "wrong_secret":
        headers = {**JSON, **standard_webhooks.headers_for("whsec_" + "QUJD" * 8, "msg_2f1a", body, now)}
    elif case == "missing":
        del headers["webhook-signature"]
    elif case == "stale":
        headers = {**JSON, **standard_webhooks.headers_for(WH_SECRET, "msg_2f1a", body, now - 600)}
    elif case == "future":
        headers = {**JSON, **standard_webhooks.headers_for(WH_SECRET, "msg_2f1a", body, now + 600)}
    r = await client.post(url, content=body, headers=headers)
    if case in ("valid", "replayed"):
        assert r.status_code == 200, r.text
        if case == "replayed":
            again = await client.post(url, content=body, headers=headers)
            assert again.status_code == 200 and again.json()["replayed"] is True
        [m] = messages(services, inbox_id)
        assert m.content == "Please cancel my subscription." and m.channel_message_id == "crm-msg-40021"
        assert m.meta["metadata"] == {"crm_ticket": "T-881"}
    else:
        assert r.status_code in (401, 403), r.text
        assert counts(services, inbox_id) == ZERO


async def test_api_channel_outbound_webhook_signed_and_retried(
    client: httpx.AsyncClient, services: Services, account: AccountFixture
) -> None:
    fake = FakeProvider().start()
    try:
        inbox_id, token = make_inbox(
            services,
            account.id,
            "api",
            {"webhook_secret": WH_SECRET, "webhook_url": fake.url + "/hooks/caredesk"},
        )
        body = fixture("api_message.json")
        await client.post(
            f"/webhooks/api/{token}",
            content=body,
            headers={**JSON, **standard_webhooks.headers_for(WH_SECRET, "m1", body)},
        )
        conv_id = messages(services, inbox_id)[0].conversation_id
        fake.fail_next = [(500, {})]
        r = await client.post(
            f"/api/v1/conversations/{conv_id}/messages",
            json={"content": "Done, cancelled."},
            headers=account.auth,
        )
        from tests.channels.test_twilio import _run_jobs_now

        await _run_jobs_now(services)
        await _run_jobs_now(services)
        assert len(fake.requests) == 2
        first, second = fake.requests
        assert first.headers["webhook-id"] == second.headers["webhook-id"]  # the receiver's dedupe key
        got = second
        hdrs = {k: got.headers[k] for k in ("webhook-id", "webhook-timestamp", "webhook-signature")}
        assert standard_webhooks.verify(WH_SECRET, hdrs, got.body) == got.headers["webhook-id"]
        assert got.json()["data"]["text"] == "Done, cancelled."
        assert next(m for m in messages(services, inbox_id) if m.id == r.json()["id"]).status == "sent"
    finally:
        fake.stop()
