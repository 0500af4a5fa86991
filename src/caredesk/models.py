"""Every table of every domain, imported in one place for migrations and `create_all` in tests."""

from caredesk.accounts import models as accounts
from caredesk.contacts import models as contacts
from caredesk.conversations import models as conversations
from caredesk.platform import audit, events, jobs
from caredesk.platform.models import Base

__all__ = ["Base", "accounts", "audit", "contacts", "conversations", "events", "jobs"]


def _optional() -> None:
    # Domains built on the core add their tables by exposing a `models` module.
    for name in ("knowledge", "automation", "routing", "care", "channels", "ai", "journeys", "analytics"):
        try:
            __import__(f"caredesk.{name}.models")
        except ModuleNotFoundError as exc:
            if exc.name is not None and f"caredesk.{name}.models".startswith(exc.name):
                continue
            raise


_optional()
