"""bind tokens

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 13:36:22.962210
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bind_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("access_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("presented_tid", sa.String(length=32), nullable=True),
        sa.Column("presented_at", sa.BigInteger(), nullable=True),
        sa.Column("used_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["access_id"], ["app_users.access_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    with op.batch_alter_table("bind_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bind_tokens_access_id"), ["access_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_bind_tokens_expires_at"), ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("bind_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bind_tokens_expires_at"))
        batch_op.drop_index(batch_op.f("ix_bind_tokens_access_id"))

    op.drop_table("bind_tokens")
