"""Vendor accounts and their API keys (what ``iotvideo keys`` manages)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from iotvideo.cloud import ids
from iotvideo.cloud.db import Database
from iotvideo.cloud.db.models import ApiKey, Vendor

__all__ = ["KeyInfo", "NewKey", "UnknownKeyError", "create_key", "list_keys", "revoke_key"]


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


async def create_key(
    db: Database, *, now: int, vendor_id: str | None = None, name: str = ""
) -> NewKey:
    """Create a key for ``vendor_id``, or a new vendor with its first key when it is ``None``."""
    async with db.session() as session, session.begin():
        if vendor_id is None:
            vendor_id = ids.vendor_id()
            session.add(Vendor(vendor_id=vendor_id, name=name, created_at=now))
            await session.flush()  # the key row refers to it
        elif await session.get(Vendor, vendor_id) is None:
            raise UnknownKeyError(f"no vendor {vendor_id!r}; see `iotvideo keys list`")
        key = NewKey(ids.secret_id(), ids.secret_key(), vendor_id)
        session.add(
            ApiKey(
                secret_id=key.secret_id,
                vendor_id=vendor_id,
                secret_key=key.secret_key,
                created_at=now,
                revoked_at=None,
            )
        )
    return key


async def list_keys(db: Database) -> list[KeyInfo]:
    async with db.session() as session:
        rows = await session.execute(
            select(ApiKey, Vendor.name)
            .join(Vendor, Vendor.vendor_id == ApiKey.vendor_id)
            .order_by(ApiKey.created_at, ApiKey.secret_id)
        )
        return [
            KeyInfo(k.secret_id, k.vendor_id, name, k.created_at, k.revoked_at) for k, name in rows
        ]


async def revoke_key(db: Database, secret_id: str, *, now: int) -> KeyInfo:
    """Revoke a key at once; requests signed with it are refused from now on."""
    async with db.session() as session, session.begin():
        key = await session.get(ApiKey, secret_id)
        if key is None:
            raise UnknownKeyError(f"no key {secret_id!r}; see `iotvideo keys list`")
        if key.revoked_at is None:
            key.revoked_at = now
        vendor = await session.get(Vendor, key.vendor_id)
        return KeyInfo(
            key.secret_id,
            key.vendor_id,
            vendor.name if vendor else "",
            key.created_at,
            key.revoked_at,
        )
