"""Who is acting: an agent (browser session), an API token, the bot, or the system."""

from __future__ import annotations

from dataclasses import dataclass

from caredesk.platform.errors import Forbidden

RANK = {"agent": 1, "supervisor": 2, "admin": 3}


@dataclass(frozen=True, slots=True)
class Actor:
    account_id: int
    kind: str  # agent | token | bot | system | contact
    id: int | None = None
    role: str = "agent"
    name: str = ""

    @property
    def audit_ref(self) -> tuple[str, int | None]:
        return (self.kind, self.id)

    def require(self, role: str) -> None:
        # API tokens act with admin rights inside their one account: they are created by admins.
        if self.kind in ("token", "system"):
            return
        if RANK.get(self.role, 0) < RANK[role]:
            raise Forbidden(f"this needs the {role} role")


def system_actor(account_id: int) -> Actor:
    return Actor(account_id=account_id, kind="system", role="admin", name="Caredesk")
