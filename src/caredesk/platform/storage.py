"""Attachment storage behind a small interface; local disk by default."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Protocol

from caredesk.platform.security import new_token

SAFE = re.compile(r"[^A-Za-z0-9._-]+")


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
