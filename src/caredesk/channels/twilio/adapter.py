"""Twilio Programmable Messaging webhooks (SMS and WhatsApp): inbound messages and status callbacks."""

from __future__ import annotations

from typing import Any

from fastapi.responses import Response

from caredesk.channels.base import (
    InboxInfo,
    IngestResult,
    Malformed,
    Parsed,
    Rejected,
    StatusUpdate,
    WebhookRequest,
)
from caredesk.channels.form import parse_form
from caredesk.channels.twilio.signature import twilio_signature_valid
from caredesk.contacts.identities import normalize_phone
from caredesk.conversations.inbound import Inbound
from caredesk.platform.errors import Invalid

# Twilio's MessageStatus values -> ours. "received"/"receiving" describe inbound messages.
STATUS_MAP = {
    "accepted": "queued",
    "scheduled": "queued",
    "queued": "queued",
    "sending": "queued",
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "undelivered": "failed",
    "failed": "failed",
    "canceled": "failed",
}
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
MAX_MEDIA = 10


def phone_identity(value: str, region: str | None) -> str:
    try:
        return normalize_phone(value, region)
    except Invalid as exc:
        raise Malformed(exc.detail) from exc


class TwilioAdapter:
    channels = ("twilio_sms", "twilio_whatsapp")

    def verify(self, inbox: InboxInfo, req: WebhookRequest) -> None:
        token = str(inbox.config.get("auth_token") or "")
        if not token:
            raise Rejected("this inbox has no Twilio auth token configured", status=403)
        signature = req.header("x-twilio-signature")
        if not signature:
            raise Rejected("X-Twilio-Signature header is missing", status=401)
        try:
            params = parse_form(req.body)
        except Malformed as exc:
            raise Rejected(f"cannot check the signature: {exc}") from exc
        urls = (
            [str(inbox.config["webhook_url"])]
            if inbox.config.get("webhook_url")
            else [req.url, *req.alt_urls]
        )
        if not twilio_signature_valid(token, signature, urls, params):
            raise Rejected("X-Twilio-Signature does not match")

    def parse(self, inbox: InboxInfo, req: WebhookRequest) -> Parsed:
        p = dict(parse_form(req.body))
        sid = p.get("MessageSid") or p.get("SmsSid") or ""
        if not sid:
            raise Malformed("MessageSid is missing")
        status = (p.get("MessageStatus") or p.get("SmsStatus") or "").lower()
        if status and status not in ("received", "receiving") and "Body" not in p:
            ours = STATUS_MAP.get(status)
            if ours is None:
                raise Malformed(f"unknown MessageStatus {status!r}")
            err = p.get("ErrorCode")
            return Parsed(statuses=[StatusUpdate(sid, ours, f"Twilio error {err}" if err else None)])
        sender = p.get("From", "")
        if not sender:
            raise Malformed("From is missing")
        whatsapp = sender.lower().startswith("whatsapp:") or inbox.channel == "twilio_whatsapp"
        region = inbox.config.get("default_region")
        value = phone_identity(sender, str(region) if region else None)
        media = self._media(p)
        meta: dict[str, Any] = {"provider": "twilio", "to": p.get("To", "")}
        if media:
            meta["media"] = media
        if p.get("WaId"):
            meta["wa_id"] = p["WaId"]
        text = p.get("Body", "")
        if not text and not media:
            raise Malformed("a message needs a Body or media")
        return Parsed(
            inbound=[
                Inbound(
                    account_id=inbox.account_id,
                    inbox_id=inbox.id,
                    identity_kind="whatsapp" if whatsapp else "phone",
                    identity_value=value,
                    text=text,
                    channel_message_id=sid,
                    contact_name=p.get("ProfileName") or None,
                    meta=meta,
                    raw_body=req.body.decode("utf-8"),
                    raw_content_type=req.header("content-type"),
                )
            ]
        )

    @staticmethod
    def _media(p: dict[str, str]) -> list[dict[str, str]]:
        try:
            n = min(MAX_MEDIA, int(p.get("NumMedia") or 0))
        except ValueError as exc:
            raise Malformed("NumMedia is not a number") from exc
        return [
            {"url": p[f"MediaUrl{i}"], "content_type": p.get(f"MediaContentType{i}", "")}
            for i in range(n)
            if p.get(f"MediaUrl{i}")
        ]

    def respond(self, inbox: InboxInfo, parsed: Parsed, result: IngestResult) -> Response:
        # Empty TwiML: Twilio sends nothing back on its own; our replies go out through the REST API.
        return Response(EMPTY_TWIML, media_type="text/xml")
