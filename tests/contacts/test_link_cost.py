"""Linking costs nothing on the hot path: a message from a known sender runs exactly the statements it
ran before (the same as a kind that is never linked), and a new sender's contact costs one lookup.

Counted like tests/security/test_query_counts.py: every SQLAlchemy statement and every precompiled
statement run on the DB-API cursor (`caredesk.platform.db.Raw`)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import AccountFixture, post_inbound
from tests.security.test_query_counts import SQLCounter, sql

__all__ = ["sql"]

pytestmark = pytest.mark.postgres

LINKING = ("contact_link_suggestions", "AND phone = ", "AND email = ", "i.kind = :other")


async def _counted(sql: SQLCounter, client: httpx.AsyncClient, acc: AccountFixture, **kw: str) -> list[str]:
    sql.statements.clear()
    sql.on = True
    try:
        r = await post_inbound(client, acc, "again", **kw)
    finally:
        sql.on = False
    assert r.status_code == 201, r.text
    assert sql.statements, "nothing was counted: is the counter hooked to the engines?"
    return list(sql.statements)


async def test_a_known_sender_costs_no_extra_statement(
    client: httpx.AsyncClient, account: AccountFixture, sql: SQLCounter
) -> None:
    senders = {
        "whatsapp": "+491511234567",
        "phone": "+441632960961",
        "email": "known@example.com",
        "api": "crm-customer-42",  # never linked: the reference
    }
    for kind, value in senders.items():  # first messages: contacts and conversations exist afterwards
        r = await post_inbound(client, account, "first", msg_id=f"{kind}-0", sender=value, kind=kind)
        assert r.status_code == 201, r.text
    counted = {
        kind: await _counted(sql, client, account, msg_id=f"{kind}-1", sender=value, kind=kind)
        for kind, value in senders.items()
    }
    for kind, statements in counted.items():
        assert statements == counted["api"], f"{kind}: {statements} vs {counted['api']}"
        assert not [q for q in statements if any(k in q for k in LINKING)], statements


async def test_a_new_sender_costs_one_lookup(
    client: httpx.AsyncClient, account: AccountFixture, sql: SQLCounter
) -> None:
    warm = await post_inbound(client, account, "warm", msg_id="warm", sender="crm-0", kind="api")
    assert warm.status_code == 201
    reference = await _counted(sql, client, account, msg_id="api-new", sender="crm-1", kind="api")
    new_phone = await _counted(sql, client, account, msg_id="wa-new", sender="+491511234567", kind="whatsapp")
    lookups = [q for q in new_phone if any(k in q for k in LINKING)]
    assert len(lookups) == 1, lookups  # identities by (account, kind, value) UNION contacts by phone
    assert len(new_phone) == len(reference) + 1, (new_phone, reference)
    # A match adds the suggestion and its event: a cost paid once per pair, never per message.
    match = await _counted(sql, client, account, msg_id="sms-new", sender="+491511234567", kind="phone")
    assert len([q for q in match if "contact_link_suggestions" in q]) == 1
