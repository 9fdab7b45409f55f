"""The vendor API's remaining actions: custom data types, device tracing and run logs,
message queues (a delivery target on the webhook outbox)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("traced_since", sa.BigInteger(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("webhook_outbox", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("target", sa.String(length=120), server_default="", nullable=False)
        )
    op.create_table(
        "iot_data_types",
        sa.Column("vendor_id", sa.String(length=32), nullable=False),
        sa.Column("type_id", sa.String(length=32), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["vendor_id"], ["vendors.vendor_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("vendor_id", "type_id"),
    )
    op.create_table(
        "device_logs",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("tid", sa.String(length=32), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("log_type", sa.Integer(), nullable=False),
        sa.Column("data_object", sa.String(length=255), nullable=False),
        sa.Column("old_value", sa.Text(), nullable=False),
        sa.Column("new_value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["tid"], ["devices.tid"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_device_logs_tid_at", "device_logs", ["tid", "at"], unique=False)
    op.create_table(
        "device_runlogs",
        sa.Column("tid", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["tid"], ["devices.tid"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tid"),
    )
    op.create_table(
        "message_queues",
        sa.Column("product_id", sa.String(length=16), nullable=False),
        sa.Column("vendor_id", sa.String(length=32), nullable=False),
        sa.Column("queue_type", sa.Integer(), nullable=False),
        sa.Column("msg_types", sa.Integer(), nullable=False),
        sa.Column("topic", sa.String(length=32), nullable=False),
        sa.Column("instance", sa.String(length=64), nullable=False),
        sa.Column("region", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["product_id"], ["products.product_id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["vendor_id"], ["vendors.vendor_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("product_id"),
    )
    op.create_index(
        op.f("ix_message_queues_vendor_id"), "message_queues", ["vendor_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_message_queues_vendor_id"), table_name="message_queues")
    op.drop_table("message_queues")
    op.drop_table("device_runlogs")
    op.drop_index("ix_device_logs_tid_at", table_name="device_logs")
    op.drop_table("device_logs")
    op.drop_table("iot_data_types")
    with op.batch_alter_table("webhook_outbox", schema=None) as batch_op:
        batch_op.drop_column("target")
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_column("traced_since")
