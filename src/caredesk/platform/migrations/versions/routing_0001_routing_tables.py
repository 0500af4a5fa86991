"""routing tables

Revision ID: routing_0001
Revises: 0001
Create Date: 2026-11-22 23:54:08.648880
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "routing_0001"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "routing_assignments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("conversation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("agent_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("team_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("waited_seconds", sa.Double(), nullable=False),
        sa.Column("assigned_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_routing_assignments_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_routing_assignments_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_routing_assignments_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routing_assignments")),
    )
    with op.batch_alter_table("routing_assignments", schema=None) as batch_op:
        batch_op.create_index("ix_routing_assignments_account", ["account_id", "assigned_at"], unique=False)
        batch_op.create_index("ix_routing_assignments_agent", ["agent_id", "assigned_at"], unique=False)

    op.create_table(
        "routing_queue",
        sa.Column("conversation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("team_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("queued_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_routing_queue_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_routing_queue_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_routing_queue_team_id_teams"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("conversation_id", name=op.f("pk_routing_queue")),
    )
    with op.batch_alter_table("routing_queue", schema=None) as batch_op:
        batch_op.create_index("ix_routing_queue_account", ["account_id", "rank", "queued_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("routing_queue", schema=None) as batch_op:
        batch_op.drop_index("ix_routing_queue_account")

    op.drop_table("routing_queue")
    with op.batch_alter_table("routing_assignments", schema=None) as batch_op:
        batch_op.drop_index("ix_routing_assignments_agent")
        batch_op.drop_index("ix_routing_assignments_account")

    op.drop_table("routing_assignments")
