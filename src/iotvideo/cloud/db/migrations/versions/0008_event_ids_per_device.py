"""event ids are unique per device, not across the cloud

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 11:00:00

A device chooses its event ids: keyed by id alone, device B reusing device A's id had its
event taken for a duplicate and lost. The key becomes (tid, alarm_id). The table is made
anew and the rows copied (a primary key cannot be changed in place on SQLite).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    "alarm_id, tid, chn_num, alarm_type, first_alarm_type, start_time, end_time, picture, "
    "thumb, created_at"
)


def _table(name: str, key: list[str]) -> None:
    op.create_table(
        name,
        sa.Column("alarm_id", sa.String(length=32), nullable=False),
        sa.Column("tid", sa.String(length=32), nullable=False),
        sa.Column("chn_num", sa.BigInteger(), nullable=False),
        sa.Column("alarm_type", sa.BigInteger(), nullable=False),
        sa.Column("first_alarm_type", sa.BigInteger(), nullable=False),
        sa.Column("start_time", sa.BigInteger(), nullable=False),
        sa.Column("end_time", sa.BigInteger(), nullable=False),
        sa.Column("picture", sa.String(length=256), nullable=True),
        sa.Column("thumb", sa.String(length=256), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["tid"], ["devices.tid"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint(*key),
    )


def _rebuild(key: list[str]) -> None:
    with op.batch_alter_table("cloud_events", schema=None) as batch_op:
        batch_op.drop_index("ix_cloud_events_time")
    op.rename_table("cloud_events", "cloud_events_old")
    _table("cloud_events", key)
    # A constant column list, no input.
    copy = f"INSERT INTO cloud_events ({COLUMNS}) SELECT {COLUMNS} FROM cloud_events_old"  # noqa: S608
    op.execute(copy)
    op.drop_table("cloud_events_old")
    with op.batch_alter_table("cloud_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_cloud_events_time", ["tid", "chn_num", "start_time", "alarm_id"], unique=False
        )


def upgrade() -> None:
    _rebuild(["tid", "alarm_id"])


def downgrade() -> None:
    # Ids repeated across devices cannot all survive a key by id alone: keep the first.
    op.execute(
        "DELETE FROM cloud_events WHERE EXISTS (SELECT 1 FROM cloud_events other "
        "WHERE other.alarm_id = cloud_events.alarm_id AND other.tid < cloud_events.tid)"
    )
    _rebuild(["alarm_id"])
