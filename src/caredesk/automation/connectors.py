"""Connectors to the business's own systems: HTTP/JSON APIs (httpx) and SQL databases (read-only by default).

Every call has a timeout; transient failures (network errors, timeouts, 5xx, 429) are retried with
backoff and jitter, honouring Retry-After. Each HTTP call carries an Idempotency-Key, so a retried
POST is safe against a system that honours it.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import anyio
import httpx
import sqlalchemy as sa

from caredesk.automation.config import ConnectorSpec

MAX_RETRY_AFTER = 30.0
READ_ONLY_SQL = re.compile(r"^\s*(select|with)\b", re.IGNORECASE)


class ConnectorError(Exception):
    def __init__(
        self, message: str, *, status: int | None = None, transient: bool = False, data: Any = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.transient = transient
        self.data = data


Sleep = Callable[[float], Awaitable[None]]
_tokens: dict[tuple[str, str, str], tuple[str, float]] = {}


class HttpConnector:
    def __init__(
        self,
        name: str,
        spec: ConnectorSpec,
        *,
        secrets: dict[str, str],
        public_url: str = "",
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.name = name
        self.spec = spec
        self.secrets = secrets
        self.base_url = spec.base_url.replace("${public_url}", public_url.rstrip("/"))
        self.transport = transport
        self.sleep = sleep
        self.attempts = 0  # for tests and the audit trail

    async def _auth_headers(self, client: httpx.AsyncClient) -> dict[str, str]:
        auth = self.spec.auth
        if auth.type == "none":
            return {}
        secret = self.secrets.get(auth.secret or "", "")
        if auth.type == "header":
            return {auth.header: secret}
        if auth.type == "bearer":
            return {"Authorization": f"Bearer {secret}"}
        return {"Authorization": f"Bearer {await self._oauth_token(client, secret)}"}

    async def _oauth_token(self, client: httpx.AsyncClient, client_secret: str) -> str:
        auth = self.spec.auth
        key = (self.base_url, auth.token_url or "", auth.client_id or "")
        cached = _tokens.get(key)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        form = {
            "grant_type": "client_credentials",
            "client_id": auth.client_id or "",
            "client_secret": client_secret,
        }
        if auth.scope:
            form["scope"] = auth.scope
        r = await client.post(auth.token_url or "", data=form)
        if r.status_code != 200:
            raise ConnectorError(
                f"{self.name}: token endpoint answered {r.status_code}",
                status=r.status_code,
                transient=r.status_code >= 500,
            )
        body = r.json()
        token = str(body.get("access_token", ""))
        # Renew a little early so a token never expires in flight.
        _tokens[key] = (token, time.monotonic() + max(0.0, float(body.get("expires_in", 300)) - 30))
        return token

    async def call(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
    ) -> Any:
        last: ConnectorError | None = None
        async with httpx.AsyncClient(
            base_url=self.base_url,
            timeout=self.spec.timeout,
            transport=self.transport,
            headers=self.spec.headers,
        ) as client:
            for attempt in range(self.spec.retries + 1):
                self.attempts += 1
                wait = self.spec.retry_backoff * (2**attempt) * (0.5 + random.random())
                try:
                    headers = await self._auth_headers(client)
                    if idempotency_key:
                        headers["Idempotency-Key"] = idempotency_key
                    r = await client.request(method, path, params=query or None, json=json, headers=headers)
                except httpx.TransportError as exc:  # timeouts, refused connections, resets
                    last = ConnectorError(f"{self.name}: {type(exc).__name__}", transient=True)
                except ConnectorError as exc:
                    if not exc.transient:
                        raise
                    last = exc
                else:
                    if r.status_code < 400:
                        return _json(r, self.name)
                    data = _json_or_none(r)
                    if r.status_code == 429 or r.status_code >= 500:
                        last = ConnectorError(
                            f"{self.name}: HTTP {r.status_code}",
                            status=r.status_code,
                            transient=True,
                            data=data,
                        )
                        ra = r.headers.get("retry-after", "")
                        if ra.replace(".", "", 1).isdigit():
                            wait = max(wait, min(float(ra), MAX_RETRY_AFTER))
                    else:
                        detail = data.get("detail") if isinstance(data, dict) else None
                        raise ConnectorError(
                            f"{self.name}: HTTP {r.status_code}" + (f": {detail}" if detail else ""),
                            status=r.status_code,
                            data=data,
                        )
                if attempt < self.spec.retries:
                    await self.sleep(wait)
        assert last is not None
        raise last


def _json(r: httpx.Response, name: str) -> Any:
    if not r.content:
        return {}
    try:
        return r.json()
    except ValueError as exc:
        raise ConnectorError(f"{name}: the response is not JSON", status=r.status_code) from exc


def _json_or_none(r: httpx.Response) -> Any:
    try:
        return r.json()
    except ValueError:
        return None


_engines: dict[str, sa.Engine] = {}


class SqlConnector:
    """A SQL database of the business; read-only unless the configuration says otherwise."""

    def __init__(self, name: str, spec: ConnectorSpec, *, secrets: dict[str, str]) -> None:
        self.name = name
        self.spec = spec
        self.dsn = secrets.get(spec.dsn_secret or "", "")
        if not self.dsn:
            raise ConnectorError(f"{name}: the database URL secret is not set")

    def _engine(self) -> sa.Engine:
        eng = _engines.get(self.dsn)
        if eng is None:
            eng = _engines[self.dsn] = sa.create_engine(self.dsn, pool_pre_ping=True)
        return eng

    def _run(self, sql: str, params: dict[str, Any]) -> dict[str, Any]:
        if self.spec.read_only and not READ_ONLY_SQL.match(sql):
            raise ConnectorError(f"{self.name}: read-only connector refuses a statement that is not a query")
        eng = self._engine()
        with eng.connect() as conn:
            # Belt and braces: the database itself refuses writes on a read-only connector.
            if self.spec.read_only:
                if eng.dialect.name == "sqlite":
                    conn.exec_driver_sql("PRAGMA query_only = ON")
                elif eng.dialect.name == "postgresql":
                    conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            try:
                res = conn.execute(sa.text(sql), params)
                rows = [dict(r._mapping) for r in res] if res.returns_rows else []
                if not self.spec.read_only:
                    conn.commit()
            finally:
                if eng.dialect.name == "sqlite" and self.spec.read_only:
                    conn.rollback()
                    conn.exec_driver_sql("PRAGMA query_only = OFF")
        return {"rows": rows, "row": rows[0] if rows else None, "count": len(rows)}

    async def query(self, sql: str, params: dict[str, Any]) -> dict[str, Any]:
        try:
            with anyio.fail_after(self.spec.timeout):
                return await anyio.to_thread.run_sync(self._run, sql, params)
        except TimeoutError as exc:
            raise ConnectorError(f"{self.name}: query timed out", transient=True) from exc
        except sa.exc.SQLAlchemyError as exc:
            raise ConnectorError(f"{self.name}: {type(exc).__name__}") from exc


def path_quote(value: str) -> str:
    return quote(value, safe="")
