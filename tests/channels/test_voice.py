"""Voice: no menu tree, speech understood into the timeline, honest wait estimate, callback instead of holding."""

from __future__ import annotations

from urllib.parse import urlencode

import httpx

from caredesk.channels.twilio.signature import twilio_signature
from caredesk.services import Services
from tests.channels.helpers import PUBLIC, counts, make_inbox, messages
from tests.conftest import AccountFixture

TOKEN = "voice-auth-token-0123456789abcdef"
CALL = {
    "CallSid": "CA5f1c0a2b3c4d5e6f708192a3b4c5d6e7",
    "AccountSid": "ACf00000000000000000000000000000aa",
    "From": "+14158675310",
    "To": "+14155238886",
    "CallStatus": "in-progress",
    "Direction": "inbound",
}


async def call(client: httpx.AsyncClient, token: str, step: str = "", **extra: str) -> httpx.Response:
    path = f"/webhooks/voice/{token}" + (f"?step={step}" if step else "")
    params = {**CALL, **extra}
    sig = twilio_signature(TOKEN, PUBLIC + path, params.items())
    return await client.post(
        path,
        content=urlencode(params),
        headers={"content-type": "application/x-www-form-urlencoded", "x-twilio-signature": sig},
    )


async def test_call_speech_wait_estimate_and_callback(
    client: httpx.AsyncClient, services: Services, account: AccountFixture
) -> None:
    inbox_id, token = make_inbox(
        services, account.id, "voice", {"auth_token": TOKEN, "avg_handle_minutes": 5}, name="Shop"
    )
    r = await call(client, token)
    assert (
        r.status_code == 200 and '<Gather input="speech"' in r.text and "what can we help you with?" in r.text
    )
    assert "press" not in r.text.lower()  # no menu tree
    r = await call(client, token, "speech", SpeechResult="My parcel never arrived", Confidence="0.93")
    assert r.status_code == 200
    assert "Nobody is free to answer right now" in r.text and "call back" in r.text and "<Enqueue>" in r.text
    [m] = messages(services, inbox_id)
    assert m.content == "My parcel never arrived" and m.meta["call_sid"] == CALL["CallSid"]
    # Twilio retries a webhook it got no answer to: the same speech result is stored once.
    await call(client, token, "speech", SpeechResult="My parcel never arrived", Confidence="0.93")
    assert counts(services, inbox_id)["messages"] == 1
    r = await call(client, token, "choice", Digits="1")
    assert "call you back" in r.text and "<Hangup/>" in r.text
    conv = (await client.get(f"/api/v1/conversations/{m.conversation_id}", headers=account.auth)).json()
    assert conv["priority"] == "urgent" and "callback" in conv["labels"]
    assert conv["custom_attributes"]["callback"]["number"] == "+14158675310"
    await call(
        client,
        token,
        "recording",
        RecordingUrl="https://api.twilio.com/2010-04-01/Accounts/AC/Recordings/RE1",
        RecordingDuration="42",
    )
    rec = messages(services, inbox_id)[-1]
    assert rec.conversation_id == m.conversation_id and rec.meta["recording_url"].endswith("/RE1")


async def test_wait_estimate_counts_people_ahead(
    client: httpx.AsyncClient, services: Services, account: AccountFixture
) -> None:
    from caredesk.channels.voice.adapter import wait_minutes

    assert wait_minutes(online=2, waiting=6, handle_minutes=4) == 12
    assert wait_minutes(online=0, waiting=0, handle_minutes=4) == 1


async def test_voice_forged_signature_writes_nothing(
    client: httpx.AsyncClient, services: Services, account: AccountFixture
) -> None:
    inbox_id, token = make_inbox(services, account.id, "voice", {"auth_token": TOKEN})
    path = f"/webhooks/voice/{token}?step=speech"
    r = await client.post(
        path,
        content=urlencode({**CALL, "SpeechResult": "hi"}),
        headers={"content-type": "application/x-www-form-urlencoded", "x-twilio-signature": "AAAA"},
    )
    assert r.status_code == 403
    assert counts(services, inbox_id)["messages"] == 0
