"""The demo shop's own API (orders, shipments, customers, returns, refunds, password resets).

It stands in for the business's systems so the whole care loop works out of the box: `caredesk demo`
configures a connector to it (mounted under /demo-shop/api) and the actions in `actions.yaml`.
State is in memory and per process; it honours Idempotency-Key on writes like a real payment API.
"""

from __future__ import annotations

import copy
import datetime as dt
import secrets
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

DEMO_API_KEY = "demo-shop-key-7f3a"  # a demo credential; stored encrypted like any real one

STATUS_TEXT = {
    "processing": "being packed in our warehouse and hasn't shipped yet",
    "shipped": "on its way",
    "delivered": "delivered",
    "cancelled": "cancelled",
}


def _seed_orders() -> dict[str, dict[str, Any]]:
    def order(
        number: str,
        email: str,
        status: str,
        total: float,
        items: list[str],
        address: str,
        carrier: str = "",
        tracking: str = "",
        eta: str = "",
    ) -> dict[str, Any]:
        return {
            "number": number,
            "email": email,
            "status": status,
            "status_text": STATUS_TEXT[status],
            "total": total,
            "currency": "EUR",
            "items": items,
            "address": address,
            "carrier": carrier,
            "tracking": tracking,
            "tracking_url": f"https://track.example/{tracking}" if tracking else "",
            "eta": eta,
            "refunded": 0.0,
        }

    return {
        o["number"]: o
        for o in [
            order(
                "TH-10001",
                "anna@mail.example",
                "shipped",
                39.90,
                ["Trail socks (3 pack)"],
                "Kastanienallee 5, 10435 Berlin",
                "DHL",
                "JD0146000012345",
                "tomorrow before noon",
            ),
            order(
                "TH-10002",
                "anna@mail.example",
                "delivered",
                189.00,
                ["Alpine 2 tent"],
                "Kastanienallee 5, 10435 Berlin",
                "DHL",
                "JD0146000054321",
                "",
            ),
            order(
                "TH-10003",
                "ben@mail.example",
                "processing",
                72.50,
                ["Headlamp", "Camping mug"],
                "Hauptstraße 1, 80331 München",
            ),
            order(
                "TH-10004",
                "chloe@mail.example",
                "delivered",
                24.50,
                ["Water bottle"],
                "Rue de Rivoli 10, 75001 Paris",
                "La Poste",
                "LP998877",
                "",
            ),
            order(
                "TH-10005",
                "david@mail.example",
                "shipped",
                310.00,
                ["Summit 4 tent"],
                "Ringstraße 3, 1010 Wien",
                "DHL",
                "JD0146000077777",
                "in 2 days",
            ),
        ]
    }


@dataclass
class DemoShop:
    api_key: str = DEMO_API_KEY
    orders: dict[str, dict[str, Any]] = field(default_factory=_seed_orders)
    customers: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {
            "anna@mail.example": {"email": "anna@mail.example", "name": "Anna Schmidt", "tier": "gold"},
            "ben@mail.example": {"email": "ben@mail.example", "name": "Ben Nguyen", "tier": "standard"},
            "chloe@mail.example": {"email": "chloe@mail.example", "name": "Chloe Garcia", "tier": "standard"},
            "david@mail.example": {
                "email": "david@mail.example",
                "name": "David Kowalski",
                "tier": "standard",
            },
        }
    )
    refunds: list[dict[str, Any]] = field(default_factory=list)
    returns: list[dict[str, Any]] = field(default_factory=list)
    resets: list[str] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(
        default_factory=list
    )  # (method, path): what the connector really did
    fail_next: int = 0  # answer the next N calls with 503 (to show retries and failed-action handoffs)
    _idem: dict[str, tuple[int, Any]] = field(default_factory=dict)

    def writes(self, path_part: str = "") -> list[tuple[str, str]]:
        return [c for c in self.calls if c[0] != "GET" and path_part in c[1]]


class AddressIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    address: str = Field(min_length=5, max_length=300)


class RefundIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: float = Field(gt=0, le=100_000)
    reason: str = Field(default="", max_length=500)


class ReturnIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=500)


class ResetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=3, max_length=320)


def create_shop_app(shop: DemoShop | None = None) -> FastAPI:
    shop = shop or DemoShop()
    api = FastAPI(title="Trailhead demo shop API", docs_url=None, redoc_url=None, openapi_url=None)
    api.state.shop = shop

    @api.middleware("http")
    async def guard(request: Request, call_next: Any) -> Any:
        path, root = request.url.path, request.scope.get("root_path", "")
        shop.calls.append((request.method, path[len(root) :] if root and path.startswith(root) else path))
        if request.headers.get("x-api-key") != shop.api_key:
            return JSONResponse({"detail": "missing or wrong X-Api-Key"}, status_code=401)
        if shop.fail_next > 0:
            shop.fail_next -= 1
            return JSONResponse(
                {"detail": "temporarily unavailable"}, status_code=503, headers={"retry-after": "0"}
            )
        key = request.headers.get("idempotency-key")
        if key and request.method != "GET" and key in shop._idem:
            status, body = shop._idem[key]
            return JSONResponse(body, status_code=status)
        response = await call_next(request)
        if key and request.method != "GET" and response.status_code < 500:
            chunks = [c async for c in response.body_iterator]
            raw = b"".join(chunks)
            import json

            shop._idem[key] = (response.status_code, json.loads(raw or b"{}"))
            return JSONResponse(shop._idem[key][1], status_code=response.status_code)
        return response

    def get_order(number: str) -> dict[str, Any]:
        o = shop.orders.get(number.upper())
        if o is None:
            raise HTTPException(404, f"no order {number}")
        return o

    @api.get("/orders/{number}")
    async def order(number: str) -> dict[str, Any]:
        return copy.deepcopy(get_order(number))

    @api.get("/orders")
    async def orders(email: str) -> dict[str, Any]:
        return {"orders": [copy.deepcopy(o) for o in shop.orders.values() if o["email"] == email.lower()]}

    @api.get("/shipments/{number}")
    async def shipment(number: str) -> dict[str, Any]:
        o = get_order(number)
        if not o["tracking"]:
            raise HTTPException(404, "not shipped yet")
        return {
            "order": o["number"],
            "carrier": o["carrier"],
            "tracking": o["tracking"],
            "tracking_url": o["tracking_url"],
            "eta": o["eta"],
        }

    @api.put("/orders/{number}/address")
    async def change_address(number: str, body: AddressIn) -> dict[str, Any]:
        o = get_order(number)
        if o["status"] != "processing":
            raise HTTPException(
                409, f"order {o['number']} has already shipped; the address can no longer be changed"
            )
        o["address"] = body.address.strip()
        return copy.deepcopy(o)

    @api.post("/orders/{number}/refunds", status_code=201)
    async def refund(number: str, body: RefundIn) -> dict[str, Any]:
        o = get_order(number)
        if body.amount > o["total"] - o["refunded"] + 1e-9:
            raise HTTPException(422, "refund is larger than what is left on the order")
        o["refunded"] = round(o["refunded"] + body.amount, 2)
        r = {
            "id": f"RF-{len(shop.refunds) + 1:04d}",
            "order": o["number"],
            "amount": body.amount,
            "currency": "EUR",
            "arrives": "in 3-5 business days",
            "created": dt.date.today().isoformat(),
        }
        shop.refunds.append(r)
        return r

    @api.post("/orders/{number}/returns", status_code=201)
    async def create_return(number: str, body: ReturnIn) -> dict[str, Any]:
        o = get_order(number)
        if o["status"] != "delivered":
            raise HTTPException(409, "only delivered orders can be returned")
        r = {
            "id": f"RT-{len(shop.returns) + 1:04d}",
            "order": o["number"],
            "label_url": f"https://labels.example/{secrets.token_hex(6)}",
            "reason": body.reason,
        }
        shop.returns.append(r)
        return r

    @api.get("/customers")
    async def customer(email: str) -> dict[str, Any]:
        c = shop.customers.get(email.lower())
        if c is None:
            raise HTTPException(404, "no such customer")
        return c

    @api.post("/password-resets", status_code=202)
    async def password_reset(body: ResetIn) -> dict[str, Any]:
        # Same answer whether or not the address exists: the shop never reveals who its customers are.
        if body.email.lower() in shop.customers:
            shop.resets.append(body.email.lower())
        return {"sent_to": body.email.lower(), "valid_minutes": 60}

    return api


_shared: DemoShop | None = None


def shared_shop() -> DemoShop:
    """The one demo shop of this process (what /demo-shop/api serves)."""
    global _shared
    if _shared is None:
        _shared = DemoShop()
    return _shared
