"""Outbound WhatsApp through the Cloud API (Graph `/<phone_number_id>/messages`)."""

from __future__ import annotations

from typing import Any

from caredesk.channels.base import RateLimit, provider_call
from caredesk.channels.whatsapp_cloud.window import window_state
from caredesk.conversations.delivery import Outbound, Receipt
from caredesk.platform.jobs import PermanentFailure

DEFAULT_API = "https://graph.facebook.com/v20.0"


class WhatsAppCloudSender:
    def __init__(self, db: Any, per_second: float = 20.0) -> None:
        self.db = db
        self.limit = RateLimit(per_second)

    async def send(self, msg: Outbound, idempotency_key: str) -> Receipt:
        cfg = msg.inbox_config
        phone_id, token = str(cfg.get("phone_number_id") or ""), str(cfg.get("access_token") or "")
        if not phone_id or not token:
            raise PermanentFailure("the WhatsApp inbox needs phone_number_id and access_token")
        to = msg.identities.get("whatsapp")
        if not to:
            raise PermanentFailure("the contact has no WhatsApp number")
        template = msg.meta.get("template")
        body: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to.lstrip("+"),
        }
        if isinstance(template, dict) and template.get("name"):
            body |= {
                "type": "template",
                "template": {
                    "name": template["name"],
                    "language": {"code": template.get("language", "en_US")},
                    **({"components": template["components"]} if template.get("components") else {}),
                },
            }
        else:
            state = await self.db.read(window_state, msg.account_id, msg.conversation_id)
            if state is not None and not state["open"]:
                raise PermanentFailure(
                    "outside WhatsApp's 24-hour window: only an approved template can be sent"
                )
            body |= {"type": "text", "text": {"preview_url": False, "body": msg.content}}
        await self.limit.acquire(f"wa:{msg.inbox_id}")
        base = str(cfg.get("api_base") or DEFAULT_API).rstrip("/")
        resp = await provider_call(
            "POST", f"{base}/{phone_id}/messages", json=body, headers={"authorization": f"Bearer {token}"}
        )
        ids = [m.get("id") for m in (resp.json().get("messages") or []) if isinstance(m, dict)]
        return Receipt(channel_message_id=str(ids[0]) if ids else None, status="sent")
