"""A PostgreSQL outage: requests get a code that says "retry shortly" (link 20004, vendor
API ResourceUnavailable), the cloud logs one line per outage and no traceback, and serves
again once the database is back."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from iotvideo.protocol.errors import ErrorCode, IVError
from tests.link.world import World, app_sdk, eventually, make_world
from tests.support import error_code, signed_post, start_cloud

BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]


class Postgres:
    """A private PostgreSQL server on a free loopback port, run as the postgres user."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        # Not under pytest's tmp_path: its parents are root's alone, and initdb runs as
        # the postgres user.
        self.folder = Path(tempfile.mkdtemp(prefix="iotvideo-pg-"))
        shutil.chown(self.folder, "postgres")
        self.running = False
        self._as_postgres(
            BIN / "initdb", "-D", self.folder / "data", "-A", "trust", "-U", "postgres"
        )

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *args: object) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *map(str, args)],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        self._as_postgres(
            BIN / "pg_ctl", "-D", self.folder / "data", "-o", options,
            "-l", self.folder / "log", "-w", "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._as_postgres(
            BIN / "pg_ctl", "-D", self.folder / "data", "-m", "immediate", "-w", "stop"
        )


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    server = Postgres()
    server.start()
    try:
        yield server
    finally:
        if server.running:
            server.stop()
        shutil.rmtree(server.folder, ignore_errors=True)


async def test_a_database_outage_is_retry_shortly_and_one_log_line(
    postgres: Postgres, tmp_path: Path
) -> None:
    cloud = start_cloud(tmp_path / "data", postgres.url)
    try:
        world: World = await asyncio.to_thread(make_world, cloud, devices=1)
        tid = world.device.tid
        async with app_sdk(cloud.url, world.owner) as sdk:
            assert await sdk.message.read_property(tid, "ProWritable")
            postgres.stop()
            for _ in range(20):
                with pytest.raises(IVError) as unavailable:
                    await sdk.message.read_property(tid, "ProWritable")
                assert unavailable.value.code == ErrorCode.IVTermErr_msg_calling_no_srv_addr
            vendor = await asyncio.to_thread(
                signed_post, cloud, world.key, "DescribeDevice", {"Tid": tid}
            )
            assert error_code(vendor) == "ResourceUnavailable"
            postgres.start()

            async def served() -> None:
                try:
                    assert await sdk.message.read_property(tid, "ProWritable")
                except IVError as exc:
                    raise AssertionError(exc) from None

            await eventually(served, timeout=20)
        log = "".join(cloud.log)
        assert log.count("the database unavailable") == 1, log
        assert "the database is back" in log
        assert "Traceback" not in log, log
    finally:
        cloud.stop()
