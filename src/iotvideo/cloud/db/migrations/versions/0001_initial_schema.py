"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-24 11:55:18.160051
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "vendors",
        sa.Column("vendor_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("vendor_id"),
    )
    op.create_table(
        "api_keys",
        sa.Column("secret_id", sa.String(length=64), nullable=False),
        sa.Column("vendor_id", sa.String(length=32), nullable=False),
        sa.Column("secret_key", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["vendor_id"], ["vendors.vendor_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("secret_id"),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_vendor_id"), ["vendor_id"], unique=False)

    op.create_table(
        "app_users",
        sa.Column("access_id", sa.String(length=32), nullable=False),
        sa.Column("vendor_id", sa.String(length=32), nullable=False),
        sa.Column("cunion_id", sa.String(length=128), nullable=True),
        sa.Column("mobile", sa.String(length=32), nullable=False),
        sa.Column("anonymous", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["vendor_id"], ["vendors.vendor_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("access_id"),
    )
    with op.batch_alter_table("app_users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_app_users_vendor_id"), ["vendor_id"], unique=False)
        batch_op.create_index("uq_app_users_cunion", ["vendor_id", "cunion_id"], unique=True)

    op.create_table(
        "products",
        sa.Column("product_id", sa.String(length=16), nullable=False),
        sa.Column("vendor_id", sa.String(length=32), nullable=False),
        sa.Column("product_model", sa.String(length=64), nullable=False),
        sa.Column("product_name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=256), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("chip_manufacture_id", sa.String(length=64), nullable=False),
        sa.Column("chip_id", sa.String(length=64), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=False),
        sa.Column("cate", sa.BigInteger(), nullable=False),
        sa.Column("access_mode", sa.BigInteger(), nullable=False),
        sa.Column("os", sa.String(length=32), nullable=False),
        sa.Column("chip_arch", sa.String(length=32), nullable=False),
        sa.Column("secret_key", sa.String(length=64), nullable=False),
        sa.Column("iot_model_revision", sa.BigInteger(), nullable=False),
        sa.Column("device_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["vendor_id"], ["vendors.vendor_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("product_id"),
    )
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_products_created_ms"), ["created_ms"], unique=False)
        batch_op.create_index(batch_op.f("ix_products_vendor_id"), ["vendor_id"], unique=False)

    op.create_table(
        "devices",
        sa.Column("tid", sa.String(length=32), nullable=False),
        sa.Column("product_id", sa.String(length=16), nullable=False),
        sa.Column("vendor_id", sa.String(length=32), nullable=False),
        sa.Column("device_name", sa.String(length=64), nullable=False),
        sa.Column("public_key", sa.LargeBinary(length=64), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("active_time", sa.BigInteger(), nullable=False),
        sa.Column("ota_version", sa.String(length=32), nullable=False),
        sa.Column("online", sa.BigInteger(), nullable=False),
        sa.Column("last_online_time", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["product_id"], ["products.product_id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["vendor_id"], ["vendors.vendor_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tid"),
    )
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_devices_vendor_id"), ["vendor_id"], unique=False)
        batch_op.create_index("uq_devices_product_name", ["product_id", "device_name"], unique=True)

    op.create_table(
        "terminals",
        sa.Column("terminal_id", sa.String(length=32), nullable=False),
        sa.Column("access_id", sa.String(length=32), nullable=False),
        sa.Column("unique_id", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["access_id"], ["app_users.access_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("terminal_id"),
    )
    with op.batch_alter_table("terminals", schema=None) as batch_op:
        batch_op.create_index("uq_terminals_unique", ["access_id", "unique_id"], unique=True)

    op.create_table(
        "access_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("access_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("tid", sa.String(length=32), nullable=True),
        sa.Column("terminal_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["access_id"], ["app_users.access_id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["terminal_id"], ["terminals.terminal_id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tid"], ["devices.tid"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    with op.batch_alter_table("access_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_access_tokens_terminal_id"), ["terminal_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_access_tokens_tid"), ["tid"], unique=False)
        batch_op.create_index("ix_access_tokens_user_tid", ["access_id", "tid"], unique=False)

    op.create_table(
        "bindings",
        sa.Column("access_id", sa.String(length=32), nullable=False),
        sa.Column("tid", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("nick", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["access_id"], ["app_users.access_id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tid"], ["devices.tid"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("access_id", "tid"),
    )
    with op.batch_alter_table("bindings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bindings_tid"), ["tid"], unique=False)
        batch_op.create_index(
            "uq_bindings_owner",
            ["tid"],
            unique=True,
            sqlite_where=sa.text("role = 'owner'"),
            postgresql_where=sa.text("role = 'owner'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("bindings", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_bindings_owner",
            sqlite_where=sa.text("role = 'owner'"),
            postgresql_where=sa.text("role = 'owner'"),
        )
        batch_op.drop_index(batch_op.f("ix_bindings_tid"))

    op.drop_table("bindings")
    with op.batch_alter_table("access_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_access_tokens_user_tid")
        batch_op.drop_index(batch_op.f("ix_access_tokens_tid"))
        batch_op.drop_index(batch_op.f("ix_access_tokens_terminal_id"))

    op.drop_table("access_tokens")
    with op.batch_alter_table("terminals", schema=None) as batch_op:
        batch_op.drop_index("uq_terminals_unique")

    op.drop_table("terminals")
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_index("uq_devices_product_name")
        batch_op.drop_index(batch_op.f("ix_devices_vendor_id"))

    op.drop_table("devices")
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_products_vendor_id"))
        batch_op.drop_index(batch_op.f("ix_products_created_ms"))

    op.drop_table("products")
    with op.batch_alter_table("app_users", schema=None) as batch_op:
        batch_op.drop_index("uq_app_users_cunion")
        batch_op.drop_index(batch_op.f("ix_app_users_vendor_id"))

    op.drop_table("app_users")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_vendor_id"))

    op.drop_table("api_keys")
    op.drop_table("vendors")
