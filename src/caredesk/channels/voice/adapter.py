"""Voice through Twilio Voice webhooks, with no menu tree.

The caller is asked in plain words what they need (`<Gather input="speech">`); what they say becomes
a message in the same timeline as every other channel and is routed like one. When nobody is free
the caller hears an honest wait estimate and may ask for a callback instead of holding; the callback
becomes a high-priority open conversation labelled `callback` at the front of the queue.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape, quoteattr

from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from caredesk.accounts.models import Agent
from caredesk.channels.base import InboxInfo, Malformed, Parsed, Rejected, WebhookRequest, checked, ingest
from caredesk.channels.form import parse_form
from caredesk.channels.twilio.adapter import TwilioAdapter, phone_identity
from caredesk.conversations.inbound import Inbound
from caredesk.conversations.models import Conversation, ConversationLabel
from caredesk.platform.db import insert_ignoring_conflicts
from caredesk.platform.events import record_event
from caredesk.services import Services
from caredesk.web.problems import problem

CALLBACK_WORDS = ("call back", "callback", "call me", "ring me")


def twiml(*parts: str) -> Response:
    return Response(
        '<?xml version="1.0" encoding="UTF-8"?><Response>' + "".join(parts) + "</Response>",
        media_type="text/xml",
    )


def say(text: str, lang: str) -> str:
    return f"<Say language={quoteattr(lang)}>{escape(text)}</Say>"


def gather(inputs: str, lang: str, action: str, extra: str = "") -> str:
    return (
        f'<Gather input={quoteattr(inputs)}{extra} speechTimeout="auto" language={quoteattr(lang)} '
        f'action={quoteattr(action)} method="POST">'
    )


def queue_state(session: Session, account_id: int) -> tuple[int, int, int]:
    """(agents online with a free slot, agents online, conversations waiting without an assignee)."""
    online = list(
        session.execute(
            select(Agent.id, Agent.capacity).where(
                Agent.account_id == account_id, Agent.active.is_(True), Agent.availability == "online"
            )
        ).all()
    )
    loads = dict(
        session.execute(
            select(Conversation.assignee_id, func.count())
            .where(
                Conversation.account_id == account_id,
                Conversation.status == "open",
                Conversation.assignee_id.is_not(None),
            )
            .group_by(Conversation.assignee_id)
        ).all()
    )
    free = sum(1 for aid, cap in online if loads.get(aid, 0) < cap)
    waiting = int(
        session.execute(
            select(func.count()).where(
                Conversation.account_id == account_id,
                Conversation.status == "open",
                Conversation.assignee_id.is_(None),
            )
        ).scalar_one()
    )
    return free, len(online), waiting


def wait_minutes(online: int, waiting: int, handle_minutes: float) -> int:
    """People ahead x average handling time / people answering; never below one minute."""
    return max(1, round(waiting * handle_minutes / max(1, online)))


def request_callback(
    session: Session, account_id: int, inbox_id: int, phone: str, call_sid: str
) -> int | None:
    conv = session.execute(
        select(Conversation)
        .where(
            Conversation.account_id == account_id,
            Conversation.inbox_id == inbox_id,
            Conversation.status != "resolved",
        )
        .order_by(Conversation.id.desc())
    ).scalars()
    target = next((c for c in conv if c.custom_attributes.get("call_sid") == call_sid), None)
    if target is None:
        return None
    target.priority = "urgent"
    target.status = "open"
    target.custom_attributes = {
        **target.custom_attributes,
        "callback": {"number": phone, "call_sid": call_sid},
    }
    session.execute(
        insert_ignoring_conflicts(session, ConversationLabel.__table__, "conversation_id", "label").values(  # type: ignore[arg-type]
            conversation_id=target.id, label="callback", account_id=account_id
        )
    )
    session.flush()
    record_event(
        session,
        account_id,
        "conversation.updated",
        {"id": target.id, "change": "callback_requested", "priority": "urgent", "callback": phone},
        conversation_id=target.id,
        contact_id=target.contact_id,
    )
    return target.id


def tag_call(session: Session, conversation_id: int, call_sid: str) -> None:
    conv = session.get(Conversation, conversation_id)
    if conv is not None and conv.custom_attributes.get("call_sid") != call_sid:
        conv.custom_attributes = {**conv.custom_attributes, "call_sid": call_sid}


class VoiceAdapter:
    channels = ("voice",)

    def verify(self, inbox: InboxInfo, req: WebhookRequest) -> None:
        TwilioAdapter().verify(inbox, req)

    def parse(self, inbox: InboxInfo, req: WebhookRequest) -> Parsed:
        raise Malformed("voice requests are handled step by step by handle()")

    async def handle(self, svc: Services, inbox: InboxInfo, req: WebhookRequest) -> Response:
        try:
            self.verify(inbox, req)
        except Rejected as exc:
            return problem(exc.status, "Forbidden" if exc.status == 403 else "Unauthorized", exc.reason)
        try:
            p = dict(parse_form(req.body))
            call_sid, caller = p.get("CallSid", ""), p.get("From", "")
            if not call_sid or not caller:
                raise Malformed("CallSid and From are required")
            if len(call_sid) > 64:
                raise Malformed("CallSid is longer than 64 characters")
            phone = phone_identity(caller, inbox.config.get("default_region"))
            step = req.query.get("step", "")
            lang = str(inbox.config.get("language") or "en-US")
            base = req.url.split("?", 1)[0]
            if step == "speech":
                return await self._speech(svc, inbox, p, phone, base, lang)
            if step == "choice":
                return await self._choice(svc, inbox, p, phone, lang)
            if step == "recording":
                return await self._recording(svc, inbox, p, phone)
        except Malformed as exc:
            from caredesk.conversations.inbound import record_malformed

            await svc.db.write(
                record_malformed,
                inbox.account_id,
                inbox.id,
                req.body.decode("utf-8", "replace").replace("\x00", "\ufffd"),
                req.header("content-type"),
                str(exc),
            )
            return problem(400, "Bad request", f"malformed voice payload: {exc}")
        greeting = str(inbox.config.get("greeting") or f"Hello, you are through to {inbox.name or 'us'}.")
        return twiml(
            gather("speech", lang, base + "?step=speech"),
            say(f"{greeting} In a few words, what can we help you with?", lang),
            "</Gather>",
            say("Sorry, I did not catch that.", lang),
            f'<Redirect method="POST">{escape(base)}</Redirect>',
        )

    def _inbound(
        self, inbox: InboxInfo, p: dict[str, str], phone: str, text: str, suffix: str, meta: dict[str, Any]
    ) -> Parsed:
        call_sid = p["CallSid"]
        return checked(
            Parsed(
                inbound=[
                    Inbound(
                        account_id=inbox.account_id,
                        inbox_id=inbox.id,
                        identity_kind="phone",
                        identity_value=phone,
                        text=text,
                        channel_message_id=f"{call_sid}:{suffix}",
                        reply_to_ids=[f"{call_sid}:speech"] if suffix != "speech" else [],
                        new_thread=suffix == "speech",
                        meta={"provider": "twilio_voice", "call_sid": call_sid, **meta},
                    )
                ]
            )
        )

    async def _speech(
        self, svc: Services, inbox: InboxInfo, p: dict[str, str], phone: str, base: str, lang: str
    ) -> Response:
        text = p.get("SpeechResult", "").strip() or "[the caller said nothing we could understand]"
        parsed = self._inbound(inbox, p, phone, text, "speech", {"confidence": p.get("Confidence")})

        def w(s: Session) -> tuple[int, int, int]:
            res = ingest(s, inbox.id, inbox.account_id, parsed)
            if res.results:
                tag_call(s, res.results[0].conversation_id, p["CallSid"])
            return queue_state(s, inbox.account_id)

        free, online, waiting = await svc.db.write(w)
        agent_number = inbox.config.get("agent_number")
        if free and agent_number:
            return twiml(
                say("Thank you. Connecting you to someone who can help now.", lang),
                f"<Dial>{escape(str(agent_number))}</Dial>",
            )
        minutes = wait_minutes(
            online, max(0, waiting - 1), float(inbox.config.get("avg_handle_minutes") or 4)
        )
        wait = (
            "Nobody is free to answer right now"
            if online == 0
            else f"Everyone is busy; the wait is about {minutes} minute{'s' if minutes != 1 else ''}"
        )
        return twiml(
            gather("speech dtmf", lang, base + "?step=choice", ' numDigits="1"'),
            say(
                f"Thank you. {wait}. To get a call back at this number instead of waiting, "
                "say call back or press 1. To hold, stay on the line.",
                lang,
            ),
            "</Gather>",
            f"<Enqueue>{escape(str(inbox.config.get('queue_name') or 'support'))}</Enqueue>",
        )

    async def _choice(
        self, svc: Services, inbox: InboxInfo, p: dict[str, str], phone: str, lang: str
    ) -> Response:
        said = p.get("SpeechResult", "").lower()
        if p.get("Digits") == "1" or any(w in said for w in CALLBACK_WORDS):
            await svc.db.write(request_callback, inbox.account_id, inbox.id, phone, p["CallSid"])
            return twiml(
                say(
                    "Thank you. We will call you back at this number as soon as someone is free. Goodbye.",
                    lang,
                ),
                "<Hangup/>",
            )
        return twiml(
            say("Please hold; we will be with you shortly.", lang),
            f"<Enqueue>{escape(str(inbox.config.get('queue_name') or 'support'))}</Enqueue>",
        )

    async def _recording(self, svc: Services, inbox: InboxInfo, p: dict[str, str], phone: str) -> Response:
        url = p.get("RecordingUrl", "")
        if not url:
            return twiml()
        parsed = self._inbound(
            inbox,
            p,
            phone,
            "[call recording]",
            "recording",
            {"recording_url": url, "duration": p.get("RecordingDuration")},
        )
        await svc.db.write(ingest, inbox.id, inbox.account_id, parsed)
        return twiml()
