"""Outbound Messenger through the Send API (`/me/messages`)."""

from __future__ import annotations

from caredesk.channels.base import RateLimit, provider_call
from caredesk.conversations.delivery import Outbound, Receipt
from caredesk.platform.jobs import PermanentFailure

DEFAULT_API = "https://graph.facebook.com/v20.0"


class MessengerSender:
    def __init__(self, per_second: float = 20.0) -> None:
        self.limit = RateLimit(per_second)

    async def send(self, msg: Outbound, idempotency_key: str) -> Receipt:
        token = str(msg.inbox_config.get("page_access_token") or "")
        psid = msg.identities.get("messenger")
        if not token:
            raise PermanentFailure("the Messenger inbox needs page_access_token")
        if not psid:
            raise PermanentFailure("the contact has no Messenger id")
        await self.limit.acquire(f"fb:{msg.inbox_id}")
        base = str(msg.inbox_config.get("api_base") or DEFAULT_API).rstrip("/")
        resp = await provider_call(
            "POST",
            f"{base}/me/messages",
            params={"access_token": token},
            json={"recipient": {"id": psid}, "messaging_type": "RESPONSE", "message": {"text": msg.content}},
        )
        return Receipt(channel_message_id=str(resp.json().get("message_id") or "") or None, status="sent")
