"""The AI step in the real message pipeline: messages get their signals; spam is filed, not dropped."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from caredesk.ai.jobs import restore_from_spam
from caredesk.conversations.models import Conversation, Message
from caredesk.services import Services
from tests.conftest import AccountFixture, post_inbound


async def _messages(services: Services, account_id: int) -> list[Message]:
    def r(s: Any) -> list[Message]:
        stmt = select(Message).where(Message.account_id == account_id, Message.type == "incoming")
        return list(s.execute(stmt.order_by(Message.id)).scalars())

    return await services.db.read(r)


async def test_incoming_messages_are_annotated(
    client: Any, services: Services, account: AccountFixture
) -> None:
    assert services.worker is not None
    r = await post_inbound(client, account, "This is the third time I'm asking about order #88231!!")
    assert r.status_code in (200, 201), r.text
    await services.worker.run_until_idle()
    [msg] = await _messages(services, account.id)
    assert msg.signals["escalate"] is True and msg.signals["escalate_reason"] == "repeated_contact"
    assert msg.signals["slots"]["order_number"] == "88231"
    assert msg.signals["language"] == "en" and msg.spam is False

    def conv(s: Any) -> Conversation:
        return s.get(Conversation, msg.conversation_id)

    c = await services.db.read(conv)
    assert c.signals["escalate"] is True and c.signals["frustration"] > 0.5
    assert c.signals["sentiment_start"] == msg.signals["sentiment"]


async def test_spam_goes_to_the_spam_folder_and_can_be_restored(
    client: Any, services: Services, account: AccountFixture
) -> None:
    assert services.worker is not None
    spam = "WINNER!! You have won a £1000 prize. Txt CLAIM to 81010 now. T&Cs apply 18+"
    r = await post_inbound(client, account, spam, sender="promo@spam.example")
    assert r.status_code in (200, 201), r.text
    await services.worker.run_until_idle()
    [msg] = await _messages(services, account.id)
    assert msg.content == spam and msg.spam is True  # stored, flagged, not dropped
    assert await services.db.write(restore_from_spam, account.id, msg.id)
    [msg] = await _messages(services, account.id)
    assert msg.spam is False and msg.signals["spam_restored"] is True
