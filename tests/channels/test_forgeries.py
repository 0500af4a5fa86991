"""S1: 10,000 generated forgeries across every provider format: one byte changed in the body or in the
signature, a wrong secret, a missing header, a stale or future timestamp, and replays of genuine requests.
Every forgery is refused (401/403), every replay is answered as the duplicate it is, and not one row is
written anywhere (messages, raw payloads, contacts, conversations, identities, jobs, events, receipts).

All requests go through the real ASGI app in process (httpx.ASGITransport): the same middleware, routing,
inbox lookup and verification as over the network, without sockets.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import secrets
import string
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import sqlalchemy as sa

from caredesk.channels.api import standard_webhooks
from caredesk.channels.base import Malformed
from caredesk.channels.form import parse_form
from caredesk.channels.twilio.signature import twilio_signature
from caredesk.services import Services
from tests.channels.helpers import PUBLIC, fixture, make_inbox
from tests.conftest import AccountFixture

N = 10_000
SEED = 20_251_101
TABLES = (
    "messages",
    "raw_inbound",
    "contacts",
    "identities",
    "conversations",
    "jobs",
    "events",
    "channel_webhook_receipts",
)
B64 = string.ascii_letters + string.digits + "+/"
HEX = "0123456789abcdef"


@dataclass
class Format:
    name: str
    path: str
    body: bytes  # a genuine payload
    secret: str
    sig_header: str
    sign: Callable[[bytes, str], dict[str, str]]  # headers a genuine sender sends for (body, secret)
    new_secret: Callable[[random.Random], str]
    sig_alphabet: str
    sig_prefix: str = ""  # the part of the header that is not the signature itself ("sha256=", "v1,")
    body_signed: bool = True  # Telegram's header authenticates the sender, not the body
    form: bool = False
    timestamped: bool = False

    def kinds(self) -> list[str]:
        out = ["signature_byte", "wrong_secret", "missing_header", "empty_header", "replay"]
        if self.body_signed:
            out.append("body_byte")
        if self.timestamped:
            out += ["stale", "future", "replay_new_timestamp"]
        return out


def _twilio(path: str, token: str) -> Callable[[bytes, str], dict[str, str]]:
    def sign(body: bytes, secret: str) -> dict[str, str]:
        params = parse_qsl(body.decode(), keep_blank_values=True)
        return {
            "content-type": "application/x-www-form-urlencoded",
            "x-twilio-signature": twilio_signature(secret, PUBLIC + path, params),
        }

    return sign


def _hub(body: bytes, secret: str) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"content-type": "application/json", "x-hub-signature-256": "sha256=" + digest}


def _telegram(body: bytes, secret: str) -> dict[str, str]:
    return {"content-type": "application/json", "x-telegram-bot-api-secret-token": secret}


def _api(body: bytes, secret: str, ts: int | None = None, msg_id: str = "msg_s1_genuine") -> dict[str, str]:
    return {"content-type": "application/json", **standard_webhooks.headers_for(secret, msg_id, body, ts)}


def _token(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def formats(services: Services, account_id: int) -> list[Format]:
    tw_token, voice_token, meta_secret, tg_secret = (
        secrets.token_hex(16),
        secrets.token_hex(16),
        secrets.token_hex(16),
        "tg_" + secrets.token_urlsafe(24),
    )
    api_secret = standard_webhooks.new_secret()
    twilio_cfg = {"account_sid": "ACf00000000000000000000000000000aa", "from_number": "+14155238886"}
    _, tw = make_inbox(services, account_id, "twilio_sms", {**twilio_cfg, "auth_token": tw_token})
    _, vo = make_inbox(services, account_id, "voice", {"auth_token": voice_token})
    _, wa = make_inbox(services, account_id, "whatsapp_cloud", {"app_secret": meta_secret})
    _, ms = make_inbox(services, account_id, "messenger", {"app_secret": meta_secret})
    _, tg = make_inbox(services, account_id, "telegram", {"secret_token": tg_secret})
    _, api = make_inbox(services, account_id, "api", {"webhook_secret": api_secret})
    voice_body = urlencode(
        {
            "CallSid": "CA5f1c0a2b3c4d5e6f708192a3b4c5d6e7",
            "From": "+14158675310",
            "To": "+14155238886",
            "SpeechResult": "my parcel never came",
        }
    ).encode()
    hexsecret: Callable[[random.Random], str] = lambda r: _token(r, HEX, 32)  # noqa: E731
    tw_path, vo_path = f"/webhooks/twilio/{tw}", f"/webhooks/voice/{vo}?step=speech"
    return [
        Format(
            "twilio",
            tw_path,
            fixture("twilio_sms_inbound.form"),
            tw_token,
            "x-twilio-signature",
            _twilio(tw_path, tw_token),
            hexsecret,
            B64,
            form=True,
        ),
        Format(
            "voice",
            vo_path,
            voice_body,
            voice_token,
            "x-twilio-signature",
            _twilio(vo_path, voice_token),
            hexsecret,
            B64,
            form=True,
        ),
        Format(
            "whatsapp",
            f"/webhooks/whatsapp/{wa}",
            fixture("whatsapp_cloud_text.json"),
            meta_secret,
            "x-hub-signature-256",
            _hub,
            hexsecret,
            HEX,
            sig_prefix="sha256=",
        ),
        Format(
            "messenger",
            f"/webhooks/messenger/{ms}",
            fixture("messenger_message.json"),
            meta_secret,
            "x-hub-signature-256",
            _hub,
            hexsecret,
            HEX,
            sig_prefix="sha256=",
        ),
        Format(
            "telegram",
            f"/webhooks/telegram/{tg}",
            fixture("telegram_message.json"),
            tg_secret,
            "x-telegram-bot-api-secret-token",
            _telegram,
            lambda r: "tg_" + _token(r, string.ascii_letters + string.digits + "_-", 32),
            string.ascii_letters + string.digits,
            body_signed=False,
        ),
        Format(
            "api",
            f"/webhooks/api/{api}",
            fixture("api_message.json"),
            api_secret,
            "webhook-signature",
            _api,
            lambda r: "whsec_" + base64.b64encode(r.randbytes(24)).decode(),
            B64,
            sig_prefix="v1,",
            timestamped=True,
        ),
    ]


def _form_params(body: bytes) -> list[tuple[str, str]] | None:
    try:
        return sorted(parse_form(body))
    except Malformed:
        return None


def forge(fmt: Format, kind: str, rng: random.Random) -> tuple[bytes, dict[str, str]]:
    body = fmt.body
    headers = fmt.sign(body, fmt.secret)
    if kind == "body_byte":
        original = _form_params(body) if fmt.form else None
        while True:
            i = rng.randrange(len(body))
            new = body[:i] + bytes([rng.choice([b for b in range(256) if b != body[i]])]) + body[i + 1 :]
            # A form body may change bytes without changing what is signed (%2b vs %2B): not a forgery.
            if not fmt.form or _form_params(new) != original:
                return new, headers
    if kind == "signature_byte":
        sig = headers[fmt.sig_header]
        i = rng.randrange(len(fmt.sig_prefix), len(sig))
        old = sig[i]
        choice = rng.choice([c for c in fmt.sig_alphabet if c.lower() != old.lower()])
        headers[fmt.sig_header] = sig[:i] + choice + sig[i + 1 :]
        return body, headers
    if kind == "wrong_secret":
        return body, fmt.sign(body, fmt.new_secret(rng))
    if kind == "missing_header":
        drop = fmt.sig_header
        if fmt.timestamped:
            drop = rng.choice(["webhook-id", "webhook-timestamp", "webhook-signature"])
        del headers[drop]
        return body, headers
    if kind == "empty_header":
        headers[fmt.sig_header] = rng.choice(["", " ", fmt.sig_prefix])
        return body, headers
    if kind in ("stale", "future"):
        offset = rng.randint(standard_webhooks.TOLERANCE_SECONDS + 1, 10**7)
        ts = int(time.time()) + (offset if kind == "future" else -offset)
        return body, _api(body, fmt.secret, ts, f"msg_s1_{rng.randrange(10**9)}")
    if kind == "replay_new_timestamp":
        # A captured request replayed with a fresh timestamp, the captured signature kept.
        headers["webhook-timestamp"] = str(int(time.time()) + rng.randint(1, 200))
        return body, headers
    raise AssertionError(kind)


def _rows(session: Any) -> dict[str, int]:
    return {t: session.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}


async def test_ten_thousand_forgeries_rejected_and_nothing_written(
    client: httpx.AsyncClient, services: Services, account: AccountFixture
) -> None:
    rng = random.Random(SEED)
    fmts = formats(services, account.id)
    genuine: dict[str, tuple[bytes, dict[str, str]]] = {}
    for fmt in fmts:
        # Each format's genuine request is delivered once, before the baseline: its replays must then be
        # recognised as the same delivery and write nothing.
        body, headers = fmt.body, fmt.sign(fmt.body, fmt.secret)
        r = await client.post(fmt.path, content=body, headers=headers)
        assert r.status_code == 200, (fmt.name, r.status_code, r.text)
        genuine[fmt.name] = (body, headers)
    before = await services.db.read(_rows)
    assert before["messages"] >= len(fmts)

    outcomes: Counter[tuple[str, str, int]] = Counter()
    accepted: list[str] = []
    for i in range(N):
        fmt = fmts[i % len(fmts)]
        kind = rng.choice(fmt.kinds())
        if kind == "replay":
            body, headers = genuine[fmt.name]
        else:
            body, headers = forge(fmt, kind, rng)
        r = await client.post(fmt.path, content=body, headers=headers)
        outcomes[(fmt.name, kind, r.status_code)] += 1
        if kind == "replay":
            if r.status_code != 200:
                accepted.append(f"{fmt.name} replay answered {r.status_code}: {r.text[:200]}")
            elif r.headers["content-type"].startswith("application/json"):
                j = r.json()  # answered as the duplicate it is (Twilio and voice get TwiML, counted below)
                if not (j["replayed"] or j["duplicates"] == len(j["messages"]) > 0):
                    accepted.append(f"{fmt.name} replay was not recognised: {j}")
        elif r.status_code not in (401, 403):
            accepted.append(f"{fmt.name} {kind} answered {r.status_code}: {r.text[:200]} headers={headers}")
    after = await services.db.read(_rows)

    assert accepted == [], f"{len(accepted)} forgeries not refused:\n" + "\n".join(accepted[:20])
    assert after == before, f"rows written by forged or replayed requests: {before} -> {after}"
    assert sum(outcomes.values()) == N
    kinds_seen = {(f, k) for f, k, _ in outcomes}
    assert kinds_seen == {(f.name, k) for f in fmts for k in f.kinds()}, "a forgery kind was never generated"
    refused = sum(n for (_f, k, _s), n in outcomes.items() if k != "replay")
    assert refused > 0.75 * N
