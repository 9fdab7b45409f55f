"""link and thing model

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 12:27:26.229982
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cloud_instances",
        sa.Column("instance_id", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.Column("heartbeat_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("instance_id"),
    )
    op.create_table(
        "tasks",
        sa.Column("task_id", sa.String(length=40), nullable=False),
        sa.Column("vendor_id", sa.String(length=32), nullable=False),
        sa.Column("tid", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("finished_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["vendor_id"], ["vendors.vendor_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("task_id"),
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tasks_created_at"), ["created_at"], unique=False)

    op.create_table(
        "iot_models",
        sa.Column("product_id", sa.String(length=16), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["product_id"], ["products.product_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("product_id", "revision"),
    )
    op.create_table(
        "device_state",
        sa.Column("tid", sa.String(length=32), nullable=False),
        sa.Column("doc", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["tid"], ["devices.tid"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tid"),
    )
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("online_instance", sa.String(length=32), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("online_session", sa.String(length=32), server_default="", nullable=False)
        )
        batch_op.create_index(
            batch_op.f("ix_devices_online_instance"), ["online_instance"], unique=False
        )

    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.add_column(sa.Column("draft_model", sa.Text(), server_default="", nullable=False))

    with op.batch_alter_table("vendors", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("webhook_url", sa.String(length=512), server_default="", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("vendors", schema=None) as batch_op:
        batch_op.drop_column("webhook_url")

    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_column("draft_model")

    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_devices_online_instance"))
        batch_op.drop_column("online_session")
        batch_op.drop_column("online_instance")

    op.drop_table("device_state")
    op.drop_table("iot_models")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tasks_created_at"))

    op.drop_table("tasks")
    op.drop_table("cloud_instances")
