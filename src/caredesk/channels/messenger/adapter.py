"""Facebook Messenger webhooks (Meta's signature scheme): messages, postbacks, delivery and read."""

from __future__ import annotations

from typing import Any

from caredesk.channels.base import InboxInfo, Malformed, Parsed, WebhookRequest
from caredesk.channels.meta import as_dict, as_list, hub_challenge, load_json, verify_hub_signature
from caredesk.conversations.inbound import Inbound


class MessengerAdapter:
    channels = ("messenger",)

    def challenge(self, inbox: InboxInfo, req: WebhookRequest) -> str:
        return hub_challenge(inbox, req)

    def verify(self, inbox: InboxInfo, req: WebhookRequest) -> None:
        verify_hub_signature(inbox, req)

    def parse(self, inbox: InboxInfo, req: WebhookRequest) -> Parsed:
        payload = as_dict(load_json(req.body), "the body")
        if payload.get("object") != "page":
            raise Malformed("object must be page")
        out = Parsed()
        raw = req.body.decode("utf-8")
        for entry in as_list(payload.get("entry"), "entry"):
            for ev in as_list(as_dict(entry, "entry").get("messaging"), "messaging"):
                ev = as_dict(ev, "messaging event")
                psid = str(as_dict(ev.get("sender") or {}, "sender").get("id") or "")
                if not psid:
                    raise Malformed("a messaging event needs sender.id")
                if "message" in ev or "postback" in ev:
                    item = self._inbound(inbox, psid, ev, raw, req)
                    if item is not None:
                        out.inbound.append(item)
                        raw = ""
                # delivery/read carry watermarks, not message ids: our sends are marked "sent"
                # from the Send API answer, and a watermark cannot be matched without a scan.
        return out

    def _inbound(
        self, inbox: InboxInfo, psid: str, ev: dict[str, Any], raw: str, req: WebhookRequest
    ) -> Inbound | None:
        meta: dict[str, Any] = {"provider": "messenger"}
        if "message" in ev:
            m = as_dict(ev["message"], "message")
            if m.get("is_echo"):
                return None  # our own outgoing message, echoed back
            mid, text = str(m.get("mid") or ""), str(m.get("text") or "")
            atts = [a for a in as_list(m.get("attachments"), "attachments") if isinstance(a, dict)]
            if atts:
                meta["media"] = [
                    {"type": a.get("type"), "url": as_dict(a.get("payload") or {}, "payload").get("url")}
                    for a in atts
                ]
                text = text or " ".join(f"[{a.get('type')}]" for a in atts)
            if isinstance(m.get("quick_reply"), dict):
                meta["quick_reply"] = m["quick_reply"]
        else:
            pb = as_dict(ev["postback"], "postback")
            mid = str(pb.get("mid") or f"postback:{psid}:{ev.get('timestamp')}")
            text = str(pb.get("title") or pb.get("payload") or "")
            meta["postback"] = {"payload": pb.get("payload")}
        if not mid:
            raise Malformed("a message needs a mid")
        return Inbound(
            account_id=inbox.account_id,
            inbox_id=inbox.id,
            identity_kind="messenger",
            identity_value=psid,
            identity_verified=True,
            text=text,
            channel_message_id=mid,
            meta=meta,
            raw_body=raw or None,
            raw_content_type=req.header("content-type"),
        )
