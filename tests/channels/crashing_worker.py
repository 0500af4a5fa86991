"""`caredesk worker`, run for real, with a crash hook for R4: it SIGKILLs itself at the point of a delivery
named by `R4_CRASH_AT` (the process dies exactly there, as on an OOM kill or a power cut of the worker).

    before_call  the sender was handed the message; nothing has gone to the provider yet
    after_call   the provider accepted the message; its answer is in memory, not yet marked sent
    after_mark   the message is marked sent (committed); the job is not yet marked done

The fourth point, `during_call` (the provider has the request, the answer never comes back), needs no hook:
the test's fake provider holds the request and the test kills this process from outside.

Usage: python tests/channels/crashing_worker.py worker --concurrency 1   (any `caredesk` arguments)
"""

from __future__ import annotations

import os
import signal
from typing import Any

POINT = os.environ.get("R4_CRASH_AT", "")


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class CrashingSender:
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def send(self, msg: Any, idempotency_key: str) -> Any:
        if POINT == "before_call":
            die()
        receipt = await self.inner.send(msg, idempotency_key)
        if POINT == "after_call":
            die()
        return receipt


def install() -> None:
    import caredesk.app
    from caredesk.platform import jobs

    build = caredesk.app.build_services

    def build_with_hooks(settings: Any, **kw: Any) -> Any:
        svc = build(settings, **kw)
        for name, sender in list(svc.senders.items()):
            svc.senders[name] = CrashingSender(sender)
        return svc

    caredesk.app.build_services = build_with_hooks  # type: ignore[assignment]
    complete = jobs.complete

    def complete_with_hook(session: Any, job_id: int, worker_id: str) -> bool:
        if POINT == "after_mark":
            die()
        return complete(session, job_id, worker_id)

    jobs.complete = complete_with_hook  # type: ignore[assignment]


if __name__ == "__main__":
    install()
    from caredesk.cli import main

    main()
