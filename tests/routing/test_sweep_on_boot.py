"""The routing sweep is scheduled when the app starts, not only once the first message arrives."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from caredesk.app import create_app
from caredesk.platform.jobs import Job
from caredesk.services import Services

# The whole module runs on PostgreSQL too (make test), not only on SQLite.
pytestmark = pytest.mark.postgres


async def test_sweep_is_scheduled_on_boot(services: Services) -> None:
    assert services.worker is not None
    services.worker.stop()  # keep the job where the boot put it
    app = create_app(services.settings, services=services)
    async with app.router.lifespan_context(app):
        kinds = await services.db.read(lambda s: list(s.execute(select(Job.kind)).scalars()))
    assert "routing.sweep" in kinds
