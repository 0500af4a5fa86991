"""Attachment storage behind a small interface (local disk by default), and the checks every file a
person sends passes first: the widget's visitors and the workspace's agents get the same rules."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Protocol

from caredesk.platform.errors import Invalid
from caredesk.platform.security import new_token

SAFE = re.compile(r"[^A-Za-z0-9._-]+")

MAX_FILE_BYTES = 10 * 1_048_576
MAX_FILES = 5  # per message
# Types a person may send, each with the leading bytes that a real file of that type starts with.
ALLOWED_TYPES: dict[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
    "application/pdf": (b"%PDF-",),
    "text/plain": (),
}


def check_file(filename: str | None, content_type: str | None, data: bytes) -> tuple[str, str]:
    """(the file's name without any path, its content type) for a file that may be stored and shown;
    `Invalid` (a 422 with the reason) for one over the size limit, empty, of a type not accepted, or
    whose content does not match its declared type."""
    if len(data) > MAX_FILE_BYTES:
        raise Invalid(f"files are limited to {MAX_FILE_BYTES // 1_048_576} MB")
    if not data:
        raise Invalid("the file is empty")
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype not in ALLOWED_TYPES:
        raise Invalid(f"this file type is not accepted ({', '.join(sorted(ALLOWED_TYPES))})")
    magic = ALLOWED_TYPES[ctype]
    if magic and not any(data.startswith(m) for m in magic):
        raise Invalid("the file's content does not match its type")
    if ctype == "text/plain":
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Invalid("text files must be UTF-8") from exc
    name = (filename or "file").replace("\\", "/").rsplit("/", 1)[-1][:200] or "file"
    return name, ctype


class Storage(Protocol):
    def put(self, account_id: int, filename: str, data: bytes) -> str: ...
    def get(self, key: str) -> bytes: ...
    def delete(self, key: str) -> None: ...


class LocalDiskStorage:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        p = (self.root / key).resolve()
        if self.root.resolve() not in p.parents:
            raise ValueError("storage key escapes the storage root")
        return p

    def put(self, account_id: int, filename: str, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()[:16]
        name = SAFE.sub("_", os.path.basename(filename))[-80:] or "file"
        key = f"{account_id}/{digest[:2]}/{digest}-{new_token(nbytes=6)}-{name}"
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # atomic: a reader never sees half a file
        return key

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
