"""The agent workspace over HTTP: login (throttled, CSRF), pages, escaping, actions need CSRF."""

from __future__ import annotations

import re

import httpx

from caredesk.services import Services
from tests.conftest import AccountFixture, post_inbound

XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=1</script>'


async def _login(client: httpx.AsyncClient, acc: AccountFixture) -> str:
    form = await client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token
    r = await client.post(
        "/login", data={"email": acc.admin_email, "password": acc.password, "csrf_token": token.group(1)}
    )
    assert r.status_code == 303 and r.headers["location"] == "/"
    page = await client.get("/")
    m = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text)
    assert m
    return m.group(1)


async def test_pages_need_a_login(client: httpx.AsyncClient) -> None:
    r = await client.get("/")
    assert r.status_code == 303 and r.headers["location"] == "/login"
    r = await client.get("/ui/list", headers={"hx-request": "true"})
    assert r.status_code == 401 and r.headers["hx-redirect"] == "/login"


async def test_login_form_is_csrf_protected_and_throttled(
    client: httpx.AsyncClient, services: Services, account: AccountFixture
) -> None:
    r = await client.post(
        "/login", data={"email": account.admin_email, "password": account.password, "csrf_token": "forged"}
    )
    assert r.status_code == 403
    services.extras["login_limiter"].__init__(3)  # 3 a minute for this test
    await client.get("/login")
    statuses = []
    for _ in range(4):
        form = await client.get("/login")
        tok = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
        statuses.append(
            (
                await client.post(
                    "/login", data={"email": account.admin_email, "password": "wrong", "csrf_token": tok}
                )
            ).status_code
        )
    assert 429 in statuses and statuses[0] == 401


async def test_customer_text_is_escaped_everywhere(
    client: httpx.AsyncClient, account: AccountFixture
) -> None:
    r = await post_inbound(client, account, XSS, sender="x@example.com")
    conv_id = r.json()["conversation_id"]
    await _login(client, account)
    for url in ("/", f"/c/{conv_id}", f"/ui/c/{conv_id}", f"/ui/c/{conv_id}/messages", "/ui/list"):
        page = await client.get(url)
        assert page.status_code == 200, url
        assert "<script>window.__xss" not in page.text and "<img src=x" not in page.text, url
    page = await client.get(f"/ui/c/{conv_id}")
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]


async def test_actions_need_the_csrf_token_and_work_with_it(
    client: httpx.AsyncClient, account: AccountFixture
) -> None:
    conv_id = (await post_inbound(client, account, "hello", sender="y@example.com")).json()["conversation_id"]
    csrf = await _login(client, account)
    refused = await client.post(f"/ui/c/{conv_id}/reply", data={"content": "hi"})
    assert refused.status_code == 403
    ok = await client.post(
        f"/ui/c/{conv_id}/reply", data={"content": "Hi there", "private": "0"}, headers={"x-csrf-token": csrf}
    )
    assert ok.status_code == 204
    note = await client.post(
        f"/ui/c/{conv_id}/reply",
        data={"content": "VIP, be nice", "private": "1"},
        headers={"x-csrf-token": csrf},
    )
    assert note.status_code == 204
    no_note = await client.post(
        f"/ui/c/{conv_id}/transfer",
        data={"target": f"agent:{account.admin_id}", "note": " "},
        headers={"x-csrf-token": csrf},
    )
    assert no_note.status_code == 422
    moved = await client.post(
        f"/ui/c/{conv_id}/transfer",
        data={"target": f"agent:{account.admin_id}", "note": "wants a refund"},
        headers={"x-csrf-token": csrf},
    )
    assert moved.status_code == 200 and "wants a refund" in moved.text
    done = await client.post(
        f"/ui/c/{conv_id}/status", data={"status": "resolved"}, headers={"x-csrf-token": csrf}
    )
    assert done.status_code == 200 and 'data-status="resolved"' in done.text
    page = await client.get(f"/ui/c/{conv_id}")
    assert "msg-note" in page.text and "Hi there" in page.text


async def test_another_accounts_conversation_is_not_found(
    client: httpx.AsyncClient, account: AccountFixture, other_account: AccountFixture
) -> None:
    theirs = (await post_inbound(client, other_account, "secret", sender="z@example.com")).json()[
        "conversation_id"
    ]
    csrf = await _login(client, account)
    assert (await client.get(f"/ui/c/{theirs}")).status_code == 404
    assert (await client.get(f"/ui/c/{theirs}/messages")).status_code == 404
    r = await client.post(f"/ui/c/{theirs}/reply", data={"content": "x"}, headers={"x-csrf-token": csrf})
    assert r.status_code == 404


async def test_admin_pages_render_and_create_a_webchat_inbox(
    client: httpx.AsyncClient, account: AccountFixture
) -> None:
    csrf = await _login(client, account)
    for section in ("agents", "teams", "inboxes", "account"):
        assert (await client.get(f"/admin/{section}")).status_code == 200, section
    r = await client.post(
        "/admin/inboxes", data={"name": "Shop <b>chat</b>", "greeting": "Hi", "csrf_token": csrf}
    )
    assert r.status_code == 303
    page = await client.get("/admin/inboxes")
    assert "Shop &lt;b&gt;chat&lt;/b&gt;" in page.text and "/widget/loader.js" in page.text
    bad = await client.post("/admin/agents", data={"name": "X", "email": "not-an-email", "csrf_token": csrf})
    assert bad.status_code == 422 and "valid email" in bad.text


async def _from(
    client: httpx.AsyncClient, acc: AccountFixture, kind: str, number: str, name: str, text: str
) -> dict[str, int]:
    r = await client.post(
        f"/api/v1/inboxes/{acc.inbox_ids['api']}/inbound",
        headers=acc.auth,
        json={"from": {"kind": kind, "value": number, "name": name}, "text": text},
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_the_customer_panel_suggests_the_same_person_and_merges_or_dismisses(
    client: httpx.AsyncClient, account: AccountFixture
) -> None:
    sms = await _from(client, account, "phone", "+491511234567", "Ana <b>Sms</b>", "hi by sms")
    wa = await _from(client, account, "whatsapp", "+491511234567", "Ana WA", "hi on whatsapp")
    csrf = await _login(client, account)
    page = await client.get(f"/ui/c/{wa['conversation_id']}")
    assert page.status_code == 200
    block = page.text.split('id="link-suggestions"')[1].split("<h3>Identities</h3>")[0]
    assert "Possibly the same person as <strong>Ana &lt;b&gt;Sms&lt;/b&gt;</strong>" in block
    assert "same phone number +491511234567 via SMS and WhatsApp" in block
    assert "Merging keeps the older contact (the other one)" in block
    sid = re.search(r'data-suggestion-id="(\d+)"', block).group(1)  # type: ignore[union-attr]
    accept, dismiss = (
        f"/ui/c/{wa['conversation_id']}/links/{sid}/accept",
        f"/ui/c/{wa['conversation_id']}/links/{sid}/dismiss",
    )
    assert f'hx-post="{accept}"' in block and ">Merge</button>" in block
    assert f'hx-post="{dismiss}"' in block and ">Not the same person</button>" in block
    # Seen from the other conversation too, and as the live partial.
    other = await client.get(f"/ui/c/{sms['conversation_id']}/links")
    assert "Possibly the same person as <strong>Ana WA</strong>" in other.text
    assert "Merging keeps the older contact (this one)" in other.text

    assert (await client.post(accept)).status_code == 403  # no CSRF token
    merged = await client.post(accept, headers={"x-csrf-token": csrf})
    assert merged.status_code == 200, merged.text
    # One person, one timeline: both messages in the rerendered view, the suggestion gone.
    assert "hi by sms" in merged.text and "hi on whatsapp" in merged.text
    assert 'data-testid="link-suggestion"' not in merged.text
    assert f'data-contact-id="{sms["contact_id"]}"' in merged.text
    assert (await client.post(dismiss, headers={"x-csrf-token": csrf})).status_code == 409

    # A new pair, dismissed: gone from both panels.
    a = await _from(client, account, "phone", "+441632960961", "Bo", "sms")
    b = await _from(client, account, "whatsapp", "+441632960961", "Bo", "wa")
    block = (await client.get(f"/ui/c/{a['conversation_id']}/links")).text
    sid = re.search(r'data-suggestion-id="(\d+)"', block).group(1)  # type: ignore[union-attr]
    wrong = await client.post(
        f"/ui/c/{wa['conversation_id']}/links/{sid}/dismiss", headers={"x-csrf-token": csrf}
    )
    assert wrong.status_code == 404  # a suggestion about another contact than this conversation's
    done = await client.post(
        f"/ui/c/{a['conversation_id']}/links/{sid}/dismiss", headers={"x-csrf-token": csrf}
    )
    assert done.status_code == 200 and 'id="link-suggestions"' in done.text
    assert 'data-testid="link-suggestion"' not in done.text
    assert 'data-testid="link-suggestion"' not in (await client.get(f"/ui/c/{b['conversation_id']}")).text
