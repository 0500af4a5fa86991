"""S6: every provider payload normaliser, fuzzed with hypothesis: Twilio forms (SMS, WhatsApp, statuses),
WhatsApp Cloud, Messenger, Telegram, the API channel, email MIME, and the signature checks. Only the
declared errors come out (`Malformed` from a parser, `Rejected` from a signature check), never another
exception; and what a parser accepts can be stored on any database (ids and addresses fit their columns,
no NUL characters for PostgreSQL's text).

Inputs are arbitrary bytes, arbitrary JSON, and real recorded payloads with parts replaced, dropped or
added, which reach much deeper into each parser than random bytes do.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caredesk.channels.api import standard_webhooks
from caredesk.channels.api.adapter import ApiAdapter
from caredesk.channels.base import (
    MAX_CHANNEL_ID,
    MAX_IDENTITY,
    InboxInfo,
    Malformed,
    Parsed,
    Rejected,
    WebhookRequest,
    check_inbound,
    checked,
)
from caredesk.channels.email.parse import parse_email
from caredesk.channels.form import parse_form
from caredesk.channels.messenger.adapter import MessengerAdapter
from caredesk.channels.meta import hub_challenge, verify_hub_signature
from caredesk.channels.telegram.adapter import TelegramAdapter
from caredesk.channels.twilio.adapter import TwilioAdapter
from caredesk.channels.whatsapp_cloud.adapter import WhatsAppCloudAdapter
from caredesk.contacts.identities import IDENTITY_KINDS
from caredesk.conversations.inbound import Inbound
from tests.channels.helpers import FIXTURES, fixture

# CAREDESK_FUZZ_EXAMPLES=5000 for a deeper run than CI's.
FUZZ = settings(
    max_examples=int(os.environ.get("CAREDESK_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
FORM = {"content-type": "application/x-www-form-urlencoded"}
JSON = {"content-type": "application/json"}

# Strings that have broken parsers before: digits that are not ASCII, huge numbers, prefixes alone,
# NUL, lone surrogates are impossible in JSON from orjson, so control characters and long runs instead.
TRICKY = st.sampled_from(
    [
        "",
        " ",
        "²",
        "١٢٣",
        "9" * 40,
        "-1",
        "1e400",
        "+",
        "whatsapp:",
        "whatsapp:+",
        "tel:",
        "\x00",
        "a\x00b",
        "x" * 600,
        "@",
        "a@",
        "@b",
        "a@b",
        "=?utf-8?q?=ZZ?=",
        "<>",
        "0",
        "true",
        "null",
    ]
)
TEXT = st.one_of(st.text(max_size=40), TRICKY)
LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
JSON_VALUE = st.recursive(
    LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


@st.composite
def mutated(draw: st.DrawFn, doc: Any) -> Any:
    """A recorded payload with parts replaced by any JSON value, keys dropped and keys/items added."""

    def walk(node: Any) -> Any:
        roll = draw(st.integers(0, 11))
        if roll == 0:
            return draw(JSON_VALUE)
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                if draw(st.integers(0, 9)) == 0:
                    continue
                out[k] = walk(v)
            if draw(st.integers(0, 7)) == 0:
                out[draw(TEXT)] = draw(JSON_VALUE)
            return out
        if isinstance(node, list):
            items = [walk(v) for v in node]
            if draw(st.integers(0, 5)) == 0:
                items.append(walk(node[0]) if node and draw(st.booleans()) else draw(JSON_VALUE))
            return items
        if isinstance(node, str) and roll == 1:
            return draw(TEXT)
        if isinstance(node, int | float) and not isinstance(node, bool) and roll == 1:
            return draw(st.one_of(st.integers(min_value=-(2**63), max_value=2**63 - 1), TEXT))
        return node

    return walk(doc)


def _doc(name: str) -> Any:
    return json.loads(fixture(name))


# Payload shapes the recorded fixtures do not have.
TELEGRAM_MORE = [
    {
        "update_id": 1,
        "callback_query": {
            "id": "4382bfdwdsb323b2d9",
            "from": {"id": 5, "first_name": "A"},
            "data": "opt-1",
            "message": {"message_id": 7, "chat": {"id": 5}},
        },
    },
    {
        "update_id": 2,
        "edited_message": {"message_id": 3, "edit_date": 9, "chat": {"id": 5}, "text": "fixed"},
    },
    {
        "update_id": 3,
        "message": {
            "message_id": 4,
            "chat": {"id": 5},
            "caption": "look",
            "photo": [{"file_id": "a"}, {"file_id": "b"}],
            "document": {"file_id": "d", "file_name": "x.pdf", "mime_type": "application/pdf"},
        },
    },
]
MESSENGER_MORE = {
    "object": "page",
    "entry": [
        {
            "messaging": [
                {"sender": {"id": "1"}, "postback": {"title": "Start", "payload": "GET_STARTED"}},
                {
                    "sender": {"id": "1"},
                    "message": {
                        "mid": "m1",
                        "attachments": [{"type": "image", "payload": {"url": "https://x"}}],
                        "quick_reply": {"payload": "Q"},
                    },
                },
                {"sender": {"id": "1"}, "message": {"mid": "m2", "is_echo": True}},
                {"sender": {"id": "1"}, "delivery": {"watermark": 1}},
            ]
        }
    ],
}
WHATSAPP_TYPES = ["text", "image", "interactive", "button", "location", "reaction", "contacts", "order", ""]


def _whatsapp_more() -> list[Any]:
    msgs = [
        {"from": "16505551234", "id": f"wamid.{t}", "timestamp": "1750025135", "type": t}
        for t in WHATSAPP_TYPES
    ]
    msgs[1]["image"] = {"id": "1", "mime_type": "image/jpeg", "caption": "c"}
    msgs[2]["interactive"] = {"type": "list_reply", "list_reply": {"id": "x", "title": "X"}}
    msgs[3]["button"] = {"text": "Yes", "payload": "y"}
    msgs[4]["location"] = {"latitude": 1.5, "longitude": 2, "name": "Home", "address": "Street 1"}
    msgs[5]["reaction"] = {"emoji": "+1", "message_id": "wamid.x"}
    msgs[6]["contacts"] = [{"name": {"formatted_name": "Bo"}}]
    return [
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "contacts": [{"wa_id": "16505551234", "profile": {"name": "S"}}],
                                "messages": msgs,
                                "statuses": [
                                    {
                                        "id": "wamid.OUT",
                                        "status": "failed",
                                        "errors": [{"code": 131047, "title": "Re-engagement message"}],
                                    }
                                ],
                            },
                        }
                    ]
                }
            ],
        }
    ]


def _inbox(channel: str, **config: Any) -> InboxInfo:
    return InboxInfo(1, 1, channel, "tok", config, "Fuzz inbox")


def _req(
    body: bytes, headers: dict[str, str] | None = None, query: dict[str, str] | None = None
) -> WebhookRequest:
    return WebhookRequest(
        "POST",
        "http://127.0.0.1:8000/webhooks/x/tok",
        headers or JSON,
        body,
        query or {},
        ("http://testserver/x",),
    )


def assert_storable(inbound: Inbound) -> None:
    assert inbound.identity_kind in IDENTITY_KINDS
    assert isinstance(inbound.identity_value, str) and 0 < len(inbound.identity_value) <= MAX_IDENTITY
    cmid = inbound.channel_message_id
    assert cmid is None or (isinstance(cmid, str) and len(cmid) <= MAX_CHANNEL_ID)
    strings = [inbound.identity_value, inbound.text, inbound.subject, inbound.raw_content_type, cmid or ""]
    strings += [inbound.html or "", inbound.contact_name or "", inbound.raw_body or ""]
    strings += [*inbound.reply_to_ids, inbound.conversation_token or ""]
    for value in strings:
        assert isinstance(value, str) and "\x00" not in value, repr(value)[:200]
    orjson.dumps(inbound.meta)  # the meta column takes it


def run(adapter: Any, inbox: InboxInfo, req: WebhookRequest) -> Parsed | None:
    """The webhook route's own sequence: parse, then the storage check; only `Malformed` may escape."""
    try:
        parsed = checked(adapter.parse(inbox, req))
    except Malformed:
        return None
    for item in parsed.inbound:
        assert_storable(item)
    for status in parsed.statuses:
        assert status.status in ("queued", "sent", "delivered", "read", "failed")
        assert isinstance(status.channel_message_id, str) and "\x00" not in status.channel_message_id
    return parsed


# ---- Twilio forms ---------------------------------------------------------------------------------

TWILIO_FIXTURES = [
    dict(parse_qsl(fixture(n).decode(), keep_blank_values=True))
    for n in (
        "twilio_sms_inbound.form",
        "twilio_whatsapp_inbound.form",
        "twilio_status_delivered.form",
        "twilio_status_undelivered.form",
    )
]


@st.composite
def twilio_forms(draw: st.DrawFn) -> bytes:
    base = dict(draw(st.sampled_from(TWILIO_FIXTURES)))
    for key in list(base):
        roll = draw(st.integers(0, 9))
        if roll == 0:
            del base[key]
        elif roll == 1:
            base[key] = draw(TEXT)
    extra = draw(
        st.dictionaries(
            st.sampled_from(
                [
                    "NumMedia",
                    "MediaUrl0",
                    "MediaContentType0",
                    "MediaUrl1",
                    "WaId",
                    "ProfileName",
                    "ErrorCode",
                    "MessageStatus",
                    "SmsStatus",
                    "Body",
                    "From",
                    "MessageSid",
                    "SmsSid",
                ]
            )
            | st.text(max_size=8),
            TEXT,
            max_size=4,
        )
    )
    base.update(extra)
    return urlencode(base).encode()


@FUZZ
@given(
    body=st.one_of(twilio_forms(), st.binary(max_size=300)),
    region=st.sampled_from([None, "US", "DE", "XX", ""]),
)
def test_twilio_form_parser(body: bytes, region: str | None) -> None:
    for channel in ("twilio_sms", "twilio_whatsapp"):
        run(TwilioAdapter(), _inbox(channel, default_region=region), _req(body, FORM))


@FUZZ
@given(body=st.binary(max_size=400))
def test_form_decoder(body: bytes) -> None:
    try:
        pairs = parse_form(body)
    except Malformed:
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in pairs)


# ---- JSON providers -------------------------------------------------------------------------------


def _json_bodies(seeds: list[Any]) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.sampled_from(seeds).flatmap(mutated).map(lambda d: json.dumps(d).encode()),
        JSON_VALUE.map(lambda d: json.dumps(d).encode()),
        st.binary(max_size=200),
    )


@FUZZ
@given(
    body=_json_bodies(
        [_doc("whatsapp_cloud_text.json"), _doc("whatsapp_cloud_mixed.json"), *_whatsapp_more()]
    )
)
def test_whatsapp_cloud_parser(body: bytes) -> None:
    run(WhatsAppCloudAdapter(), _inbox("whatsapp_cloud"), _req(body))


@FUZZ
@given(body=_json_bodies([_doc("messenger_message.json"), MESSENGER_MORE]))
def test_messenger_parser(body: bytes) -> None:
    run(MessengerAdapter(), _inbox("messenger"), _req(body))


@FUZZ
@given(body=_json_bodies([_doc("telegram_message.json"), *TELEGRAM_MORE]))
def test_telegram_parser(body: bytes) -> None:
    parsed = run(TelegramAdapter(), _inbox("telegram"), _req(body))
    if parsed is not None:
        assert parsed.delivery_id is not None and parsed.delivery_id.startswith("tg:")


API_MORE = [
    {"from": {"kind": "phone", "value": "+4915112345678"}, "text": "hi"},
    {
        "id": "x",
        "from": {"kind": "telegram", "value": "123"},
        "text": "hi",
        "subject": "s",
        "metadata": {"a": 1},
    },
]


@FUZZ
@given(
    body=_json_bodies([_doc("api_message.json"), *API_MORE]),
    webhook_id=st.one_of(st.just("msg_1"), TEXT),
    region=st.sampled_from([None, "US", "XX"]),
)
def test_api_channel_parser(body: bytes, webhook_id: str, region: str | None) -> None:
    run(ApiAdapter(), _inbox("api", default_region=region), _req(body, {**JSON, "webhook-id": webhook_id}))


# ---- email MIME -----------------------------------------------------------------------------------

EMAILS = sorted(p.name for p in FIXTURES.glob("*.eml"))
HEADER_NAMES = [
    "From",
    "To",
    "Cc",
    "Subject",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-Disposition",
    "Auto-Submitted",
    "Precedence",
    "List-Id",
    "MIME-Version",
    "Delivered-To",
]
HEADER_VALUES = st.one_of(
    TEXT.map(lambda t: t.replace("\r", " ").replace("\n", " ")),
    st.sampled_from(
        [
            "multipart/mixed; boundary=X",
            "multipart/alternative",
            "multipart/report; report-type=delivery-status",
            "text/html; charset=unknown-8bit",
            "text/plain; charset=utf-7",
            "base64",
            "quoted-printable",
            "=?utf-8?b?w6k=?= <a@b.c>",
            "=?iso-8859-1?q?caf=E9?=",
            "<a@b> <c@d>",
            "attachment; filename*=utf-8''%E2%82%AC.txt",
            "reply+abcdefgh12@shop.test",
            '"Weird, Name" <weird@example.org>',
        ]
    ),
)


class NullStorage:
    def put(self, account_id: int, filename: str, data: bytes) -> str:
        return f"{account_id}/{len(data)}"

    def open(self, key: str) -> bytes:  # pragma: no cover - not read here
        return b""


@st.composite
def emails(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 2))
    if kind == 0:  # a real mail with bytes changed, cut or inserted
        raw = bytearray(fixture(draw(st.sampled_from(EMAILS))))
        for _ in range(draw(st.integers(1, 6))):
            op = draw(st.integers(0, 2))
            i = draw(st.integers(0, max(0, len(raw) - 1)))
            if op == 0 and raw:
                raw[i] = draw(st.integers(0, 255))
            elif op == 1:
                del raw[i : i + draw(st.integers(1, 40))]
            else:
                raw[i:i] = draw(st.binary(max_size=20))
        return bytes(raw)
    if kind == 1:  # generated headers over a generated body, sometimes multipart
        headers = draw(st.lists(st.tuples(st.sampled_from(HEADER_NAMES), HEADER_VALUES), max_size=8))
        lines = [f"{k}: {v}" for k, v in headers]
        body = draw(st.text(max_size=200))
        if draw(st.booleans()):
            lines.append("Content-Type: multipart/mixed; boundary=B")
            part = draw(
                st.sampled_from(
                    ["text/plain", "text/html", "image/png", "message/rfc822", "multipart/alternative"]
                )
            )
            cte = draw(st.sampled_from(["7bit", "base64", "quoted-printable", "x-uuencode", "8bit"]))
            body = f"--B\r\nContent-Type: {part}\r\nContent-Transfer-Encoding: {cte}\r\nContent-Disposition: attachment; filename=a\r\n\r\n{body}\r\n--B--\r\n"
        return ("\r\n".join(lines) + "\r\n\r\n" + body).encode("utf-8", "surrogatepass")
    return draw(st.binary(max_size=400))


@FUZZ
@given(raw=emails(), rcpts=st.lists(TEXT, max_size=2))
def test_email_parser(raw: bytes, rcpts: list[str]) -> None:
    try:
        inbound = parse_email(_inbox("email"), raw, NullStorage(), rcpts)  # type: ignore[arg-type]
    except Malformed:
        return
    assert_storable(inbound)


# ---- signature checks: only `Rejected` ------------------------------------------------------------

HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=255), max_size=60)


@FUZZ
@given(
    body=st.binary(max_size=200),
    headers=st.dictionaries(
        st.sampled_from(
            [
                "x-twilio-signature",
                "x-hub-signature-256",
                "x-telegram-bot-api-secret-token",
                "webhook-id",
                "webhook-timestamp",
                "webhook-signature",
            ]
        ),
        st.one_of(HEADER_TEXT, st.sampled_from(["sha256=", "v1,", "v1,AAAA v2,x", "9" * 5000, "1_7", "١٢٣"])),
        max_size=6,
    ),
    query=st.dictionaries(
        st.sampled_from(["hub.mode", "hub.verify_token", "hub.challenge"]), HEADER_TEXT, max_size=3
    ),
)
def test_signature_checks_only_reject(body: bytes, headers: dict[str, str], query: dict[str, str]) -> None:
    req = _req(body, headers, query)
    checks = [
        lambda: TwilioAdapter().verify(_inbox("twilio_sms", auth_token="t"), req),
        lambda: verify_hub_signature(_inbox("whatsapp_cloud", app_secret="s"), req),
        lambda: hub_challenge(_inbox("messenger", verify_token="v"), req),
        lambda: TelegramAdapter().verify(_inbox("telegram", secret_token="s"), req),
        lambda: ApiAdapter().verify(
            _inbox("api", webhook_secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), req
        ),
        lambda: standard_webhooks.verify("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", headers, body),
    ]
    for check in checks:
        with contextlib.suppress(Rejected):
            check()


def test_storage_check_refuses_what_a_column_cannot_hold() -> None:
    def msg(**kw: Any) -> Inbound:
        base: dict[str, Any] = {
            "account_id": 1,
            "inbox_id": 1,
            "identity_kind": "email",
            "identity_value": "a@b.c",
            "text": "hi",
        }
        return Inbound(**{**base, **kw})

    with pytest.raises(Malformed):
        check_inbound(msg(channel_message_id="x" * (MAX_CHANNEL_ID + 1)))
    with pytest.raises(Malformed):
        check_inbound(msg(identity_value="a" * 400 + "@b.c"))
    cleaned = check_inbound(msg(text="a\x00b", contact_name="\x00", reply_to_ids=["ok", "y" * 600]))
    assert cleaned.text == "a\ufffdb" and cleaned.contact_name == "\ufffd" and cleaned.reply_to_ids == ["ok"]
