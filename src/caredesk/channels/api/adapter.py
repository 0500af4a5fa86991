"""The API channel: a business posts its customers' messages from any system we do not support.

Requests are signed with the Standard Webhooks scheme using the inbox's `webhook_secret`; the body
is the same JSON as the authenticated inbound endpoint (`{"id", "from": {kind, value, name}, "text"}`).
"""

from __future__ import annotations

from pydantic import ValidationError

from caredesk.channels.api import standard_webhooks
from caredesk.channels.base import InboxInfo, Malformed, Parsed, Rejected, WebhookRequest
from caredesk.contacts.identities import normalize_identity
from caredesk.conversations.inbound import Inbound
from caredesk.platform.errors import Invalid
from caredesk.web.api.schemas import InboundIn


class ApiAdapter:
    channels = ("api",)

    def verify(self, inbox: InboxInfo, req: WebhookRequest) -> None:
        secret = str(inbox.config.get("webhook_secret") or "")
        if not secret:
            raise Rejected("this inbox has no webhook_secret configured", status=403)
        try:
            standard_webhooks.verify(secret, req.headers, req.body)
        except ValueError as exc:
            raise Rejected(str(exc), status=403) from exc

    def parse(self, inbox: InboxInfo, req: WebhookRequest) -> Parsed:
        try:
            body = InboundIn.model_validate_json(req.body)
        except ValidationError as exc:
            first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid"}
            where = ".".join(str(p) for p in first.get("loc", ()))
            raise Malformed(f"{where}: {first.get('msg')}" if where else str(first.get("msg"))) from exc
        try:
            value = normalize_identity(
                body.sender.kind, body.sender.value, inbox.config.get("default_region")
            )
        except Invalid as exc:
            raise Malformed(exc.detail) from exc
        webhook_id = req.header("webhook-id")
        return Parsed(
            # webhook-id is the sender's idempotency key: a replay within the tolerance writes nothing.
            delivery_id=f"wh:{webhook_id}",
            inbound=[
                Inbound(
                    account_id=inbox.account_id,
                    inbox_id=inbox.id,
                    identity_kind=body.sender.kind,
                    identity_value=value,
                    text=body.text,
                    channel_message_id=body.id or f"wh:{webhook_id}",
                    contact_name=body.sender.name,
                    subject=body.subject,
                    meta={"provider": "api", **({"metadata": body.metadata} if body.metadata else {})},
                    raw_body=req.body.decode("utf-8"),
                    raw_content_type=req.header("content-type"),
                )
            ],
        )
