"""WhatsApp Cloud API (Meta) webhooks: every entry and change; messages of every type; statuses."""

from __future__ import annotations

import datetime as dt
from typing import Any

from caredesk.channels.base import InboxInfo, Malformed, Parsed, StatusUpdate, WebhookRequest
from caredesk.channels.meta import as_dict, as_list, hub_challenge, load_json, verify_hub_signature
from caredesk.channels.twilio.adapter import phone_identity
from caredesk.conversations.inbound import Inbound

STATUS_MAP = {"sent": "sent", "delivered": "delivered", "read": "read", "failed": "failed"}
MEDIA_TYPES = ("image", "audio", "video", "document", "sticker")


def message_text(m: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The text an agent reads, and what else the message carried (kept in meta)."""
    kind = str(m.get("type") or "")
    if kind == "text":
        return str(as_dict(m.get("text"), "text").get("body") or ""), {}
    if kind in MEDIA_TYPES:
        media = as_dict(m.get(kind), kind)
        info = {k: media[k] for k in ("id", "mime_type", "sha256", "filename") if k in media}
        return str(media.get("caption") or f"[{kind}]"), {"media": [{"type": kind, **info}]}
    if kind == "interactive":
        inter = as_dict(m.get("interactive"), "interactive")
        reply = as_dict(inter.get(str(inter.get("type") or "")) or {}, "interactive reply")
        return str(reply.get("title") or ""), {
            "interactive": {"type": inter.get("type"), "id": reply.get("id")}
        }
    if kind == "button":
        button = as_dict(m.get("button"), "button")
        return str(button.get("text") or ""), {"button": {"payload": button.get("payload")}}
    if kind == "location":
        loc = as_dict(m.get("location"), "location")
        label = ", ".join(str(loc[k]) for k in ("name", "address") if loc.get(k))
        return f"[location {loc.get('latitude')},{loc.get('longitude')}] {label}".strip(), {"location": loc}
    if kind == "reaction":
        reaction = as_dict(m.get("reaction"), "reaction")
        return f"[reaction {reaction.get('emoji', '')}]", {"reaction": reaction}
    if kind == "contacts":
        return "[shared contact]", {"contacts": as_list(m.get("contacts"), "contacts")}
    return f"[{kind or 'unsupported'} message]", {"unsupported": kind}


class WhatsAppCloudAdapter:
    channels = ("whatsapp_cloud",)

    def challenge(self, inbox: InboxInfo, req: WebhookRequest) -> str:
        return hub_challenge(inbox, req)

    def verify(self, inbox: InboxInfo, req: WebhookRequest) -> None:
        verify_hub_signature(inbox, req)

    def parse(self, inbox: InboxInfo, req: WebhookRequest) -> Parsed:
        payload = as_dict(load_json(req.body), "the body")
        if payload.get("object") != "whatsapp_business_account":
            raise Malformed("object must be whatsapp_business_account")
        out = Parsed()
        raw = req.body.decode("utf-8")
        for entry in as_list(payload.get("entry"), "entry"):
            for change in as_list(as_dict(entry, "entry").get("changes"), "changes"):
                change = as_dict(change, "change")
                if change.get("field") != "messages":
                    continue  # account updates, template status etc.: nothing for the inbox
                value = as_dict(change.get("value"), "value")
                names = {
                    str(c.get("wa_id")): str(as_dict(c.get("profile") or {}, "profile").get("name") or "")
                    for c in as_list(value.get("contacts"), "contacts")
                    if isinstance(c, dict)
                }
                for m in as_list(value.get("messages"), "messages"):
                    out.inbound.append(self._message(inbox, as_dict(m, "message"), names, raw, req))
                    raw = ""  # the raw payload is kept once, with the first message
                for st in as_list(value.get("statuses"), "statuses"):
                    out.statuses.append(self._status(as_dict(st, "status")))
        return out

    def _message(
        self, inbox: InboxInfo, m: dict[str, Any], names: dict[str, str], raw: str, req: WebhookRequest
    ) -> Inbound:
        sender, mid = str(m.get("from") or ""), str(m.get("id") or "")
        if not sender or not mid:
            raise Malformed("a message needs from and id")
        text, extra = message_text(m)
        meta: dict[str, Any] = {"provider": "whatsapp_cloud", "type": m.get("type"), **extra}
        if isinstance(m.get("context"), dict):
            meta["context"] = m["context"]
        sent_at = None
        stamp = str(m.get("timestamp") or "")
        # ASCII digits only ("²".isdigit() is true), and a year Python's datetime can hold.
        if stamp.isascii() and stamp.isdigit() and len(stamp) <= 11:
            sent_at = dt.datetime.fromtimestamp(int(stamp), dt.UTC).replace(tzinfo=None)
        return Inbound(
            account_id=inbox.account_id,
            inbox_id=inbox.id,
            identity_kind="whatsapp",
            identity_value=phone_identity("+" + sender.lstrip("+"), None),
            # WhatsApp has authenticated the number: a verified identity.
            identity_verified=True,
            text=text,
            channel_message_id=mid,
            contact_name=names.get(sender) or None,
            meta=meta,
            raw_body=raw or None,
            raw_content_type=req.header("content-type"),
            sent_at=sent_at,
        )

    @staticmethod
    def _status(st: dict[str, Any]) -> StatusUpdate:
        mid, status = str(st.get("id") or ""), str(st.get("status") or "")
        if not mid or status not in STATUS_MAP:
            raise Malformed(f"a status needs an id and one of {', '.join(STATUS_MAP)}")
        errors = [e for e in as_list(st.get("errors"), "errors") if isinstance(e, dict)]
        error = "; ".join(f"{e.get('code')}: {e.get('title')}" for e in errors) or None
        return StatusUpdate(mid, STATUS_MAP[status], error)
