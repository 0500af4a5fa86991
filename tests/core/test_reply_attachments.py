"""Agents' files: a reply with attachments from the workspace composer and the REST API (multipart,
the widget's type and size rules), downloads as attachments with their content type and only within
the account, and outgoing delivery: the widget shows them, email attaches them, the API webhook lists
them with links, and every other channel gets download links in the text."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from caredesk.conversations.delivery import Outbound, Receipt
from caredesk.services import Services
from tests.conftest import AccountFixture, login, post_inbound

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.4\n% test\n"


async def _conversation(client: httpx.AsyncClient, acc: AccountFixture, channel: str = "api") -> int:
    r = await post_inbound(client, acc, "please see the invoice", sender="cust@example.com", channel=channel)
    assert r.status_code == 201, r.text
    return int(r.json()["conversation_id"])


async def _ui(client: httpx.AsyncClient, acc: AccountFixture) -> str:
    return await login(client, acc.admin_email, acc.password)


async def test_workspace_reply_with_files_is_stored_shown_and_downloadable(
    client: httpx.AsyncClient, account: AccountFixture
) -> None:
    conv = await _conversation(client, account)
    csrf = await _ui(client, account)
    r = await client.post(
        f"/ui/c/{conv}/reply",
        data={"content": "Here is your invoice", "private": "0"},
        files=[
            ("files", ("invoice.pdf", PDF, "application/pdf")),
            ("files", ("photo.png", PNG, "image/png")),
        ],
        headers={"x-csrf-token": csrf},
    )
    assert r.status_code == 204, r.text
    page = await client.get(f"/ui/c/{conv}")
    m = re.search(r'href="/ui/files/(\d+)/0" download data-testid="file-link">invoice.pdf<', page.text)
    assert m, page.text
    msg_id = int(m.group(1))
    assert f'src="/ui/files/{msg_id}/1"' in page.text  # the image is shown as a thumbnail
    pdf = await client.get(f"/ui/files/{msg_id}/0")
    assert pdf.status_code == 200 and pdf.content == PDF
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"] == 'attachment; filename="invoice.pdf"'
    assert pdf.headers["x-content-type-options"] == "nosniff"
    png = await client.get(f"/ui/files/{msg_id}/1")
    assert png.headers["content-type"] == "image/png"
    assert png.headers["content-disposition"].startswith("attachment;")
    assert (await client.get(f"/ui/files/{msg_id}/2")).status_code == 404
    # The API lists the files with the message.
    items = (await client.get(f"/api/v1/conversations/{conv}/messages", headers=account.auth)).json()["items"]
    sent = next(i for i in items if i["id"] == msg_id)
    assert [(a["filename"], a["content_type"]) for a in sent["attachments"]] == [
        ("invoice.pdf", "application/pdf"),
        ("photo.png", "image/png"),
    ]
    # A file alone (no text) is a message too.
    alone = await client.post(
        f"/ui/c/{conv}/reply",
        data={"content": ""},
        files=[("files", ("notes.txt", b"plain text", "text/plain"))],
        headers={"x-csrf-token": csrf},
    )
    assert alone.status_code == 204, alone.text


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        ([("files", ("x.html", b"<script>1</script>", "text/html"))], "not accepted"),
        ([("files", ("fake.png", b"GIF89a....", "image/png"))], "does not match"),
        ([("files", ("empty.txt", b"", "text/plain"))], "empty"),
        ([("files", ("bad.txt", b"\xff\xfe\xfa", "text/plain"))], "UTF-8"),
        ([("files", (f"f{i}.txt", b"x", "text/plain")) for i in range(6)], "at most 5"),
        ([("files", ("big.pdf", b"%PDF-" + b"0" * (10 * 1_048_576), "application/pdf"))], "10 MB"),
    ],
)
async def test_refused_files_say_why_and_store_nothing(
    client: httpx.AsyncClient,
    account: AccountFixture,
    services: Services,
    files: list[Any],
    reason: str,
) -> None:
    conv = await _conversation(client, account)
    csrf = await _ui(client, account)
    before = sorted(p for p in services.settings.data_dir.rglob("*") if p.is_file())
    r = await client.post(
        f"/ui/c/{conv}/reply", data={"content": "x"}, files=files, headers={"x-csrf-token": csrf}
    )
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert reason in r.json()["detail"]
    api = await client.post(
        f"/api/v1/conversations/{conv}/attachments", data={"content": "x"}, files=files, headers=account.auth
    )
    assert api.status_code == 422 and reason in api.json()["detail"], api.text
    after = sorted(p for p in services.settings.data_dir.rglob("*") if p.is_file())
    assert [p for p in after if "attachments" in str(p)] == [p for p in before if "attachments" in str(p)]


async def test_api_reply_with_files_and_download(client: httpx.AsyncClient, account: AccountFixture) -> None:
    conv = await _conversation(client, account)
    r = await client.post(
        f"/api/v1/conversations/{conv}/attachments",
        data={"content": "the label", "private": "false"},
        files=[("files", ("label.pdf", PDF, "application/pdf"))],
        headers=account.auth,
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["type"] == "outgoing" and body["status"] == "queued" and body["content"] == "the label"
    assert body["attachments"] == [
        {"index": 0, "filename": "label.pdf", "content_type": "application/pdf", "size": len(PDF)}
    ]
    f = await client.get(
        f"/api/v1/conversations/{conv}/messages/{body['id']}/attachments/0", headers=account.auth
    )
    assert f.status_code == 200 and f.content == PDF
    assert f.headers["content-type"] == "application/pdf"
    assert f.headers["content-disposition"] == 'attachment; filename="label.pdf"'
    note = await client.post(
        f"/api/v1/conversations/{conv}/attachments",
        data={"private": "true"},
        files=[("files", ("internal.txt", b"for agents", "text/plain"))],
        headers=account.auth,
    )
    assert note.status_code == 201 and note.json()["type"] == "note", note.text
    none = await client.post(
        f"/api/v1/conversations/{conv}/attachments", data={"content": "x"}, headers=account.auth
    )
    assert none.status_code == 422


async def test_another_account_gets_404_for_files(
    client: httpx.AsyncClient, account: AccountFixture, other_account: AccountFixture
) -> None:
    conv = await _conversation(client, account)
    r = await client.post(
        f"/api/v1/conversations/{conv}/attachments",
        files=[("files", ("secret.pdf", PDF, "application/pdf"))],
        headers=account.auth,
    )
    msg_id = r.json()["id"]
    b = other_account.auth
    assert (
        await client.get(f"/api/v1/conversations/{conv}/messages/{msg_id}/attachments/0", headers=b)
    ).status_code == 404
    refused = await client.post(
        f"/api/v1/conversations/{conv}/attachments",
        files=[("files", ("x.pdf", PDF, "application/pdf"))],
        headers=b,
    )
    assert refused.status_code == 404
    async with httpx.AsyncClient(transport=client._transport, base_url="http://testserver") as b_ui:
        csrf = await login(b_ui, other_account.admin_email, other_account.password)
        assert (await b_ui.get(f"/ui/files/{msg_id}/0")).status_code == 404
        r = await b_ui.post(
            f"/ui/c/{conv}/reply",
            data={"content": "x"},
            files=[("files", ("x.pdf", PDF, "application/pdf"))],
            headers={"x-csrf-token": csrf},
        )
        assert r.status_code == 404


@dataclass
class RecordingSender:
    sends_files: bool = False
    sent: list[Outbound] = field(default_factory=list)

    async def send(self, msg: Outbound, idempotency_key: str) -> Receipt:
        self.sent.append(msg)
        return Receipt(channel_message_id=f"rec:{idempotency_key}")


@pytest.mark.parametrize("carries_files", [False, True])
async def test_delivery_passes_files_or_links(
    client: httpx.AsyncClient, account: AccountFixture, services: Services, carries_files: bool
) -> None:
    """A sender that carries files gets them with their links; any other gets the links in its text.
    Every link downloads the file without credentials; a changed link finds nothing."""
    fake = RecordingSender(sends_files=carries_files)
    services.senders["api"] = fake
    conv = await _conversation(client, account)
    r = await client.post(
        f"/api/v1/conversations/{conv}/attachments",
        data={"content": "Your label"},
        files=[("files", ("label.pdf", PDF, "application/pdf"))],
        headers=account.auth,
    )
    assert r.status_code == 201
    await services.worker.run_until_idle()  # type: ignore[union-attr]
    assert len(fake.sent) == 1
    out = fake.sent[0]
    [att] = out.attachments
    assert att["filename"] == "label.pdf" and att["content_type"] == "application/pdf"
    url = str(att["url"])
    assert url.startswith(f"{services.settings.public_url.rstrip('/')}/files/")
    if carries_files:
        assert out.content == "Your label"
    else:
        assert out.content == f"Your label\n\nAttachments:\nlabel.pdf: {url}"
    path = url.split("://", 1)[1].split("/", 1)[1]
    got = await client.get("/" + path)
    assert got.status_code == 200 and got.content == PDF
    assert got.headers["content-disposition"] == 'attachment; filename="label.pdf"'
    token = path.rsplit("/", 1)[1]
    forged = ("B" if token[0] != "B" else "C") + token[1:]  # a changed byte of the signed value
    assert (await client.get(f"/files/{forged}")).status_code == 404
    assert (await client.get("/files/not-a-token")).status_code == 404
    msgs = (await client.get(f"/api/v1/conversations/{conv}/messages", headers=account.auth)).json()["items"]
    assert next(m for m in msgs if m["id"] == r.json()["id"])["status"] == "sent"


async def test_email_reply_attaches_the_files(services: Services) -> None:
    from email import message_from_bytes
    from email.message import EmailMessage

    from caredesk.channels.email.sender import build_reply

    out = Outbound(
        account_id=1,
        message_id=1,
        conversation_id=1,
        conversation_token="tok",
        inbox_id=1,
        inbox_config={"address": "help@shop.test"},
        content="See attached",
        contact_name="Cus Tomer",
        identities={"email": "c@example.com"},
    )
    em, _mid = build_reply(out, "k1", [("label.pdf", "application/pdf", PDF)])
    parsed = message_from_bytes(em.as_bytes())
    assert isinstance(em, EmailMessage)
    parts = [p for p in parsed.walk() if p.get_filename()]
    assert [(p.get_filename(), p.get_content_type(), p.get_payload(decode=True)) for p in parts] == [
        ("label.pdf", "application/pdf", PDF)
    ]


async def test_the_widget_visitor_sees_an_agents_file(
    client: httpx.AsyncClient, account: AccountFixture, services: Services
) -> None:
    inbox = (await client.get(f"/api/v1/inboxes/{account.inbox_ids['webchat']}", headers=account.auth)).json()
    token = inbox["public_token"]
    session = (await client.post("/widget/api/session", json={"token": token})).json()
    visitor = session["visitor"]
    sent = await client.post(
        "/widget/api/messages",
        json={"token": token, "visitor": visitor, "client_id": "client-0001", "text": "hello"},
    )
    conv = sent.json()["conversation_id"]
    r = await client.post(
        f"/api/v1/conversations/{conv}/attachments",
        data={"content": "your receipt"},
        files=[("files", ("receipt.pdf", PDF, "application/pdf"))],
        headers=account.auth,
    )
    assert r.status_code == 201
    await services.worker.run_until_idle()  # type: ignore[union-attr]
    history = (await client.post("/widget/api/session", json={"token": token, "visitor": visitor})).json()
    mine = next(m for m in history["messages"] if m["id"] == r.json()["id"])
    assert mine["attachments"] == [
        {"filename": "receipt.pdf", "content_type": "application/pdf", "size": len(PDF)}
    ]
    assert mine["status"] == "sent"
    f = await client.get(
        f"/widget/api/files/{mine['id']}/0", params={"token": token}, headers={"x-caredesk-visitor": visitor}
    )
    assert f.status_code == 200 and f.content == PDF
