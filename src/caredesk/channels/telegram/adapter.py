"""Telegram Bot API webhooks: the secret-token header, one update per request, deduped on update_id."""

from __future__ import annotations

from typing import Any

from caredesk.channels.base import InboxInfo, Malformed, Parsed, Rejected, WebhookRequest
from caredesk.channels.meta import as_dict, as_list, load_json
from caredesk.conversations.inbound import Inbound
from caredesk.platform.security import constant_time_equal


class TelegramAdapter:
    channels = ("telegram",)

    def verify(self, inbox: InboxInfo, req: WebhookRequest) -> None:
        # setWebhook(secret_token=...) makes Telegram send it back in this header on every update.
        expected = str(inbox.config.get("secret_token") or "")
        if not expected:
            raise Rejected("this inbox has no Telegram secret_token configured", status=403)
        got = req.header("x-telegram-bot-api-secret-token")
        if not got:
            raise Rejected("X-Telegram-Bot-Api-Secret-Token header is missing", status=401)
        if not constant_time_equal(got, expected):
            raise Rejected("X-Telegram-Bot-Api-Secret-Token does not match")

    def parse(self, inbox: InboxInfo, req: WebhookRequest) -> Parsed:
        update = as_dict(load_json(req.body), "the body")
        update_id = update.get("update_id")
        if not isinstance(update_id, int):
            raise Malformed("update_id must be an integer")
        out = Parsed(delivery_id=f"tg:{update_id}")
        m = update.get("message") or update.get("edited_message")
        if isinstance(update.get("callback_query"), dict):
            cq = update["callback_query"]
            msg = as_dict(cq.get("message") or {}, "callback_query.message")
            chat = as_dict(msg.get("chat") or cq.get("from") or {}, "chat")
            out.inbound.append(
                self._inbound(
                    inbox,
                    chat,
                    as_dict(cq.get("from") or {}, "from"),
                    str(cq.get("data") or ""),
                    f"cb:{cq.get('id')}",
                    {"callback_data": cq.get("data")},
                    req,
                )
            )
            return out
        if m is None:
            return out  # other update kinds (polls, member changes): acknowledged, nothing to store
        m = as_dict(m, "message")
        chat = as_dict(m.get("chat"), "message.chat")
        meta: dict[str, Any] = {}
        text = str(m.get("text") or m.get("caption") or "")
        if m.get("photo"):
            sizes = [p for p in as_list(m.get("photo"), "photo") if isinstance(p, dict)]
            biggest = sizes[-1] if sizes else {}
            meta["media"] = (
                [{"type": "photo", "file_id": biggest.get("file_id"), "file_size": biggest.get("file_size")}]
                if sizes
                else []
            )
            text = text or "[photo]"
        for kind in ("document", "voice", "audio", "video", "sticker"):
            if isinstance(m.get(kind), dict):
                f = m[kind]
                meta.setdefault("media", []).append(
                    {
                        "type": kind,
                        "file_id": f.get("file_id"),
                        "file_name": f.get("file_name"),
                        "mime_type": f.get("mime_type"),
                        "file_size": f.get("file_size"),
                    }
                )
                text = text or f"[{kind}]"
        if "edited_message" in update:
            meta["edited"] = True
        if not isinstance(m.get("message_id"), int):
            raise Malformed("message.message_id must be an integer")
        suffix = f":e{m.get('edit_date')}" if "edited_message" in update else ""
        out.inbound.append(
            self._inbound(
                inbox,
                chat,
                as_dict(m.get("from") or {}, "from"),
                text or "[message]",
                f"{chat.get('id')}:{m['message_id']}{suffix}",
                meta,
                req,
            )
        )
        return out

    @staticmethod
    def _inbound(
        inbox: InboxInfo,
        chat: dict[str, Any],
        sender: dict[str, Any],
        text: str,
        mid: str,
        meta: dict[str, Any],
        req: WebhookRequest,
    ) -> Inbound:
        chat_id = chat.get("id")
        if not isinstance(chat_id, int):
            raise Malformed("chat.id must be an integer")
        name = " ".join(str(sender[k]) for k in ("first_name", "last_name") if sender.get(k))
        return Inbound(
            account_id=inbox.account_id,
            inbox_id=inbox.id,
            identity_kind="telegram",
            identity_value=str(chat_id),
            identity_verified=True,
            text=text,
            channel_message_id=mid,
            contact_name=name or None,
            meta={"provider": "telegram", **meta},
            raw_body=req.body.decode("utf-8"),
            raw_content_type=req.header("content-type"),
        )
