"""Wiring: builds the services for one process and the ASGI app. The only place that picks adapters."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from caredesk.conversations.delivery import deliver_message
from caredesk.conversations.pipeline import Pipeline, wake_job
from caredesk.platform.bus import EventHub, make_bus
from caredesk.platform.db import Database
from caredesk.platform.jobs import JobRegistry
from caredesk.platform.storage import LocalDiskStorage
from caredesk.platform.worker import Worker
from caredesk.services import Services
from caredesk.settings import Settings, get_settings
from caredesk.web import problems
from caredesk.web.hotpath import HotPaths, HotRoute, hot_routes_of
from caredesk.web.limits import BodyLimitMiddleware, RateLimiter, RateLimitMiddleware

log = logging.getLogger(__name__)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self' ws: wss:; frame-ancestors 'self'; base-uri 'self'; form-action 'self'; object-src 'none'"
)


def build_registry(pipeline: Pipeline) -> JobRegistry:
    registry = JobRegistry()
    registry.add("message.process", pipeline.run)
    registry.add("message.deliver", deliver_message)
    registry.add("conversation.wake", wake_job)
    return registry


def build_pipeline() -> Pipeline:
    """The steps after a customer's message is stored. Domains above conversations plug in here."""
    pipeline = Pipeline()
    for hook in _pipeline_hooks():
        hook(pipeline)
    return pipeline


def _pipeline_hooks() -> list[Any]:
    hooks: list[Any] = []
    # Each domain exposes `install(pipeline)`; a domain that is not built yet is simply absent.
    for module in (
        "caredesk.ai.jobs",
        "caredesk.automation.jobs",
        "caredesk.routing.jobs",
        "caredesk.care.jobs",
    ):
        try:
            mod = __import__(module, fromlist=["install"])
        except ModuleNotFoundError as exc:
            if exc.name is not None and module.startswith(exc.name):
                continue
            raise
        hooks.append(mod.install)
    return hooks


def build_services(settings: Settings, *, embedded_worker: bool | None = None) -> Services:
    db = Database(settings.database_url)
    bus = make_bus(settings.redis_url)
    hub = EventHub(db, bus)
    pipeline = build_pipeline()
    registry = build_registry(pipeline)
    storage = LocalDiskStorage(settings.data_dir / "attachments")
    svc = Services(settings=settings, db=db, bus=bus, hub=hub, registry=registry, storage=storage)
    svc.extras["pipeline"] = pipeline
    svc.extras["login_limiter"] = RateLimiter(settings.login_attempts_per_minute)
    db.after_commit.append(hub.on_commit)
    run_worker = settings.embedded_worker if embedded_worker is None else embedded_worker
    if run_worker:
        svc.worker = Worker(
            db,
            registry,
            svc,
            lease_seconds=settings.job_lease_seconds,
            poll_seconds=settings.job_poll_seconds,
        )
        db.after_commit.append(svc.worker.on_commit)
    _install_channels(svc)
    return svc


def _install_channels(svc: Services) -> None:
    """Channel adapters register their senders and job handlers here (only app.py picks adapters)."""
    try:
        from caredesk.channels import install as install_channels
    except ImportError:
        return
    install_channels(svc)


class SecurityHeaders:
    """CSP and friends on every response that doesn't set its own (pure ASGI: no per-request task)."""

    DEFAULTS = (
        (b"content-security-policy", CSP.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers.extend((k, v) for k, v in self.DEFAULTS if k not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    settings = settings or get_settings()
    svc = services or build_services(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import asyncio
        import gc

        from caredesk.migrate import upgrade

        upgrade(svc.db)
        # The routing sweep runs from boot, not only once messages flow.
        if svc.registry.get("routing.sweep") is not None:
            from caredesk.routing.jobs import schedule_sweep

            await svc.db.write(schedule_sweep, 0.0)
        if settings.preload_models:
            if svc.worker is not None:
                # Before accepting connections: the load holds the GIL for seconds (caredesk.ai.language).
                from caredesk.ai.language import preload

                await asyncio.to_thread(preload)
            # What exists now (modules, models, the app) lives as long as the process: keep it out of the
            # full garbage collections, which walk every tracked object while holding the GIL and so pause
            # every stream of the process (0.25-0.9 s each with 1,000 sessions on a loaded 2-core machine).
            gc.collect()
            gc.freeze()
        await svc.bus.start()
        task = asyncio.create_task(svc.worker.run()) if svc.worker else None
        smtp = await _start_smtp(svc)
        try:
            yield
        finally:
            if smtp is not None:
                smtp.close()
            if svc.worker:
                svc.worker.stop()
            if task:
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(task, timeout=15)
            await svc.bus.stop()
            svc.db.close()

    app = CaredeskApp(
        title="Caredesk API",
        version="1",
        description="One inbox, one customer, one timeline. Errors are application/problem+json (RFC 9457).",
        lifespan=lifespan,
        docs_url="/api/docs",
        openapi_url="/api/v1/openapi.json",
        redoc_url=None,
    )
    app.state.services = svc
    problems.install(app)

    from caredesk.web import realtime
    from caredesk.web.api import accounts, auth, contacts, conversations, inbound

    # The inbound route first: it takes most of the traffic, and routes are matched in order.
    for module in (inbound, auth, accounts, contacts, conversations, realtime):
        app.include_router(module.router)
    hot_routes = hot_routes_of(inbound) + _include_optional(app, svc)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok", "database": svc.db.dialect, "bus": type(svc.bus).__name__})

    app.add_middleware(SecurityHeaders)
    limiter = svc.extras.get("rate_limiter") or RateLimiter(settings.rate_limit_per_minute)
    app.add_middleware(RateLimitMiddleware, limiter=limiter, exempt_prefixes=("/healthz", "/static"))
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        upload_max_bytes=settings.max_upload_bytes,
        upload_prefixes=("/api/v1/uploads", "/widget/api/uploads"),
        upload_patterns=(r"/ui/c/\d+/reply", r"/api/v1/conversations/\d+/attachments"),
    )
    # Before everything, FastAPI's own layers included: the routes that take most of the traffic skip the
    # stack above when the request is valid.
    app.hot = HotPaths(
        functools.partial(FastAPI.__call__, app),
        services=svc,
        routes=hot_routes,
        limiter=limiter,
        max_body_bytes=settings.max_body_bytes,
        default_headers=SecurityHeaders.DEFAULTS,
    )
    return app


class CaredeskApp(FastAPI):
    """FastAPI, with the hot routes (caredesk.web.hotpath) answered before its middleware stack runs."""

    hot: HotPaths | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.hot is not None and scope["type"] == "http":
            await self.hot(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


async def _start_smtp(svc: Services) -> Any:
    """The built-in SMTP server for inbound email, when CAREDESK_SMTP_PORT is set."""
    try:
        from caredesk.channels.email.server import start_configured
    except ImportError:
        return None
    return await start_configured(svc)


def _include_optional(app: FastAPI, svc: Services) -> list[HotRoute]:
    """Routers of parts that plug in (channels' webhooks, the widget, the agent workspace); returns their
    hot routes."""
    hot: list[HotRoute] = []
    for module in (
        "caredesk.channels.routes",
        "caredesk.web.widget",
        "caredesk.web.files",
        "caredesk.ui.routes",
        "caredesk.web.api.knowledge",
        "caredesk.web.api.automation",
    ):
        try:
            mod = __import__(module, fromlist=["router"])
        except ModuleNotFoundError as exc:
            if exc.name is not None and module.startswith(exc.name):
                continue
            raise
        if hasattr(mod, "setup"):
            mod.setup(app, svc)
        else:
            app.include_router(mod.router)
        hot.extend(hot_routes_of(mod))
    return hot
