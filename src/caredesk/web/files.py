"""Files agents send: reading and checking uploads (the widget's rules), and the customer's signed
download link for channels that cannot carry a file (`GET /files/{token}`)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from caredesk.conversations.attachments import attachment_for_link
from caredesk.conversations.inbound import InboundAttachment
from caredesk.platform.errors import Invalid
from caredesk.platform.storage import MAX_FILE_BYTES, MAX_FILES, check_file
from caredesk.services import Services

router = APIRouter(include_in_schema=False)


async def store_uploads(
    svc: Services, account_id: int, files: Sequence[UploadFile]
) -> list[InboundAttachment]:
    """Checks every file (size, type, content), then stores them; nothing is stored if one is refused."""
    files = [f for f in files if f.filename or f.size]  # a form's empty file input sends an empty part
    if len(files) > MAX_FILES:
        raise Invalid(f"at most {MAX_FILES} files per message")
    checked: list[tuple[str, str, bytes]] = []
    for f in files:
        data = await f.read(MAX_FILE_BYTES + 1)
        name, ctype = check_file(f.filename, f.content_type, data)
        checked.append((name, ctype, data))
    out = []
    for name, ctype, data in checked:
        key = await asyncio.to_thread(svc.storage.put, account_id, name, data)
        out.append(InboundAttachment(filename=name, content_type=ctype, size=len(data), storage_key=key))
    return out


async def forget_uploads(svc: Services, stored: list[InboundAttachment]) -> None:
    """Stored files whose message was refused (no row points at them)."""
    for a in stored:
        await asyncio.to_thread(svc.storage.delete, a.storage_key)


@router.get("/files/{token}")
async def linked_file(request: Request, token: Annotated[str, Path(max_length=400)]) -> Response:
    """A customer's link to one file an agent sent (signed, expires); always a download."""
    from caredesk.web.widget import file_response

    svc: Services = request.app.state.services
    a = await svc.db.read(attachment_for_link, svc.settings.secret_key, token)
    data = await asyncio.to_thread(svc.storage.get, a.storage_key)
    return file_response(data, a, inline_images=False)
