"""Provider media brought into storage (`caredesk.channels.media`) against a fake provider on loopback:
Twilio (Basic auth, redirect to a CDN), WhatsApp Cloud (two-step fetch with the bearer token), Telegram
(getFile), Messenger (plain URL); stored once whatever the redeliveries, 5xx/429/timeouts retried, 4xx
marked failed at once, oversize and wrong types refused, and no credential in any log."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from sqlalchemy import select, update

from caredesk.channels.media import JOB, MediaLimits, MediaRefused, download, media_job
from caredesk.channels.twilio.signature import twilio_signature
from caredesk.conversations.models import Attachment, Message
from caredesk.conversations.serialize import message_json
from caredesk.platform import jobs
from caredesk.platform.events import EventRow
from caredesk.platform.models import utcnow
from caredesk.services import Services
from caredesk.ui.render import fragment
from tests.channels.fake_provider import FakeProvider
from tests.channels.helpers import PUBLIC, make_inbox
from tests.conftest import AccountFixture

pytestmark = pytest.mark.postgres  # the item lock (FOR UPDATE) and the concurrent runs matter there

TWILIO_SID = "ACf00000000000000000000000000000aa"
TWILIO_TOKEN = "f3a9c2d1e8b7a6c5d4e3f2a1b0c9d8e7"
WA_TOKEN = "EAAGm0PX4ZCpsBAKZCwaSecretBearer"
APP_SECRET = "meta-app-secret-0123456789"
BOT_TOKEN = "7012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
TG_SECRET = "tg-secret-token-0123"

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 12
MEDIA_PATH = f"/2010-04-01/Accounts/{TWILIO_SID}/Messages/MM0001/Media/ME0123456789abcdef0123456789abcdef"


@pytest.fixture
def fake() -> Any:
    f = FakeProvider().start()
    yield f
    f.stop()


async def run_jobs(services: Services) -> None:
    """Run due jobs, making retries due at once (the backoff itself is the job system's, tested there)."""

    def due(s: Any) -> None:
        s.execute(update(jobs.Job).where(jobs.Job.status == "queued").values(run_at=utcnow()))

    await services.db.write(due)
    assert services.worker is not None
    await services.worker.run_until_idle()


def media_jobs(services: Services) -> list[jobs.Job]:
    return services.db.read_sync(
        lambda s: list(
            s.execute(select(jobs.Job).where(jobs.Job.kind == JOB).order_by(jobs.Job.id)).scalars()
        )
    )


def attachments(services: Services, message_id: int) -> list[Attachment]:
    return services.db.read_sync(
        lambda s: list(
            s.execute(
                select(Attachment).where(Attachment.message_id == message_id).order_by(Attachment.id)
            ).scalars()
        )
    )


def gets(fake: FakeProvider) -> list[str]:
    return [r.path for r in fake.requests if r.method == "GET"]


# ---- Twilio -------------------------------------------------------------------------------------------


def twilio_inbox(services: Services, account: AccountFixture, fake: FakeProvider, channel: str) -> str:
    return make_inbox(
        services,
        account.id,
        channel,
        {
            "auth_token": TWILIO_TOKEN,
            "account_sid": TWILIO_SID,
            "from_number": "+14155238886",
            "api_base": fake.url,
        },
    )[1]


async def post_twilio(
    client: httpx.AsyncClient, token: str, media: list[tuple[str, str]], sid: str = "MM0001"
) -> httpx.Response:
    params = {
        "MessageSid": sid,
        "AccountSid": TWILIO_SID,
        "From": "whatsapp:+4915112345678",
        "To": "whatsapp:+14155238886",
        "Body": "Here is the damaged box",
        "NumMedia": str(len(media)),
    }
    for i, (url, ctype) in enumerate(media):
        params[f"MediaUrl{i}"], params[f"MediaContentType{i}"] = url, ctype
    body = urlencode(params).encode()
    path = f"/webhooks/twilio/{token}"
    sig = twilio_signature(TWILIO_TOKEN, PUBLIC + path, parse_qsl(body.decode(), keep_blank_values=True))
    headers = {"content-type": "application/x-www-form-urlencoded", "x-twilio-signature": sig}
    r = await client.post(path, content=body, headers=headers)
    assert r.status_code == 200, r.text
    return r


@pytest.mark.parametrize("channel", ["twilio_whatsapp", "twilio_sms"])
async def test_twilio_image_is_stored_and_downloadable(
    client: httpx.AsyncClient,
    services: Services,
    account: AccountFixture,
    other_account: AccountFixture,
    fake: FakeProvider,
    channel: str,
) -> None:
    token = twilio_inbox(services, account, fake, channel)
    fake.files[MEDIA_PATH] = ("image/png", PNG)
    await post_twilio(client, token, [(fake.url + MEDIA_PATH, "image/png")])
    # The webhook stored the message and the job, and did no network I/O itself.
    assert fake.requests == []
    [job] = media_jobs(services)
    assert job.status == "queued"

    await run_jobs(services)
    [req] = fake.requests
    assert req.path == MEDIA_PATH
    assert (
        req.headers["authorization"]
        == "Basic " + base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
    )
    [m] = [x for x in await _all_messages(services, account.id)]
    [item] = m.meta["media"]
    assert item["status"] == "stored" and item["url"] == fake.url + MEDIA_PATH
    [a] = attachments(services, m.id)
    assert item["attachment_id"] == a.id and a.account_id == account.id
    assert (a.filename, a.content_type, a.size) == (
        "ME0123456789abcdef0123456789abcdef.png",
        "image/png",
        len(PNG),
    )

    url = f"/api/v1/conversations/{m.conversation_id}/messages/{m.id}/attachments/0"
    got = await client.get(url, headers=account.auth)
    assert got.status_code == 200 and got.content == PNG and got.headers["content-type"] == "image/png"
    assert (await client.get(url, headers=other_account.auth)).status_code == 404
    # The open conversation hears of it: message.updated with the file.
    updated = _events(services, account.id, "message.updated")
    assert updated[-1]["id"] == m.id
    assert updated[-1]["attachments"] == [
        {"index": 0, "filename": a.filename, "content_type": "image/png", "size": len(PNG)}
    ]


async def test_twilio_redirect_to_cdn_gets_no_credentials(
    client: httpx.AsyncClient, services: Services, account: AccountFixture, fake: FakeProvider
) -> None:
    cdn = FakeProvider().start()
    try:
        token = twilio_inbox(services, account, fake, "twilio_whatsapp")
        fake.redirects[MEDIA_PATH] = cdn.url + "/mms/signed-file"
        cdn.files["/mms/signed-file"] = ("image/jpeg", JPEG)
        await post_twilio(client, token, [(fake.url + MEDIA_PATH, "image/jpeg")])
        await run_jobs(services)
        assert fake.requests[0].headers["authorization"].startswith("Basic ")
        [hop] = cdn.requests
        assert "authorization" not in hop.headers
        [m] = await _all_messages(services, account.id)
        assert [a.content_type for a in attachments(services, m.id)] == ["image/jpeg"]
    finally:
        cdn.stop()


# ---- WhatsApp Cloud -----------------------------------------------------------------------------------


def wa_payload(media_id: str, kind: str = "image", extra: dict[str, Any] | None = None) -> bytes:
    message = {
        "from": "16505551234",
        "id": f"wamid.{media_id}",
        "timestamp": "1750025140",
        "type": kind,
        kind: {"mime_type": "image/jpeg", "id": media_id, **(extra or {})},
    }
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
        "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
        "messages": [message],
    }
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}],
    }
    return json.dumps(body).encode()


async def post_wa(client: httpx.AsyncClient, token: str, body: bytes) -> None:
    sig = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    r = await client.post(
        f"/webhooks/whatsapp/{token}",
        content=body,
        headers={"content-type": "application/json", "x-hub-signature-256": sig},
    )
    assert r.status_code == 200, r.text


def wa_inbox(services: Services, account: AccountFixture, fake: FakeProvider) -> str:
    return make_inbox(
        services,
        account.id,
        "whatsapp_cloud",
        {
            "app_secret": APP_SECRET,
            "verify_token": "v",
            "phone_number_id": "106540352242922",
            "access_token": WA_TOKEN,
            "api_base": fake.url + "/v20.0",
        },
    )[1]


def serve_wa_media(fake: FakeProvider, media_id: str, data: bytes, size: int | None = None) -> None:
    fake.files[f"/lookaside/{media_id}"] = ("image/jpeg", data)

    def reply(rec: Any) -> tuple[int, dict[str, Any]]:
        if rec.path.split("?")[0] == f"/v20.0/{media_id}":
            return 200, {
                "messaging_product": "whatsapp",
                "url": f"{fake.url}/lookaside/{media_id}?ext=1&hash=abc",
                "mime_type": "image/jpeg",
                "sha256": hashlib.sha256(data).hexdigest(),
                "file_size": str(size if size is not None else len(data)),
                "id": media_id,
            }
        return 404, {"error": {"message": "Unsupported get request", "code": 100}}

    fake.reply = reply


async def test_whatsapp_cloud_two_step_fetch_with_bearer_token(
    client: httpx.AsyncClient, services: Services, account: AccountFixture, fake: FakeProvider
) -> None:
    token = wa_inbox(services, account, fake)
    serve_wa_media(fake, "1003383421387256", JPEG)
    await post_wa(client, token, wa_payload("1003383421387256"))
    assert fake.requests == []
    await run_jobs(services)
    lookup, file = fake.requests
    assert lookup.path == "/v20.0/1003383421387256?phone_number_id=106540352242922"
    assert file.path.startswith("/lookaside/1003383421387256?")
    assert lookup.headers["authorization"] == file.headers["authorization"] == f"Bearer {WA_TOKEN}"
    [m] = await _all_messages(services, account.id)
    [a] = attachments(services, m.id)
    assert (a.filename, a.content_type, a.size) == ("image-1003383421387256.jpg", "image/jpeg", len(JPEG))
    assert m.meta["media"][0]["id"] == "1003383421387256" and m.meta["media"][0]["status"] == "stored"
    assert services.storage.get(a.storage_key) == JPEG


async def test_whatsapp_declared_oversize_is_refused_before_downloading(
    client: httpx.AsyncClient, services: Services, account: AccountFixture, fake: FakeProvider
) -> None:
    token = wa_inbox(services, account, fake)
    serve_wa_media(fake, "77", JPEG, size=50 * 1_048_576)
    await post_wa(client, token, wa_payload("77"))
    await run_jobs(services)
    assert gets(fake) == ["/v20.0/77?phone_number_id=106540352242922"]  # the lookup only
    [m] = await _all_messages(services, account.id)
    item = m.meta["media"][0]
    assert (
        item["status"] == "failed" and "larger than the 20 MB limit" in item["error"] and item["id"] == "77"
    )
    assert attachments(services, m.id) == []


# ---- Telegram -----------------------------------------------------------------------------------------


async def test_telegram_photo_through_getfile(
    client: httpx.AsyncClient, services: Services, account: AccountFixture, fake: FakeProvider
) -> None:
    _, token = make_inbox(
        services,
        account.id,
        "telegram",
        {"secret_token": TG_SECRET, "bot_token": BOT_TOKEN, "api_base": fake.url},
    )
    fake.files[f"/file/bot{BOT_TOKEN}/photos/file_7.jpg"] = ("application/octet-stream", JPEG)
    fake.reply = lambda rec: (
        200,
        {
            "ok": True,
            "result": {
                "file_id": "AgACAgQ-big",
                "file_unique_id": "u1",
                "file_size": len(JPEG),
                "file_path": "photos/file_7.jpg",
            },
        },
    )
    update_ = {
        "update_id": 729384760,
        "message": {
            "message_id": 1370,
            "from": {"id": 987654321, "is_bot": False, "first_name": "Lena"},
            "chat": {"id": 987654321, "type": "private"},
            "date": 1741084800,
            "photo": [
                {
                    "file_id": "AgACAgQ-small",
                    "file_unique_id": "u0",
                    "file_size": 900,
                    "width": 90,
                    "height": 60,
                },
                {
                    "file_id": "AgACAgQ-big",
                    "file_unique_id": "u1",
                    "file_size": len(JPEG),
                    "width": 800,
                    "height": 600,
                },
            ],
            "caption": "the label",
        },
    }
    r = await client.post(
        f"/webhooks/telegram/{token}",
        content=json.dumps(update_).encode(),
        headers={"content-type": "application/json", "x-telegram-bot-api-secret-token": TG_SECRET},
    )
    assert r.status_code == 200, r.text
    await run_jobs(services)
    assert gets(fake) == [
        f"/bot{BOT_TOKEN}/getFile?file_id=AgACAgQ-big",
        f"/file/bot{BOT_TOKEN}/photos/file_7.jpg",
    ]
    [m] = await _all_messages(services, account.id)
    [a] = attachments(services, m.id)
    assert (a.filename, a.content_type) == ("file_7.jpg", "image/jpeg")
    assert m.meta["media"][0]["file_id"] == "AgACAgQ-big" and m.meta["media"][0]["status"] == "stored"


# ---- Messenger ----------------------------------------------------------------------------------------


async def test_messenger_attachment_from_its_plain_url(
    client: httpx.AsyncClient, services: Services, account: AccountFixture, fake: FakeProvider
) -> None:
    _, token = make_inbox(
        services,
        account.id,
        "messenger",
        {"app_secret": APP_SECRET, "verify_token": "v", "page_access_token": "PAGE-TOKEN"},
    )
    fake.files["/v/t1.15752-9/4567_n.png"] = ("image/png", PNG)
    ev = {
        "sender": {"id": "6543210987654321"},
        "recipient": {"id": "112233445566778"},
        "timestamp": 1741084800000,
        "message": {
            "mid": "m_photo_1",
            "attachments": [
                {"type": "image", "payload": {"url": fake.url + "/v/t1.15752-9/4567_n.png?stp=dst&oh=x"}}
            ],
        },
    }
    body = json.dumps({"object": "page", "entry": [{"id": "1", "time": 1, "messaging": [ev]}]}).encode()
    sig = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    r = await client.post(
        f"/webhooks/messenger/{token}",
        content=body,
        headers={"content-type": "application/json", "x-hub-signature-256": sig},
    )
    assert r.status_code == 200, r.text
    await run_jobs(services)
    [req] = fake.requests
    assert "authorization" not in req.headers
    [m] = await _all_messages(services, account.id)
    assert [(a.filename, a.content_type) for a in attachments(services, m.id)] == [
        ("4567_n.png", "image/png")
    ]

    # An attachment with nothing to fetch (a shared location) makes no job.
    ev["message"] = {
        "mid": "m_loc_1",
        "attachments": [{"type": "location", "payload": {"coordinates": {"lat": 1, "long": 2}}}],
    }
    body = json.dumps({"object": "page", "entry": [{"id": "1", "time": 1, "messaging": [ev]}]}).encode()
    sig = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    r = await client.post(
        f"/webhooks/messenger/{token}",
        content=body,
        headers={"content-type": "application/json", "x-hub-signature-256": sig},
    )
    assert r.status_code == 200, r.text
    assert len(media_jobs(services)) == 1 and len(await _all_messages(services, account.id)) == 2


# ---- at least once, never twice -----------------------------------------------------------------------


async def test_redelivered_webhook_and_job_store_the_file_once(
    client: httpx.AsyncClient, services: Services, account: AccountFixture, fake: FakeProvider
) -> None:
    token = twilio_inbox(services, account, fake, "twilio_whatsapp")
    fake.files[MEDIA_PATH] = ("image/png", PNG)
    for _ in range(3):
        await post_twilio(client, token, [(fake.url + MEDIA_PATH, "image/png")])
    assert len(media_jobs(services)) == 1  # one job per message, whatever the redeliveries
    await run_jobs(services)
    [m] = await _all_messages(services, account.id)
    assert len(attachments(services, m.id)) == 1

    # The job is delivered again (its completion was lost): nothing is fetched or stored twice.
    def again(s: Any) -> None:
        s.execute(update(jobs.Job).where(jobs.Job.kind == JOB).values(status="queued", run_at=utcnow()))

    await services.db.write(again)
    await run_jobs(services)
    assert len(fake.requests) == 1 and len(attachments(services, m.id)) == 1

    # Two workers running the same job at once (an expired lease): both download, one attachment is
    # kept, and the other's stored file is deleted again.
    def forget(s: Any) -> None:
        s.execute(
            update(Message)
            .where(Message.id == m.id)
            .values(meta={**m.meta, "media": [{"url": fake.url + MEDIA_PATH, "content_type": "image/png"}]})
        )
        for a in s.execute(select(Attachment).where(Attachment.message_id == m.id)).scalars():
            s.delete(a)

    await services.db.write(forget)
    files_before = _stored_files(services)
    [job] = media_jobs(services)
    claimed = jobs.ClaimedJob(job.id, account.id, JOB, {"message_id": m.id}, f"media:{m.id}", 1, 8)
    ctx = jobs.JobContext(claimed, services.db, services)
    await asyncio.gather(media_job(ctx), media_job(ctx))
    assert len(gets(fake)) == 3
    [a] = attachments(services, m.id)
    assert len(_stored_files(services)) == len(files_before) + 1
    [m] = await _all_messages(services, account.id)
    assert m.meta["media"][0]["attachment_id"] == a.id


# ---- failures -----------------------------------------------------------------------------------------


async def test_5xx_429_and_timeouts_are_retried_until_stored(
    client: httpx.AsyncClient, services: Services, account: AccountFixture, fake: FakeProvider
) -> None:
    services.extras["channels.media"] = MediaLimits(max_bytes=20 * 1_048_576, timeout_s=0.3)
    token = twilio_inbox(services, account, fake, "twilio_whatsapp")
    fake.files[MEDIA_PATH] = ("image/png", PNG)
    fake.fail_next = [(500, {}), (429, {"Retry-After": "120"})]
    await post_twilio(client, token, [(fake.url + MEDIA_PATH, "image/png")])
    [m] = await _all_messages(services, account.id)

    assert services.worker is not None
    await services.worker.run_until_idle()  # the first attempt: 500
    [job] = media_jobs(services)
    assert (job.status, job.attempts, job.last_error) == ("queued", 1, "Twilio answered 500")
    await run_jobs(services)  # 429 with Retry-After: 120 s at least
    [job] = media_jobs(services)
    assert job.status == "queued" and job.last_error == "Twilio answered 429"
    assert (job.run_at - utcnow()).total_seconds() > 100
    fake.hang_next, fake.hang_seconds = 1, 1.0
    await run_jobs(services)  # the provider hangs past the timeout
    [job] = media_jobs(services)
    assert job.status == "queued" and job.last_error == "Twilio timed out"
    assert (
        attachments(services, m.id) == []
        and "status" not in (await _all_messages(services, account.id))[0].meta["media"][0]
    )
    await run_jobs(services)  # and then it answers
    [job] = media_jobs(services)
    assert job.status == "done" and len(gets(fake)) == 4
    assert len(attachments(services, m.id)) == 1


async def test_giving_up_is_visible_and_the_dead_job_retry_fetches_again(
    client: httpx.AsyncClient, services: Services, account: AccountFixture, fake: FakeProvider
) -> None:
    token = twilio_inbox(services, account, fake, "twilio_whatsapp")
    fake.files[MEDIA_PATH] = ("image/png", PNG)
    fake.fail_next = [(503, {})] * 8
    await post_twilio(client, token, [(fake.url + MEDIA_PATH, "image/png")])
    for _ in range(8):
        await run_jobs(services)
    [job] = media_jobs(services)
    assert job.status == "dead" and job.attempts == 8
    [m] = await _all_messages(services, account.id)
    item = m.meta["media"][0]
    assert item["status"] == "failed" and item["retryable"] is True
    assert (
        item["error"] == "gave up after 8 attempts: Twilio answered 503"
        and item["url"] == fake.url + MEDIA_PATH
    )
    assert await services.db.write(jobs.retry_dead, job.id, account.id)
    await run_jobs(services)
    [m] = await _all_messages(services, account.id)
    assert m.meta["media"][0]["status"] == "stored" and "error" not in m.meta["media"][0]
    assert len(attachments(services, m.id)) == 1


async def test_4xx_is_marked_failed_without_retry(
    client: httpx.AsyncClient, services: Services, account: AccountFixture, fake: FakeProvider
) -> None:
    token = twilio_inbox(services, account, fake, "twilio_whatsapp")
    missing = f"{fake.url}/2010-04-01/Accounts/{TWILIO_SID}/Messages/MM0001/Media/MEgone"
    fake.reply = lambda rec: (404, {"code": 20404, "message": "The requested resource was not found"})
    await post_twilio(client, token, [(missing, "image/png")])
    await run_jobs(services)
    await run_jobs(services)
    assert len(fake.requests) == 1  # no retry
    [job] = media_jobs(services)
    assert job.status == "done"
    [m] = await _all_messages(services, account.id)
    item = m.meta["media"][0]
    assert item == {
        "url": missing,
        "content_type": "image/png",
        "status": "failed",
        "error": "Twilio answered 404: The requested resource was not found",
    }
    assert attachments(services, m.id) == []
    assert _events(services, account.id, "message.updated")[-1]["meta"]["media"][0]["status"] == "failed"
    # The agent's view says so.
    html = fragment(
        "_messages.html",
        items=[{**_timeline_item(m), "files": []}],
        conv_id=m.conversation_id,
        agent_names={},
    )
    assert "could not be fetched" in html and "404" in html


@pytest.mark.parametrize(
    ("ctype", "data", "reason"),
    [
        ("image/png", PNG + b"x" * 3000, "the file is larger than the 3,000-byte limit"),
        ("text/html", b"<html><script>alert(1)</script></html>", "files of type text/html are not accepted"),
        ("image/png", b"<svg onload=alert(1)>", "the file's content does not match its type"),
    ],
)
async def test_oversize_and_wrong_types_are_refused(
    client: httpx.AsyncClient,
    services: Services,
    account: AccountFixture,
    fake: FakeProvider,
    ctype: str,
    data: bytes,
    reason: str,
) -> None:
    services.extras["channels.media"] = MediaLimits(max_bytes=3000)
    token = twilio_inbox(services, account, fake, "twilio_whatsapp")
    fake.files[MEDIA_PATH] = (ctype, data)
    await post_twilio(client, token, [(fake.url + MEDIA_PATH, "")])
    await run_jobs(services)
    [m] = await _all_messages(services, account.id)
    item = m.meta["media"][0]
    assert item["status"] == "failed" and item["error"] == reason
    assert attachments(services, m.id) == [] and _stored_files(services) == []
    [job] = media_jobs(services)
    assert job.status == "done"


async def test_a_stream_without_length_is_cut_off_at_the_limit() -> None:
    sent: list[int] = []

    async def body() -> Any:
        for _ in range(100):
            sent.append(1)
            yield b"x" * 1000

    transport = httpx.MockTransport(lambda req: httpx.Response(200, content=body()))
    async with httpx.AsyncClient(transport=transport) as http:
        with pytest.raises(MediaRefused, match="larger than the 3,000-byte limit"):
            await download(http, "https://cdn.example/file", "CDN", 3000)
    assert len(sent) < 10  # stopped reading, not buffered to the end


# ---- secrets ------------------------------------------------------------------------------------------


async def test_credentials_never_logged(
    client: httpx.AsyncClient,
    services: Services,
    account: AccountFixture,
    fake: FakeProvider,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    twilio = twilio_inbox(services, account, fake, "twilio_whatsapp")
    wa = wa_inbox(services, account, fake)
    _, tg = make_inbox(
        services,
        account.id,
        "telegram",
        {"secret_token": TG_SECRET, "bot_token": BOT_TOKEN, "api_base": fake.url},
    )
    fake.files[MEDIA_PATH] = ("image/png", PNG)
    serve_wa_media(fake, "555", JPEG)
    base_reply = fake.reply

    def reply(rec: Any) -> tuple[int, dict[str, Any]]:
        if "/getFile" in rec.path:
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: invalid file_id"}
        return base_reply(rec)  # type: ignore[no-any-return]

    fake.reply = reply
    fake.fail_next = [(500, {}), (500, {}), (500, {})]
    await post_twilio(client, twilio, [(fake.url + MEDIA_PATH, "image/png")])
    await post_wa(client, wa, wa_payload("555"))
    body = {
        "update_id": 1,
        "message": {
            "message_id": 2,
            "chat": {"id": 3, "type": "private"},
            "document": {"file_id": "BQAC", "file_name": "a.pdf"},
        },
    }
    r = await client.post(
        f"/webhooks/telegram/{tg}",
        content=json.dumps(body).encode(),
        headers={"content-type": "application/json", "x-telegram-bot-api-secret-token": TG_SECRET},
    )
    assert r.status_code == 200
    for _ in range(3):
        await run_jobs(services)
    assert any("/getFile" in p for p in gets(fake)) and len(gets(fake)) >= 6
    basic = base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
    secrets = (TWILIO_TOKEN, basic, WA_TOKEN, BOT_TOKEN, BOT_TOKEN.split(":")[1])
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "HTTP Request" in logged  # httpx did log its requests, redacted
    assert not [s for s in secrets if s in logged]
    stored = json.dumps([m.meta for m in await _all_messages(services, account.id)])
    errors = json.dumps([j.last_error for j in media_jobs(services)])
    assert not [s for s in secrets if s in stored + errors]
    tg_item = next(
        m for m in await _all_messages(services, account.id) if m.meta.get("provider") == "telegram"
    )
    assert tg_item.meta["media"][0]["error"] == "Telegram answered 400: Bad Request: invalid file_id"


# ---- helpers ------------------------------------------------------------------------------------------


async def _all_messages(services: Services, account_id: int) -> list[Message]:
    return await services.db.read(
        lambda s: list(
            s.execute(
                select(Message)
                .where(Message.account_id == account_id, Message.type == "incoming")
                .order_by(Message.id)
            ).scalars()
        )
    )


def _events(services: Services, account_id: int, kind: str) -> list[dict[str, Any]]:
    return services.db.read_sync(
        lambda s: [
            e.data
            for e in s.execute(
                select(EventRow)
                .where(EventRow.account_id == account_id, EventRow.type == kind)
                .order_by(EventRow.seq)
            ).scalars()
        ]
    )


def _stored_files(services: Services) -> list[str]:
    root = services.settings.data_dir / "attachments"
    return sorted(str(p) for p in root.rglob("*") if p.is_file())


def _timeline_item(m: Message) -> dict[str, Any]:
    return {**message_json(m), "channel": "twilio_whatsapp"}
