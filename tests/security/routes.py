"""The app's routes, flattened: every HTTP and WebSocket route FastAPI serves, with its path parameters.

FastAPI keeps included routers as lazy branches in `app.routes`; `iter_route_contexts` yields the
effective routes (prefix applied), so a router added anywhere shows up here."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts
from starlette.routing import Mount, Route, WebSocketRoute

PARAM = re.compile(r"{(\w+)(?::\w+)?}")


@dataclass(frozen=True)
class RouteInfo:
    kind: str  # "http" | "websocket" | "mount"
    path: str
    methods: tuple[str, ...]
    params: tuple[str, ...]
    endpoint: Any
    is_api: bool  # an APIRoute (pydantic-validated body/query), not a bare starlette Route

    def url(self, values: dict[str, str]) -> str:
        return PARAM.sub(lambda m: values[m.group(1)], self.path)


def all_routes(app: Any) -> list[RouteInfo]:
    out: list[RouteInfo] = []
    for rc in iter_route_contexts(app.routes):
        original = rc.original_route
        path = str(rc.path)
        params = tuple(m.group(1) for m in PARAM.finditer(path))
        if isinstance(original, Mount):
            out.append(RouteInfo("mount", path, (), params, None, False))
        elif isinstance(original, APIWebSocketRoute | WebSocketRoute):
            out.append(RouteInfo("websocket", path, (), params, rc.endpoint, False))
        elif isinstance(original, APIRoute | Route):
            methods = tuple(sorted(m for m in (rc.methods or ()) if m != "HEAD"))
            out.append(RouteInfo("http", path, methods, params, rc.endpoint, isinstance(original, APIRoute)))
        else:  # pragma: no cover - a new kind of route must be looked at by a person
            raise AssertionError(f"unknown route type {type(original).__name__} at {path}")
    return out


def json_body_routes(app: Any) -> list[tuple[str, RouteInfo]]:
    """(method, route) for every POST/PUT/PATCH APIRoute that takes a body."""
    found: list[tuple[str, RouteInfo]] = []
    for rc in iter_route_contexts(app.routes):
        original = rc.original_route
        if not isinstance(original, APIRoute) or original.body_field is None:
            continue
        path = str(rc.path)
        info = RouteInfo(
            "http",
            path,
            tuple(sorted(original.methods)),
            tuple(m.group(1) for m in PARAM.finditer(path)),
            rc.endpoint,
            True,
        )
        found.extend((m, info) for m in sorted(original.methods or ()) if m in ("POST", "PUT", "PATCH"))
    return found
