"""Token storage: hashed, looked up only while live, purged a day after death."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import insert, select

from iotvideo.cloud.access import TokenKind, find_token, issue_token, purge_tokens, revoke_tokens
from iotvideo.cloud.db import Database
from iotvideo.cloud.db.tables import access_tokens, app_users, vendors
from iotvideo.protocol.tokens import hash_token

NOW = 1_800_000_000
DAY = 86400


def test_tokens_live_die_and_are_purged(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
        await db.migrate()
        async with db.engine.begin() as conn:
            await conn.execute(insert(vendors).values(vendor_id="v", name="", created_at=NOW))
            await conn.execute(
                insert(app_users).values(
                    access_id="u",
                    vendor_id="v",
                    cunion_id="c",
                    mobile="",
                    anonymous=False,
                    created_at=NOW,
                )
            )

            async def token(expires_at: int) -> str:
                return await issue_token(
                    conn, access_id="u", kind=TokenKind.USER, now=NOW, expires_at=expires_at
                )

            live = await token(NOW + 60)
            expired_now = await token(NOW - 60)
            expired_long_ago = await token(NOW - 2 * DAY)
            revoked = await token(NOW + 60)
            await revoke_tokens(
                conn, access_tokens.c.token_hash == hash_token(revoked), now=NOW - 2 * DAY
            )

            stored = set(await conn.scalars(select(access_tokens.c.token_hash)))
            assert live not in stored and hash_token(live) in stored, "only hashes are stored"
            assert (await find_token(conn, live, now=NOW)) is not None
            for dead in (expired_now, expired_long_ago, revoked, live + "x", "garbage"):
                assert await find_token(conn, dead, now=NOW) is None

            assert await purge_tokens(conn, now=NOW) == 2
            left = set(await conn.scalars(select(access_tokens.c.token_hash)))
            assert left == {hash_token(live), hash_token(expired_now)}
        await db.close()

    asyncio.run(scenario())
