"""Helpers for channel tests: inboxes with provider settings, row counts, signing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from caredesk.accounts.actions import create_inbox
from caredesk.accounts.actors import system_actor
from caredesk.conversations.models import Conversation, Message, RawInbound
from caredesk.services import Services

FIXTURES = Path(__file__).parent / "fixtures"
PUBLIC = "http://127.0.0.1:8000"  # the test settings' public_url: providers sign this URL


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def make_inbox(
    services: Services, account_id: int, channel: str, config: dict[str, Any], name: str = ""
) -> tuple[int, str]:
    def w(s: Any) -> tuple[int, str]:
        inbox = create_inbox(
            s, system_actor(account_id), name=name or f"{channel} inbox", channel=channel, config=config
        )
        return inbox.id, inbox.public_token

    return services.db.write_sync(w)


def counts(services: Services, inbox_id: int) -> dict[str, int]:
    def r(s: Any) -> dict[str, int]:
        return {
            "messages": s.execute(
                select(func.count()).select_from(Message).where(Message.inbox_id == inbox_id)
            ).scalar_one(),
            "conversations": s.execute(
                select(func.count()).select_from(Conversation).where(Conversation.inbox_id == inbox_id)
            ).scalar_one(),
            "raw": s.execute(
                select(func.count()).select_from(RawInbound).where(RawInbound.inbox_id == inbox_id)
            ).scalar_one(),
            "malformed": s.execute(
                select(func.count())
                .select_from(RawInbound)
                .where(RawInbound.inbox_id == inbox_id, RawInbound.status == "malformed")
            ).scalar_one(),
        }

    return services.db.read_sync(r)


def messages(services: Services, inbox_id: int) -> list[Message]:
    return services.db.read_sync(
        lambda s: list(
            s.execute(select(Message).where(Message.inbox_id == inbox_id).order_by(Message.id)).scalars()
        )
    )
