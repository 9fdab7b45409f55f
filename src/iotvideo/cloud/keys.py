"""Vendor accounts and their API keys (what ``iotvideo keys`` manages)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert, select, update

from iotvideo.cloud import ids
from iotvideo.cloud.db import Database
from iotvideo.cloud.db.tables import AnyRow, api_keys, vendors

__all__ = [
    "KeyInfo",
    "NewKey",
    "UnknownKeyError",
    "create_key",
    "list_keys",
    "revoke_key",
    "set_webhook",
]


class UnknownKeyError(LookupError):
    """No key or vendor with that id."""


@dataclass(frozen=True)
class NewKey:
    """A freshly created key. The SecretKey is shown once and never again."""

    secret_id: str
    secret_key: str
    vendor_id: str


@dataclass(frozen=True)
class KeyInfo:
    secret_id: str
    vendor_id: str
    vendor_name: str
    created_at: int
    revoked_at: int | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @classmethod
    def from_row(cls, row: AnyRow) -> KeyInfo:
        return cls(row.secret_id, row.vendor_id, row.name, row.created_at, row.revoked_at)


_LISTED = select(
    api_keys.c.secret_id,
    api_keys.c.vendor_id,
    vendors.c.name,
    api_keys.c.created_at,
    api_keys.c.revoked_at,
).join(vendors, vendors.c.vendor_id == api_keys.c.vendor_id)


async def create_key(
    db: Database, *, now: int, vendor_id: str | None = None, name: str = ""
) -> NewKey:
    """Create a key for ``vendor_id``, or a new vendor with its first key when it is ``None``."""
    async with db.begin() as conn:
        if vendor_id is None:
            vendor_id = ids.vendor_id()
            await conn.execute(
                insert(vendors).values(vendor_id=vendor_id, name=name, created_at=now)
            )
        elif (
            await conn.scalar(select(vendors.c.vendor_id).where(vendors.c.vendor_id == vendor_id))
            is None
        ):
            raise UnknownKeyError(f"no vendor {vendor_id!r}; see `iotvideo keys list`")
        key = NewKey(ids.secret_id(), ids.secret_key(), vendor_id)
        await conn.execute(
            insert(api_keys).values(
                secret_id=key.secret_id,
                vendor_id=vendor_id,
                secret_key=key.secret_key,
                created_at=now,
                revoked_at=None,
            )
        )
    return key


async def list_keys(db: Database) -> list[KeyInfo]:
    async with db.read() as conn:
        rows = await conn.execute(_LISTED.order_by(api_keys.c.created_at, api_keys.c.secret_id))
        return [KeyInfo.from_row(r) for r in rows]


async def revoke_key(db: Database, secret_id: str, *, now: int) -> KeyInfo:
    """Revoke a key at once; requests signed with it are refused from now on."""
    async with db.begin() as conn:
        await conn.execute(
            update(api_keys)
            .where(api_keys.c.secret_id == secret_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        row = (await conn.execute(_LISTED.where(api_keys.c.secret_id == secret_id))).first()
        if row is None:
            raise UnknownKeyError(f"no key {secret_id!r}; see `iotvideo keys list`")
        return KeyInfo.from_row(row)


async def set_webhook(db: Database, vendor_id: str, url: str) -> None:
    """Where the vendor's apps' send-data-to-server messages go ("" for nowhere); they are
    signed with the vendor's webhook secret (made now when it has none)."""
    from iotvideo.cloud.webhooks import new_secret

    async with db.begin() as conn:
        secret = await conn.scalar(
            select(vendors.c.webhook_secret).where(vendors.c.vendor_id == vendor_id)
        )
        result = await conn.execute(
            update(vendors)
            .where(vendors.c.vendor_id == vendor_id)
            .values(webhook_url=url, webhook_secret=secret or new_secret())
        )
        if result.rowcount == 0:
            raise UnknownKeyError(f"no vendor {vendor_id!r}; see `iotvideo keys list`")


async def set_events_url(db: Database, vendor_id: str, url: str) -> str:
    """Where notifications about the vendor's devices go ("" for nowhere); returns the
    signing secret (made now when the vendor has none yet)."""
    from iotvideo.cloud.webhooks import new_secret

    async with db.begin() as conn:
        secret = await conn.scalar(
            select(vendors.c.webhook_secret).where(vendors.c.vendor_id == vendor_id)
        )
        if secret is None:
            raise UnknownKeyError(f"no vendor {vendor_id!r}; see `iotvideo keys list`")
        secret = secret or new_secret()
        await conn.execute(
            update(vendors)
            .where(vendors.c.vendor_id == vendor_id)
            .values(events_url=url, webhook_secret=secret)
        )
        return str(secret)
