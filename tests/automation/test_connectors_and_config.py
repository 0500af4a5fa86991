from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from caredesk.automation import connectors as conn_mod
from caredesk.automation.config import ConnectorSpec, parse
from caredesk.automation.connectors import ConnectorError, HttpConnector, SqlConnector
from caredesk.automation.decide import Situation, decide
from caredesk.automation.models import AutomationSecret
from caredesk.automation.secrets import get_secret, set_secret
from caredesk.automation.understanding import Understanding
from caredesk.platform.errors import Invalid
from caredesk.services import Services
from tests.conftest import AccountFixture

# The whole module runs on PostgreSQL too (make test), not only on SQLite.
pytestmark = pytest.mark.postgres

DEMO = (Path(__file__).resolve().parents[2] / "src" / "caredesk" / "demo" / "actions.yaml").read_text()


def _spec(**kw: Any) -> ConnectorSpec:
    return ConnectorSpec(kind="http", base_url="https://shop.example/api", retry_backoff=0.01, **kw)


async def _no_sleep(_: float) -> None:
    return None


async def test_http_retries_transient_failures_and_honours_retry_after() -> None:
    seen: list[httpx.Request] = []
    answers = [
        httpx.Response(503),
        httpx.Response(429, headers={"retry-after": "7"}),
        httpx.Response(200, json={"ok": True}),
    ]
    waits: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers[len(seen) - 1]

    async def sleep(s: float) -> None:
        waits.append(s)

    c = HttpConnector(
        "shop",
        _spec(retries=2, auth={"type": "bearer", "secret": "tok"}),
        secrets={"tok": "s3cret"},
        transport=httpx.MockTransport(handler),
        sleep=sleep,
    )
    assert await c.call("POST", "/refunds", json={"amount": 5}, idempotency_key="k-1") == {"ok": True}
    assert len(seen) == 3 and waits[1] >= 7
    assert {r.headers["idempotency-key"] for r in seen} == {"k-1"}  # a retried POST is the same request
    assert (
        seen[0].headers["authorization"] == "Bearer s3cret"
        and str(seen[0].url) == "https://shop.example/api/refunds"
    )


async def test_http_gives_up_after_retries_and_does_not_retry_4xx() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if request.url.path.endswith("/timeout"):
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(404, json={"detail": "no order"})

    c = HttpConnector(
        "shop", _spec(retries=2), secrets={}, transport=httpx.MockTransport(handler), sleep=_no_sleep
    )
    with pytest.raises(ConnectorError) as e:
        await c.call("GET", "/orders/X")
    assert e.value.status == 404 and not e.value.transient and calls == 1 and "no order" in str(e.value)
    with pytest.raises(ConnectorError) as e:
        await c.call("GET", "/timeout")
    assert e.value.transient and calls == 4


async def test_oauth2_client_credentials_token_is_fetched_and_reused() -> None:
    conn_mod._tokens.clear()
    token_calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal token_calls
        if request.url.path == "/oauth/token":
            token_calls += 1
            assert (
                b"grant_type=client_credentials" in request.content and b"client_secret=cs" in request.content
            )
            return httpx.Response(200, json={"access_token": "AT", "expires_in": 3600})
        assert request.headers["authorization"] == "Bearer AT"
        return httpx.Response(200, json={"n": 1})

    spec = _spec(
        auth={
            "type": "oauth2_client_credentials",
            "token_url": "https://shop.example/oauth/token",
            "client_id": "cid",
            "secret": "cs",
        }
    )
    c = HttpConnector(
        "shop", spec, secrets={"cs": "cs"}, transport=httpx.MockTransport(handler), sleep=_no_sleep
    )
    await c.call("GET", "/a")
    await c.call("GET", "/b")
    assert token_calls == 1


async def test_sql_connector_is_read_only_by_default(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as db:
        db.execute("create table orders (number text, status text)")
        db.execute("insert into orders values ('TH-1', 'shipped')")
    c = SqlConnector("erp", ConnectorSpec(kind="sql", dsn_secret="dsn"), secrets={"dsn": f"sqlite:///{path}"})
    out = await c.query("select status from orders where number = :n", {"n": "TH-1"})
    assert out["row"] == {"status": "shipped"}
    with pytest.raises(ConnectorError):
        await c.query("update orders set status = 'x'", {})
    with pytest.raises(ConnectorError):  # the database itself refuses a write hidden in a query
        await c.query("with x as (select 1) delete from orders", {})
    with sqlite3.connect(path) as db:
        assert db.execute("select status from orders").fetchone() == ("shipped",)


async def test_secrets_are_encrypted_at_rest(services: Services, account: AccountFixture) -> None:
    key = services.settings.secret_key
    await services.db.write(set_secret, account.id, key, "shop_api_key", "very-secret-value")
    row = await services.db.read(lambda s: s.query(AutomationSecret).one())
    assert "very-secret-value" not in row.ciphertext
    assert await services.db.read(get_secret, account.id, key, "shop_api_key") == "very-secret-value"
    with pytest.raises(Invalid):
        await services.db.read(get_secret, account.id, "another-secret-key", "shop_api_key")


def test_config_validation_gives_reasons() -> None:
    spec = parse(DEMO)
    assert spec.action("refund") is not None and spec.action("refund").policy.max_amount == 50  # type: ignore[union-attr]
    with pytest.raises(Invalid, match="needs a confirm text"):
        parse(
            DEMO.replace(
                '    confirm: "Shall I create a free return label for order {order_number}? (yes/no)"\n', ""
            )
        )
    with pytest.raises(Invalid, match="unknown connector"):
        parse(
            DEMO.replace(
                '{connector: shop, method: GET, path: "/orders/{order_number}"}',
                "{connector: nope, path: /x}",
                1,
            )
        )
    with pytest.raises(Invalid, match="not valid YAML"):
        parse("actions: [")
    with pytest.raises(Invalid, match="not a slot"):
        parse(DEMO.replace("Done: order {order_number}", "Done: order {ordr}"))


async def test_config_api_versions_and_validates(client: httpx.AsyncClient, account: AccountFixture) -> None:
    h = account.auth
    assert (await client.get("/api/v1/automation/config", headers=h)).json()["version"] == 0
    assert (await client.put("/api/v1/automation/config", json={"source": DEMO}, headers=h)).json() == {
        "version": 1
    }
    assert (await client.put("/api/v1/automation/config", json={"source": DEMO}, headers=h)).json() == {
        "version": 2
    }
    bad = await client.put("/api/v1/automation/config", json={"source": "actions: 3"}, headers=h)
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
    assert (
        await client.put("/api/v1/automation/secrets/shop_api_key", json={"value": "x"}, headers=h)
    ).status_code == 204
    assert (await client.get("/api/v1/automation/secrets", headers=h)).json() == {"names": ["shop_api_key"]}
    names = [a["name"] for a in (await client.get("/api/v1/automation/actions", headers=h)).json()["items"]]
    assert names == ["order_status", "change_address", "refund", "start_return", "password_reset"]
    assert (await client.put("/api/v1/automation/config", json={"source": 5}, headers=h)).status_code == 422


def test_decision_never_asks_for_a_known_slot() -> None:
    spec = parse(DEMO)
    s = Situation(
        "where is my order?",
        Understanding(intent="order_status", confidence=0.9),
        spec,
        True,
        False,
        False,
        False,
        {"order_number": "TH-10001"},
        {},
    )
    d = decide(s)
    assert d.kind == "execute" and d.slots == {"order_number": "TH-10001"}


@pytest.mark.parametrize(
    ("reason", "expected"),
    [("human_requested", "human_request"), ("bereavement", "sensitive"), ("fraud", "fraud")],
)
def test_ai_escalation_reasons_map_to_handoffs(reason: str, expected: str) -> None:
    u = Understanding(intent=None, confidence=0.0, escalate=True, escalate_reason=reason)
    d = decide(Situation("hello there", u, parse(DEMO), True, False, False, False, {}, {}))
    assert d.kind == "handoff" and d.reason == expected
