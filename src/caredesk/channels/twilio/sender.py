"""Outbound SMS/WhatsApp through Twilio's REST API (Messages resource)."""

from __future__ import annotations

from caredesk.channels.base import CallbackUrls, RateLimit, provider_call
from caredesk.conversations.delivery import Outbound, Receipt
from caredesk.platform.jobs import PermanentFailure

DEFAULT_API = "https://api.twilio.com"


class TwilioSender:
    """Twilio documents no idempotency key for Messages: a retry after a lost answer may send twice.

    We narrow that window: a send is retried only on 429/5xx/timeouts, and the message's provider id
    is stored on the first success, so a later attempt of the same job sees it delivered and stops.
    """

    def __init__(
        self, whatsapp: bool, callbacks: CallbackUrls | None = None, per_second: float = 10.0
    ) -> None:
        self.whatsapp = whatsapp
        self.callbacks = callbacks
        self.limit = RateLimit(per_second)

    async def send(self, msg: Outbound, idempotency_key: str) -> Receipt:
        cfg = msg.inbox_config
        sid, token = str(cfg.get("account_sid") or ""), str(cfg.get("auth_token") or "")
        if not sid or not token:
            raise PermanentFailure("the Twilio inbox needs account_sid and auth_token")
        kind = "whatsapp" if self.whatsapp else "phone"
        to = msg.identities.get(kind) or (msg.identities.get("phone") if self.whatsapp else None)
        if not to:
            raise PermanentFailure(f"the contact has no {kind} number")
        prefix = "whatsapp:" if self.whatsapp else ""
        form: dict[str, str] = {"To": prefix + to, "Body": msg.content}
        if cfg.get("messaging_service_sid"):
            form["MessagingServiceSid"] = str(cfg["messaging_service_sid"])
        elif cfg.get("from_number"):
            frm = str(cfg["from_number"])
            form["From"] = frm if frm.startswith(prefix) else prefix + frm
        else:
            raise PermanentFailure("the Twilio inbox needs from_number or messaging_service_sid")
        callback = cfg.get("status_callback_url") or (
            await self.callbacks.url("twilio", msg.inbox_id) if self.callbacks else None
        )
        if callback:
            form["StatusCallback"] = str(callback)
        await self.limit.acquire(f"twilio:{msg.inbox_id}")
        base = str(cfg.get("api_base") or DEFAULT_API).rstrip("/")
        resp = await provider_call(
            "POST",
            f"{base}/2010-04-01/Accounts/{sid}/Messages.json",
            data=form,
            auth=(sid, token),
        )
        body = resp.json()
        return Receipt(channel_message_id=str(body.get("sid") or "") or None, status="sent")
