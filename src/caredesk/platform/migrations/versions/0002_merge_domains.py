"""Merge the domain branches (automation, channels, routing) into one line.

Revision ID: 0002
Revises: automation_0001, channels_0001, routing_0001
"""

from collections.abc import Sequence

revision: str = "0002"
down_revision: str | Sequence[str] | None = ("automation_0001", "channels_0001", "routing_0001")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
