"""S2: malformed input on every JSON route is a 4xx with a problem body, never a 500; bodies over the limit
are refused before they are read (a real server stays alive); schemathesis finds no 5xx."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import hypothesis
import hypothesis.errors
import pytest
import schemathesis
from schemathesis import GenerationMode

from caredesk.app import create_app
from caredesk.settings import Settings
from tests.conftest import AccountFixture, login, make_account, server_env, start_server
from tests.security.routes import RouteInfo, all_routes, json_body_routes

ALLOWED = {400, 401, 403, 404, 405, 413, 415, 422}
ERROR_TYPES = ("application/problem+json", "application/json")


def _deep(levels: int) -> bytes:
    return b'{"a":' * levels + b"1" + b"}" * levels


MALFORMED: dict[str, tuple[bytes, str]] = {
    "invalid JSON": (b'{"text": "unterminated', "application/json"),
    "trailing garbage": (b'{"text": "x"} {', "application/json"),
    "wrong content type": (b'{"text": "hello"}', "text/plain"),
    "form instead of JSON": (b"text=hello", "application/x-www-form-urlencoded"),
    "no content type": (b'{"text": "hello"}', ""),
    "invalid UTF-8": (b'{"text": "\xff\xfe\xfa"}', "application/json"),
    "lone surrogate": (b'{"text": "\\ud800"}', "application/json"),
    "array instead of object": (b"[1, 2, 3]", "application/json"),
    "null body": (b"null", "application/json"),
    "empty body": (b"", "application/json"),
    "deep nesting (1,000 objects)": (_deep(1000), "application/json"),
    "deep nesting (1,000 arrays)": (b"[" * 1000 + b"]" * 1000, "application/json"),
    "huge number": (b'{"text": 1' + b"0" * 5000 + b"}", "application/json"),
    "NaN": (b'{"text": NaN}', "application/json"),
    "2 MB body (over the 1 MB limit)": (b'{"text": "' + b"x" * (2 * 1_048_576) + b'"}', "application/json"),
}


def _url(route: RouteInfo) -> str:
    return route.url({p: "1" if p.endswith("_id") or p == "index" else "shop_key" for p in route.params})


def _headers(route: RouteInfo, acc: AccountFixture, ctype: str) -> dict[str, str]:
    h = dict(acc.auth) if route.path.startswith("/api/") else {}
    if ctype:
        h["content-type"] = ctype
    return h


async def test_every_json_route_answers_malformed_bodies_with_a_4xx_problem(
    app: Any, client: httpx.AsyncClient, account: AccountFixture
) -> None:
    routes = json_body_routes(app)
    assert len(routes) >= 30, routes
    failures: list[str] = []
    for method, route in routes:
        for name, (body, ctype) in MALFORMED.items():
            r = await client.request(
                method, _url(route), content=body, headers=_headers(route, account, ctype)
            )
            ok_type = r.headers.get("content-type", "").startswith(ERROR_TYPES)
            if r.status_code not in ALLOWED or not ok_type:
                failures.append(
                    f"{method} {route.path} [{name}]: {r.status_code} {r.headers.get('content-type')} {r.text[:160]}"
                )
            elif (
                name.startswith("2 MB")
                and r.status_code != 413
                and not route.path.endswith(("/uploads", "/attachments"))
            ):
                # (routes that take files have their own, larger limit: there 2 MB is refused as not multipart)
                failures.append(f"{method} {route.path} [{name}]: {r.status_code}, expected 413")
    assert not failures, "\n".join(failures)


async def test_too_deep_json_is_refused_with_a_reason(
    client: httpx.AsyncClient, account: AccountFixture
) -> None:
    """Within the size limit but nested past any sane document: 4xx naming the problem, never a 500."""
    body = b'{"from": {"kind": "email", "value": "a@b.test"}, "text": "x", "metadata": ' + _deep(5000) + b"}"
    r = await client.post(
        f"/api/v1/inboxes/{account.inbox_ids['api']}/inbound",
        content=body,
        headers={**account.auth, "content-type": "application/json"},
    )
    assert r.status_code in (400, 413, 422), r.text
    assert r.headers["content-type"].startswith(ERROR_TYPES)


async def test_huge_headers_and_query_strings_are_refused_or_ignored(
    client: httpx.AsyncClient, account: AccountFixture
) -> None:
    url = f"/api/v1/inboxes/{account.inbox_ids['api']}/inbound"
    body = {"from": {"kind": "email", "value": "a@b.test"}, "text": "x"}
    r = await client.post(url, json=body, headers={**account.auth, "x-junk": "j" * 200_000})
    assert r.status_code == 431 and r.headers["content-type"] == "application/problem+json", r.text
    r = await client.post(
        url, json=body, headers={**account.auth, **{f"x-h{i}": "v" * 1000 for i in range(100)}}
    )
    assert r.status_code == 431, r.text
    r = await client.get("/api/v1/conversations?label=" + "l" * 30_000, headers=account.auth)
    assert r.status_code in (400, 414, 422), r.text
    r = await client.get("/api/v1/conversations", headers={"authorization": "Bearer " + "t" * 100_000})
    assert r.status_code == 431, r.text
    r = await client.get("/api/v1/conversations", headers={"authorization": "Bearer " + "t" * 20_000})
    assert r.status_code == 401, r.text


async def test_a_streamed_body_over_the_limit_without_a_length_is_413(
    client: httpx.AsyncClient, account: AccountFixture
) -> None:
    """No Content-Length (chunked): the limit is enforced while reading, and the answer is still 413."""

    async def chunks() -> Any:
        yield b'{"from": {"kind": "email", "value": "a@b.test"}, "text": "'
        for _ in range(32):
            yield b"x" * 65536
        yield b'"}'

    r = await client.post(
        f"/api/v1/inboxes/{account.inbox_ids['api']}/inbound",
        content=chunks(),
        headers={**account.auth, "content-type": "application/json"},
    )
    assert r.status_code == 413, r.text
    assert r.headers["content-type"] == "application/problem+json"


async def test_numbers_out_of_range_in_paths_and_queries_are_4xx(
    app: Any, client: httpx.AsyncClient, account: AccountFixture
) -> None:
    """An id of 25 digits cannot be bound by the SQLite driver (OverflowError): a 4xx, never a 500."""
    huge = str(10**25)
    csrf = await login(client, account.admin_email, account.password)  # for the workspace's routes
    failures = []
    for route in all_routes(app):
        if route.kind != "http" or not any(p.endswith("_id") for p in route.params):
            continue
        url = route.url(
            {p: huge if p.endswith("_id") else "0" if p == "index" else "shop_key" for p in route.params}
        )
        for method in route.methods:
            r = await client.request(method, url, headers={**account.auth, "x-csrf-token": csrf})
            if r.status_code not in ALLOWED:
                failures.append(f"{method} {url}: {r.status_code} {r.text[:120]}")
    for url in (
        f"/api/v1/contacts?before={huge}",
        f"/api/v1/audit?before={huge}",
        f"/api/v1/audit?target_id={huge}",
        f"/api/v1/conversations/1/messages?after={huge}",
    ):
        r = await client.get(url, headers=account.auth)
        if r.status_code not in ALLOWED:
            failures.append(f"GET {url}: {r.status_code} {r.text[:120]}")
    assert not failures, "\n".join(failures)


# ---------------------------------------------------------------- a real server


def _raw_request(port: int, head: bytes, body_part: bytes) -> bytes:
    """Send the head and part of the body, then read what the server answers without sending the rest."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(head + body_part)
        chunks = []
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    break
                chunks.append(data)
                if b"\r\n\r\n" in b"".join(chunks) and b"}" in chunks[-1]:
                    break
        except (ConnectionResetError, TimeoutError):
            pass
        return b"".join(chunks)


@pytest.mark.slow
def test_a_real_server_refuses_20_mb_bodies_and_huge_headers_and_stays_alive(
    settings: Settings, account: AccountFixture
) -> None:
    server = start_server(server_env(settings))
    try:
        url = f"/api/v1/inboxes/{account.inbox_ids['api']}/inbound"
        auth = f"Authorization: Bearer {account.token}\r\n".encode()
        # Declared 20 MB: answered 413 from the headers alone, after 64 KB of the body was sent.
        head = (
            (
                f"POST {url} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {20 * 1_048_576}\r\n"
            ).encode()
            + auth
            + b"\r\n"
        )
        answer = _raw_request(server.port, head, b"x" * 65536)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
        assert b"application/problem+json" in answer
        # Chunked, no length declared: 20 MB streamed; the server stops reading past 1 MB and answers 413.
        with httpx.Client(base_url=server.url, timeout=60) as c:

            def chunks() -> Iterator[bytes]:
                yield b'{"text": "'
                for _ in range(20 * 16):
                    yield b"x" * 65536
                yield b'"}'

            try:
                r = c.post(
                    url, content=chunks(), headers={**account.auth, "content-type": "application/json"}
                )
                assert r.status_code == 413, r.text
            except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
                pass  # the server answered and closed while the client was still sending: also a refusal
            # Huge headers: 431 (uvicorn's default parser, httptools, sets no limit of its own).
            try:
                r = c.get("/api/v1/me", headers={**account.auth, "x-junk": "j" * 200_000})
                assert r.status_code == 431, r.status_code
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
                pass  # closed without an answer: the parser's refusal
            # Still alive and serving.
            assert c.get("/healthz").status_code == 200
            r = c.post(
                url,
                json={"from": {"kind": "email", "value": "a@b.test"}, "text": "after"},
                headers=account.auth,
            )
            assert r.status_code == 201, r.text
        assert server.proc.poll() is None
    finally:
        server.stop()


# ---------------------------------------------------------------- schemathesis over the OpenAPI schema


def test_schemathesis_finds_no_server_error(settings: Settings) -> None:
    """Positive and negative cases for every operation of /api/v1/openapi.json, as a real account: no 5xx.

    schemathesis's pytest integration (`from_fixture`) does not work with pytest 9, so the operations are
    driven here with hypothesis directly. The app runs in schemathesis's own ASGI client (and event loop),
    without the embedded worker, so nothing runs in the background between cases."""
    app = create_app(settings.model_copy(update={"embedded_worker": False}))
    acc = make_account(app.state.services.db, "fuzz")
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 40, len(operations)
    # Destructive calls last, so that a fuzzed logout or token revocation does not blind the rest.
    operations.sort(key=lambda op: (op.method.upper() == "DELETE" or op.path.endswith("/logout"), op.path))
    failures: list[str] = []
    statuses: list[int] = []
    for op in operations:
        if op.path == "/api/v1/events":
            continue  # an endless event stream: exercised in the real-time tests
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            label = mode.value

            @hypothesis.given(case=op.as_strategy(generation_mode=mode))
            @hypothesis.settings(
                max_examples=8,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(hypothesis.HealthCheck),
                phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
            )
            def run(case: Any) -> None:
                try:
                    response = case.call(headers=dict(acc.auth))
                except Exception as exc:  # the test client re-raises what the app answered 500 for
                    failures.append(f"{label} {case.method} {case.formatted_path}: {exc!r}"[:400])  # noqa: B023 (run is called in this iteration)
                    return
                statuses.append(response.status_code)
                if response.status_code >= 500:
                    failures.append(
                        f"{label} {case.method} {case.formatted_path} body={str(case.body)[:200]}: "  # noqa: B023
                        f"{response.status_code} {response.text[:200]}"
                    )

            with contextlib.suppress(hypothesis.errors.Unsatisfiable):
                run()  # (Unsatisfiable: no negative case exists for an operation without inputs)
    assert not failures, "\n".join(failures)
    assert len(statuses) >= 200 and sum(200 <= s < 300 for s in statuses) >= 50, sorted(set(statuses))
