"""The API channel's way out: agent replies are POSTed to the business's URL, Standard-Webhooks signed.

The job's idempotency key is the `webhook-id`, which the Standard Webhooks spec makes the receiver's
dedupe key: a retried delivery is recognisably the same message. Without a `webhook_url` the reply
is only streamed (the business reads it from the API), like web chat.
"""

from __future__ import annotations

import orjson

from caredesk.channels.api import standard_webhooks
from caredesk.channels.base import RateLimit, provider_call
from caredesk.conversations.delivery import Outbound, Receipt
from caredesk.platform.jobs import PermanentFailure


class ApiSender:
    sends_files = True  # the webhook lists the files with their download links

    def __init__(self, per_second: float = 50.0) -> None:
        self.limit = RateLimit(per_second)

    async def send(self, msg: Outbound, idempotency_key: str) -> Receipt:
        url = msg.inbox_config.get("webhook_url")
        if not url:
            return Receipt(channel_message_id=None, status="sent")
        secret = str(msg.inbox_config.get("webhook_secret") or "")
        if not secret:
            raise PermanentFailure("the API inbox has a webhook_url but no webhook_secret")
        body = orjson.dumps(
            {
                "type": "message.created",
                "data": {
                    "message_id": msg.message_id,
                    "conversation_id": msg.conversation_id,
                    "conversation_token": msg.conversation_token,
                    "to": msg.identities,
                    "text": msg.content,
                    "subject": msg.subject,
                    "attachments": [
                        {k: a.get(k) for k in ("filename", "content_type", "size", "url")}
                        for a in msg.attachments
                    ],
                },
            }
        )
        await self.limit.acquire(f"api:{msg.inbox_id}")
        headers = {
            "content-type": "application/json",
            **standard_webhooks.headers_for(secret, idempotency_key, body),
        }
        await provider_call("POST", str(url), content=body, headers=headers)
        return Receipt(channel_message_id=f"out:{idempotency_key}", status="sent")
