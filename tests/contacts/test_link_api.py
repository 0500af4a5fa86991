"""Link suggestions over the API: listed from either contact, accepted (= the merge, older contact
surviving, undoable) or dismissed (never again); account-scoped; and a verified WhatsApp Cloud sender
joins the contact whose verified number it is, end to end through the provider webhook."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import httpx
import pytest

from caredesk.services import Services
from tests.channels.helpers import fixture, make_inbox
from tests.conftest import AccountFixture, post_inbound

pytestmark = pytest.mark.postgres

PROBLEM = "application/problem+json"
APP_SECRET = "meta-app-secret-0123456789"


async def sms_then_whatsapp(client: httpx.AsyncClient, acc: AccountFixture) -> tuple[int, int]:
    """Two contacts for one number: an SMS-like message, then a WhatsApp one (both through the API
    channel, so neither identity is verified)."""
    sms = await post_inbound(client, acc, "hi by sms", msg_id="s1", sender="+49 151 1234567", kind="phone")
    wa = await post_inbound(
        client, acc, "hi on whatsapp", msg_id="w1", sender="+491511234567", kind="whatsapp"
    )
    assert sms.status_code == 201 and wa.status_code == 201, (sms.text, wa.text)
    older, newer = sms.json()["contact_id"], wa.json()["contact_id"]
    assert older != newer
    return older, newer


async def listed(client: httpx.AsyncClient, acc: AccountFixture, contact_id: int) -> list[dict[str, Any]]:
    r = await client.get(f"/api/v1/contacts/{contact_id}/link-suggestions", headers=acc.auth)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def timeline(client: httpx.AsyncClient, acc: AccountFixture, contact_id: int) -> list[str]:
    r = await client.get(f"/api/v1/contacts/{contact_id}/timeline", headers=acc.auth)
    assert r.status_code == 200, r.text
    return [m["content"] for m in r.json()["items"]]


async def test_accept_merges_into_the_older_contact_and_undo_reopens(
    client: httpx.AsyncClient, account: AccountFixture
) -> None:
    h = account.auth
    older, newer = await sms_then_whatsapp(client, account)
    [from_newer] = await listed(client, account, newer)
    [from_older] = await listed(client, account, older)
    assert from_newer["id"] == from_older["id"]
    assert from_newer["other_contact"]["id"] == older and from_older["other_contact"]["id"] == newer
    assert from_newer["reason"] == "same phone number +491511234567 via SMS and WhatsApp"
    assert from_newer["survivor_id"] == from_older["survivor_id"] == older
    sid = from_newer["id"]

    r = await client.post(f"/api/v1/contacts/link-suggestions/{sid}/accept", headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["status"], body["survivor_id"], body["merged_id"]) == ("accepted", older, newer)
    # One person, one timeline; the next WhatsApp message lands on it too.
    assert await timeline(client, account, older) == ["hi by sms", "hi on whatsapp"]
    again = await post_inbound(
        client, account, "still me", msg_id="w2", sender="+491511234567", kind="whatsapp"
    )
    assert again.json()["contact_id"] == older
    assert await listed(client, account, older) == []
    r = await client.post(f"/api/v1/contacts/link-suggestions/{sid}/accept", headers=h)
    assert r.status_code == 409 and r.headers["content-type"] == PROBLEM

    # Undo the merge: two contacts again, and the suggestion is open again for an agent to decide.
    r = await client.post(f"/api/v1/contacts/merges/{body['merge_id']}/undo", headers=h)
    assert r.status_code == 200, r.text
    assert await timeline(client, account, older) == ["hi by sms"]
    assert [s["id"] for s in await listed(client, account, newer)] == [sid]
    audit = (await client.get("/api/v1/audit", headers=h, params={"target_type": "contact"})).json()["items"]
    assert {"contact.merged", "contact.link_accepted", "contact.unmerged"} <= {e["action"] for e in audit}


async def test_a_manual_merge_settles_the_suggestion(
    client: httpx.AsyncClient, account: AccountFixture
) -> None:
    older, newer = await sms_then_whatsapp(client, account)
    [sug] = await listed(client, account, older)
    r = await client.post(
        "/api/v1/contacts/merge", headers=account.auth, json={"survivor_id": newer, "merged_id": older}
    )
    assert r.status_code == 201, r.text
    assert await listed(client, account, newer) == []
    r = await client.post(f"/api/v1/contacts/link-suggestions/{sug['id']}/dismiss", headers=account.auth)
    assert r.status_code == 409 and "accepted" in r.json()["detail"]


async def test_dismiss_is_final_for_the_pair(client: httpx.AsyncClient, account: AccountFixture) -> None:
    h = account.auth
    older, newer = await sms_then_whatsapp(client, account)
    [sug] = await listed(client, account, newer)
    r = await client.post(f"/api/v1/contacts/link-suggestions/{sug['id']}/dismiss", headers=h)
    assert r.status_code == 200 and r.json() == {"id": sug["id"], "status": "dismissed"}
    assert await listed(client, account, newer) == [] and await listed(client, account, older) == []
    # Both keep writing: still two people to the desk, and nothing is suggested again.
    await post_inbound(client, account, "more", msg_id="s2", sender="+491511234567", kind="phone")
    await post_inbound(client, account, "more wa", msg_id="w2", sender="+491511234567", kind="whatsapp")
    assert await listed(client, account, newer) == []
    r = await client.post(f"/api/v1/contacts/link-suggestions/{sug['id']}/dismiss", headers=h)
    assert r.status_code == 409
    assert await timeline(client, account, older) == ["hi by sms", "more"]


async def test_other_accounts_and_bad_ids_get_a_problem(
    client: httpx.AsyncClient, account: AccountFixture, other_account: AccountFixture
) -> None:
    older, newer = await sms_then_whatsapp(client, account)
    [sug] = await listed(client, account, newer)
    b = other_account.auth
    for method, url in (
        ("GET", f"/api/v1/contacts/{newer}/link-suggestions"),
        ("POST", f"/api/v1/contacts/link-suggestions/{sug['id']}/accept"),
        ("POST", f"/api/v1/contacts/link-suggestions/{sug['id']}/dismiss"),
        ("POST", "/api/v1/contacts/link-suggestions/987654321/accept"),
        ("GET", "/api/v1/contacts/987654321/link-suggestions"),
    ):
        r = await client.request(method, url, headers=b)
        assert r.status_code == 404 and r.headers["content-type"] == PROBLEM, (url, r.text)
        assert "+49" not in r.text
    for bad in ("abc", "-1", "9" * 25):
        r = await client.post(f"/api/v1/contacts/link-suggestions/{bad}/accept", headers=account.auth)
        assert 400 <= r.status_code < 500 and r.headers["content-type"] == PROBLEM, (bad, r.status_code)
    # Nothing changed for A.
    assert [s["id"] for s in await listed(client, account, older)] == [sug["id"]]


def _hub(body: bytes) -> dict[str, str]:
    sig = hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"content-type": "application/json", "x-hub-signature-256": "sha256=" + sig}


async def test_a_verified_whatsapp_sender_joins_the_contact_with_that_verified_number(
    client: httpx.AsyncClient, services: Services, account: AccountFixture
) -> None:
    _inbox, token = make_inbox(
        services,
        account.id,
        "whatsapp_cloud",
        {
            "app_secret": APP_SECRET,
            "verify_token": "v",
            "phone_number_id": "106540352242922",
            "access_token": "EAAG",
        },
    )
    h = account.auth
    known = (await client.post("/api/v1/contacts", headers=h, json={"name": "Sheena Nelson"})).json()
    r = await client.post(
        f"/api/v1/contacts/{known['id']}/identities",
        headers=h,
        json={"kind": "phone", "value": "+1 650 555 1234", "verified": True},
    )
    assert r.status_code == 201, r.text
    body = fixture("whatsapp_cloud_text.json")  # from wa_id 16505551234
    r = await client.post(f"/webhooks/whatsapp/{token}", content=body, headers=_hub(body))
    assert r.status_code == 200, r.text
    contact = (await client.get(f"/api/v1/contacts/{known['id']}", headers=h)).json()
    assert sorted((i["kind"], i["value"], i["verified"]) for i in contact["identities"]) == [
        ("phone", "+16505551234", True),
        ("whatsapp", "+16505551234", True),
    ]
    assert await timeline(client, account, known["id"]) == ["Does it come in another color?"]
    assert await listed(client, account, known["id"]) == []
    audit = (await client.get("/api/v1/audit", headers=h, params={"target_type": "contact"})).json()["items"]
    [linked] = [e for e in audit if e["action"] == "contact.identity_linked"]
    assert linked["target_id"] == known["id"] and linked["actor_type"] == "system"


async def test_an_unverified_number_on_file_gets_a_suggestion_from_whatsapp(
    client: httpx.AsyncClient, services: Services, account: AccountFixture
) -> None:
    _inbox, token = make_inbox(
        services,
        account.id,
        "whatsapp_cloud",
        {
            "app_secret": APP_SECRET,
            "verify_token": "v",
            "phone_number_id": "106540352242922",
            "access_token": "EAAG",
        },
    )
    h = account.auth
    known = (
        await client.post(
            "/api/v1/contacts", headers=h, json={"name": "S. Nelson", "phone": "+1 650 555 1234"}
        )
    ).json()
    body = fixture("whatsapp_cloud_text.json")
    r = await client.post(f"/webhooks/whatsapp/{token}", content=body, headers=_hub(body))
    assert r.status_code == 200, r.text
    [sug] = await listed(client, account, known["id"])
    assert sug["other_contact"]["name"] == "Sheena Nelson"
    assert sug["reason"] == "same phone number +16505551234 via SMS and WhatsApp"
    assert await timeline(client, account, known["id"]) == []
