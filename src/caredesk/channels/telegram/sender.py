"""Outbound Telegram through the Bot API (`sendMessage`)."""

from __future__ import annotations

from caredesk.channels.base import RateLimit, provider_call
from caredesk.conversations.delivery import Outbound, Receipt
from caredesk.platform.jobs import PermanentFailure

DEFAULT_API = "https://api.telegram.org"


class TelegramSender:
    def __init__(self, per_second: float = 25.0) -> None:
        self.limit = RateLimit(per_second)  # Telegram allows about 30 messages/s per bot

    async def send(self, msg: Outbound, idempotency_key: str) -> Receipt:
        token = str(msg.inbox_config.get("bot_token") or "")
        chat = msg.identities.get("telegram")
        if not token:
            raise PermanentFailure("the Telegram inbox needs bot_token")
        if not chat:
            raise PermanentFailure("the contact has no Telegram chat")
        await self.limit.acquire(f"tg:{msg.inbox_id}")
        base = str(msg.inbox_config.get("api_base") or DEFAULT_API).rstrip("/")
        resp = await provider_call(
            "POST", f"{base}/bot{token}/sendMessage", json={"chat_id": int(chat), "text": msg.content}
        )
        result = resp.json().get("result") or {}
        mid = result.get("message_id")
        return Receipt(channel_message_id=f"{chat}:{mid}:out" if mid is not None else None, status="sent")
