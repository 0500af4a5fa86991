"""Errors that actions raise and every front door (HTTP, CLI) turns into a clear answer."""

from __future__ import annotations

from typing import Any


class CaredeskError(Exception):
    status = 400
    title = "Bad request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFound(CaredeskError):
    # Also answers for another account's ids: existence is not revealed (RELIABILITY rule 8).
    status = 404
    title = "Not found"


class Invalid(CaredeskError):
    status = 422
    title = "Invalid request"


class Conflict(CaredeskError):
    status = 409
    title = "Conflict"


class Forbidden(CaredeskError):
    status = 403
    title = "Forbidden"


class Unauthorized(CaredeskError):
    status = 401
    title = "Unauthorized"
