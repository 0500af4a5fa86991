"""Errors as `application/problem+json` (RFC 9457): every failure says clearly what was wrong."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from caredesk.platform.errors import CaredeskError

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"


def problem(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(CaredeskError)
    async def _domain(_req: Request, exc: CaredeskError) -> JSONResponse:
        retry = exc.extra.get("retry_after")
        headers = {"Retry-After": str(retry)} if retry is not None else None  # a 429 says when to come back
        return problem(exc.status, exc.title, exc.detail, headers=headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "loc": [str(p) for p in e.get("loc", ())],
                "msg": str(e.get("msg", "")),
                "type": str(e.get("type", "")),
            }
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid"}
        where = ".".join(first["loc"][1:] if len(first["loc"]) > 1 else first["loc"])  # type: ignore[index]
        return problem(
            422, "Invalid request", f"{where}: {first['msg']}" if where else str(first["msg"]), errors=errors
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {
            400: "Bad request",
            401: "Unauthorized",
            403: "Forbidden",
            404: "Not found",
            405: "Method not allowed",
            413: "Payload too large",
            415: "Unsupported media type",
            429: "Too many requests",
        }
        return problem(
            exc.status_code,
            titles.get(exc.status_code, "Error"),
            str(exc.detail),
            headers=dict(exc.headers or {}),
        )

    @app.exception_handler(OverflowError)
    async def _overflow(_req: Request, exc: OverflowError) -> JSONResponse:
        # An unbounded int from the path or query (an id of 30 digits) that the SQLite driver cannot bind.
        return problem(422, "Invalid request", "a number in the request is out of range")

    @app.exception_handler(DataError)
    async def _data(_req: Request, exc: DataError) -> JSONResponse:
        # PostgreSQL refusing a value from the request, e.g. a 25-digit id ("bigint out of range").
        log.info("data error answered as 422: %s", type(exc.orig).__name__)
        return problem(422, "Invalid request", "a number in the request is out of range")

    @app.exception_handler(IntegrityError)
    async def _integrity(_req: Request, exc: IntegrityError) -> JSONResponse:
        log.info("integrity error answered as 409: %s", type(exc.orig).__name__)
        return problem(409, "Conflict", "this conflicts with existing data")

    @app.exception_handler(Exception)
    async def _unexpected(_req: Request, exc: Exception) -> JSONResponse:
        # Never leak internals (or customer data) in an error body; the log has the trace.
        log.exception("unhandled error")
        return problem(500, "Internal error", "something went wrong on our side; nothing you sent was lost")
