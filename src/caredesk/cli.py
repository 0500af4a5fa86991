"""`caredesk` command line: serve, migrate, createadmin, demo, worker (+ the AI commands)."""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
import sys
from typing import Annotated

import typer

from caredesk.platform.db import Database
from caredesk.settings import get_settings

app = typer.Typer(
    help="Caredesk: the open-source customer-care platform.", no_args_is_help=True, add_completion=False
)


def _fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _db() -> Database:
    from caredesk.migrate import upgrade

    db = Database(get_settings().database_url)
    upgrade(db)
    return db


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    from caredesk.migrate import current

    db = _db()
    typer.echo(f"database at revision {current(db)} ({db.dialect})")
    db.close()


@app.command()
def createadmin(
    email: Annotated[str, typer.Option(help="admin's login email")],
    name: Annotated[str, typer.Option(help="admin's display name")] = "Admin",
    account: Annotated[str, typer.Option(help="account (business) name")] = "My business",
    slug: Annotated[str, typer.Option(help="account slug")] = "my-business",
    password: Annotated[str | None, typer.Option(help="password (asked when omitted)")] = None,
) -> None:
    """Create an account and its first admin."""
    from sqlalchemy import select

    from caredesk.accounts.actions import create_account, create_agent
    from caredesk.accounts.actors import system_actor
    from caredesk.accounts.models import Account
    from caredesk.platform.errors import CaredeskError

    pw = password or os.environ.get("CAREDESK_ADMIN_PASSWORD") or getpass.getpass("password: ")
    db = _db()

    def w(s):  # type: ignore[no-untyped-def]
        acc = s.execute(select(Account).where(Account.slug == slug)).scalar_one_or_none() or create_account(
            s, account, slug
        )
        agent = create_agent(s, system_actor(acc.id), email=email, name=name, role="admin", password=pw)
        return acc.id, agent.id

    try:
        account_id, agent_id = db.write_sync(w)
    except CaredeskError as exc:
        _fail(exc.detail)
    finally:
        db.close()
    typer.echo(f"admin {email} (agent {agent_id}) created in account {account_id}")


@app.command()
def demo(
    conversations: Annotated[int, typer.Option(help="past conversations to create")] = 300,
    seed: Annotated[int, typer.Option(help="random seed")] = 7,
) -> None:
    """Seed the demo business (an online shop) with agents, teams, inboxes, contacts and conversations."""
    from caredesk.demo.seed import DEMO_PASSWORD, seed_demo

    db = _db()
    try:
        info = seed_demo(db, conversations=conversations, seed=seed, data_dir=get_settings().data_dir)
    finally:
        db.close()
    if info.get("existing"):
        typer.echo("demo business already present")
    else:
        typer.echo(
            f"demo business created: {info['conversations']} conversations, {info['contacts']} contacts"
        )
    typer.echo(f"log in as {info['admin_email']} / {DEMO_PASSWORD}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8000,
    demo_data: Annotated[bool, typer.Option("--demo", help="seed the demo business first if absent")] = False,
    workers: Annotated[int, typer.Option(help="web processes (PostgreSQL recommended for more than 1)")] = 1,
    log_level: Annotated[str, typer.Option(help="log level")] = "info",
) -> None:
    """Run Caredesk (creates and migrates the database on first start)."""
    import uvicorn

    db = _db()
    if demo_data:
        from caredesk.demo.seed import DEMO_PASSWORD, seed_demo

        info = seed_demo(db, data_dir=get_settings().data_dir)
        typer.echo(
            f"\n  Caredesk demo: open http://{host}:{port}/  and log in as {info['admin_email']} / {DEMO_PASSWORD}"
        )
        typer.echo(f"  Customer side: http://{host}:{port}/demo   API docs: http://{host}:{port}/api/docs\n")
    db.close()
    logging.basicConfig(level=log_level.upper())
    uvicorn.run(
        "caredesk.asgi:app",
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        proxy_headers=False,
        # Real-time frames are small JSON sent to many sockets at once; compressing each one for each
        # socket (permessage-deflate keeps a compressor per connection) cost more of the one event loop
        # than anything else in the fan-out. See docs/benchmarks.md, "Widget and workspace".
        ws_per_message_deflate=False,
    )


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="jobs run at once")] = 8,
    once: Annotated[bool, typer.Option(help="process what is ready, then exit")] = False,
) -> None:
    """Run a standalone job worker (scaled mode)."""
    from caredesk.app import build_services
    from caredesk.migrate import upgrade
    from caredesk.platform.worker import Worker

    logging.basicConfig(level=logging.INFO)
    settings = get_settings()
    svc = build_services(settings, embedded_worker=False)
    upgrade(svc.db)
    w = Worker(
        svc.db,
        svc.registry,
        svc,
        concurrency=concurrency,
        lease_seconds=settings.job_lease_seconds,
        poll_seconds=settings.job_poll_seconds,
    )
    svc.worker = w

    async def run() -> None:
        await svc.bus.start()
        try:
            if once:
                n = await w.run_until_idle()
                typer.echo(f"processed {n} jobs")
            else:
                await w.run()
        finally:
            await svc.bus.stop()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    finally:
        svc.db.close()


def _register_optional() -> None:
    try:
        from caredesk.ai.cli import register as register_ai
    except ModuleNotFoundError as exc:
        if exc.name is not None and "caredesk.ai.cli".startswith(exc.name):
            return
        raise
    register_ai(app)


_register_optional()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
