"""Linking a new identity to the contact who may already own it: verified on both sides joins the
contact, anything else is a suggestion (once per pair), never across accounts."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from caredesk.contacts import linking
from caredesk.contacts.actions import add_identity, resolve_identity
from caredesk.contacts.models import Contact, Identity, LinkSuggestion
from caredesk.platform.audit import AuditEntry
from caredesk.platform.events import EventRow
from caredesk.services import Services
from tests.conftest import AccountFixture

pytestmark = pytest.mark.postgres

NUMBER = "+4915112345678"


def resolve(services: Services, account_id: int, kind: str, value: str, verified: bool) -> tuple[int, bool]:
    return services.db.write_sync(
        lambda s: resolve_identity(s, account_id, kind, value, name=f"{kind} person", verified=verified)
    )


def suggestions(services: Services, account_id: int) -> list[LinkSuggestion]:
    return services.db.read_sync(
        lambda s: list(
            s.execute(
                select(LinkSuggestion)
                .where(LinkSuggestion.account_id == account_id)
                .order_by(LinkSuggestion.id)
            ).scalars()
        )
    )


def identities(services: Services, contact_id: int) -> list[tuple[str, str, bool]]:
    return services.db.read_sync(
        lambda s: [
            (i.kind, i.value, i.verified)
            for i in s.execute(
                select(Identity).where(Identity.contact_id == contact_id).order_by(Identity.id)
            ).scalars()
        ]
    )


def event_types(services: Services, account_id: int) -> list[str]:
    return services.db.read_sync(
        lambda s: list(
            s.execute(
                select(EventRow.type).where(EventRow.account_id == account_id).order_by(EventRow.seq)
            ).scalars()
        )
    )


def contacts_count(services: Services, account_id: int) -> int:
    return services.db.read_sync(
        lambda s: s.execute(
            select(func.count()).select_from(Contact).where(Contact.account_id == account_id)
        ).scalar_one()
    )


def test_verified_phone_and_verified_whatsapp_are_one_contact(
    services: Services, account: AccountFixture
) -> None:
    first, created = resolve(services, account.id, "phone", NUMBER, verified=True)
    assert created
    again, created = resolve(services, account.id, "whatsapp", NUMBER, verified=True)
    assert (again, created) == (first, False)
    assert identities(services, first) == [("phone", NUMBER, True), ("whatsapp", NUMBER, True)]
    assert contacts_count(services, account.id) == 1
    assert suggestions(services, account.id) == []
    assert "contact.identity_linked" in event_types(services, account.id)
    linked = services.db.read_sync(
        lambda s: s.execute(
            select(AuditEntry).where(
                AuditEntry.account_id == account.id, AuditEntry.action == "contact.identity_linked"
            )
        ).scalar_one()
    )
    assert (
        linked.target_id == first and linked.data["kind"] == "whatsapp" and linked.data["matched"] == "phone"
    )
    assert NUMBER not in str(linked.data)  # no phone numbers in the audit log's data


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("phone", False), ("whatsapp", True)),  # SMS (spoofable), then WhatsApp Cloud
        (("whatsapp", True), ("phone", False)),  # the other way round
        (("whatsapp", False), ("phone", True)),  # Twilio WhatsApp, then a verified number
        (("phone", False), ("whatsapp", False)),  # Twilio SMS and Twilio WhatsApp
    ],
)
def test_unverified_on_either_side_is_only_a_suggestion(
    services: Services, account: AccountFixture, first: tuple[str, bool], second: tuple[str, bool]
) -> None:
    older, _ = resolve(services, account.id, first[0], NUMBER, verified=first[1])
    newer, created = resolve(services, account.id, second[0], NUMBER, verified=second[1])
    assert created and newer != older
    assert identities(services, older) == [(first[0], NUMBER, first[1])]
    assert identities(services, newer) == [(second[0], NUMBER, second[1])]
    [sug] = suggestions(services, account.id)
    assert (sug.contact_id, sug.other_contact_id, sug.status) == (older, newer, "open")
    assert sug.reason == f"same phone number {NUMBER} via SMS and WhatsApp"
    assert event_types(services, account.id).count("contact.link_suggested") == 1


def test_a_phone_typed_on_a_profile_is_suggested_never_merged(
    services: Services, account: AccountFixture
) -> None:
    def agent_contact(s: Session) -> int:
        c = Contact(
            account_id=account.id, name="Typed by an agent", phone=NUMBER, facts={}, attributes={}, labels=[]
        )
        s.add(c)
        s.flush()
        return c.id

    typed = services.db.write_sync(agent_contact)
    new, created = resolve(services, account.id, "whatsapp", NUMBER, verified=True)
    assert created and new != typed
    [sug] = suggestions(services, account.id)
    assert (sug.contact_id, sug.other_contact_id) == (typed, new)
    assert sug.reason == f"same phone number {NUMBER} via WhatsApp and on the contact's profile"


def test_an_email_on_a_profile_without_its_identity_is_suggested(
    services: Services, account: AccountFixture
) -> None:
    def agent_contact(s: Session) -> int:
        c = Contact(
            account_id=account.id, name="Ana", email="ana@example.com", facts={}, attributes={}, labels=[]
        )
        s.add(c)
        s.flush()
        return c.id

    typed = services.db.write_sync(agent_contact)
    new, created = resolve(services, account.id, "email", "ana@example.com", verified=False)
    assert created and new != typed
    [sug] = suggestions(services, account.id)
    assert (sug.contact_id, sug.other_contact_id, sug.reason) == (
        typed,
        new,
        "same email address ana@example.com",
    )
    # A second mail finds the identity: no new contact, no new suggestion.
    assert resolve(services, account.id, "email", "ana@example.com", verified=False) == (new, False)
    assert len(suggestions(services, account.id)) == 1


def test_a_pair_is_suggested_once_and_a_dismissed_pair_never_again(
    services: Services, account: AccountFixture
) -> None:
    older, _ = resolve(services, account.id, "phone", NUMBER, verified=False)
    newer, _ = resolve(services, account.id, "whatsapp", NUMBER, verified=False)
    [sug] = suggestions(services, account.id)

    def again(s: Session) -> list[int | None]:
        return [
            linking.suggest(s, account.id, newer, older, "again"),
            linking.suggest(s, account.id, older, newer, "and again"),
            linking.suggest(s, account.id, older, older, "itself"),
        ]

    assert services.db.write_sync(again) == [None, None, None]
    services.db.write_sync(
        lambda s: linking.dismiss_suggestion(s, account.id, ("agent", account.admin_id), sug.id)
    )
    assert services.db.write_sync(again) == [None, None, None]
    [still] = suggestions(services, account.id)
    assert (still.id, still.status) == (sug.id, "dismissed") and still.decided_at is not None


def test_other_accounts_never_match(
    services: Services, account: AccountFixture, other_account: AccountFixture
) -> None:
    mine, _ = resolve(services, account.id, "phone", NUMBER, verified=True)
    theirs, created = resolve(services, other_account.id, "whatsapp", NUMBER, verified=True)
    assert created and theirs != mine
    assert identities(services, mine) == [("phone", NUMBER, True)]

    def typed(s: Session) -> None:
        s.add(
            Contact(
                account_id=other_account.id,
                email="ana@example.com",
                phone="+4930123456",
                facts={},
                attributes={},
                labels=[],
            )
        )

    services.db.write_sync(typed)
    resolve(services, account.id, "email", "ana@example.com", verified=False)
    resolve(services, account.id, "whatsapp", "+4930123456", verified=True)
    assert suggestions(services, account.id) == [] and suggestions(services, other_account.id) == []


def test_a_contact_merged_away_is_not_a_candidate(services: Services, account: AccountFixture) -> None:
    def setup(s: Session) -> int:
        keep = Contact(account_id=account.id, name="Keep", facts={}, attributes={}, labels=[])
        s.add(keep)
        s.flush()
        gone = Contact(
            account_id=account.id, phone=NUMBER, merged_into_id=keep.id, facts={}, attributes={}, labels=[]
        )
        s.add(gone)
        s.flush()
        return keep.id

    services.db.write_sync(setup)
    _, created = resolve(services, account.id, "whatsapp", NUMBER, verified=True)
    assert created and suggestions(services, account.id) == []


def test_an_agent_adding_a_number_gets_a_suggestion(services: Services, account: AccountFixture) -> None:
    wa, _ = resolve(services, account.id, "whatsapp", NUMBER, verified=True)
    other, _ = resolve(services, account.id, "email", "ana@example.com", verified=False)

    def add(s: Session) -> Any:
        return add_identity(s, account.actor, other, "phone", "+49 151 12345678", verified=True)

    services.db.write_sync(add)
    [sug] = suggestions(services, account.id)
    assert (sug.contact_id, sug.other_contact_id) == (wa, other)
    # Never merged by itself, even with both verified: the agent decides.
    assert identities(services, wa) == [("whatsapp", NUMBER, True)]


def test_open_suggestions_name_the_other_contact_from_either_side(
    services: Services, account: AccountFixture
) -> None:
    older, _ = resolve(services, account.id, "phone", NUMBER, verified=False)
    newer, _ = resolve(services, account.id, "whatsapp", NUMBER, verified=True)
    from_older = services.db.read_sync(linking.open_suggestions, account.id, older)
    from_newer = services.db.read_sync(linking.open_suggestions, account.id, newer)
    assert [s["other_contact"]["id"] for s in from_older] == [newer]
    assert [s["other_contact"]["name"] for s in from_newer] == ["phone person"]
    assert from_older[0]["id"] == from_newer[0]["id"]
    assert services.db.read_sync(linking.open_suggestions, account.id, 987654321) == []
