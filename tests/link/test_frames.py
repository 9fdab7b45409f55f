"""The link's wire rules, probed with a raw WebSocket: bad frames, bad logins, bad data."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from iotvideo.protocol import link
from iotvideo.protocol.certificate import DeviceCertificate
from tests.link.world import World, make_world
from tests.support import asnapshot, start_cloud


class Raw:
    """A link connection driven by hand."""

    def __init__(self, ws: ClientConnection, hello: dict[str, Any]) -> None:
        self.ws = ws
        self.nonce = hello["data"]["nonce"]
        self._ids = iter(range(1, 10**6))

    async def send(self, frame: dict[str, Any] | str | bytes) -> None:
        await self.ws.send(frame if isinstance(frame, str | bytes) else json.dumps(frame))

    async def recv(self) -> dict[str, Any]:
        return dict(json.loads(await self.ws.recv()))

    async def call(self, op: str, data: dict[str, Any]) -> dict[str, Any]:
        """Send a request; return its reply, skipping pushes."""
        request_id = next(self._ids)
        await self.send({"id": request_id, "op": op, "data": data})
        while True:
            frame = await self.recv()
            if frame.get("id") == request_id:
                return frame


@asynccontextmanager
async def raw(world: World, path: str) -> AsyncIterator[Raw]:
    async with websockets.connect(
        world.cloud.url.replace("http", "ws") + path, max_size=None
    ) as ws:
        hello = json.loads(await ws.recv())
        assert hello["op"] == "hello" and hello["data"]["v"] == 1
        yield Raw(ws, hello)


@asynccontextmanager
async def app_raw(world: World) -> AsyncIterator[Raw]:
    async with raw(world, "/link/app") as conn:
        login = await conn.call(
            "login", {"access_id": world.owner.access_id, "access_token": world.owner.token}
        )
        assert login["code"] == 0
        yield conn


def _device_login(world: World, nonce: str, **overrides: Any) -> dict[str, Any]:
    cert = DeviceCertificate.parse(world.device.certificate)
    ts = int(time.time())
    data = {
        "tid": cert.tid,
        "ts": ts,
        "sig": link.sign_login(cert.private_key, cert.tid, nonce, ts),
    }
    return data | overrides


async def _closed_with(conn: Raw) -> tuple[int, dict[str, Any]]:
    """The bye push and the close code of a connection the cloud ends."""
    bye = await conn.recv()
    with pytest.raises(websockets.ConnectionClosed) as info:
        await conn.recv()
    assert info.value.rcvd is not None
    return info.value.rcvd.code, bye


async def test_malformed_frames_are_answered_and_the_link_survives(world: World) -> None:
    async with app_raw(world) as conn:
        await conn.send("{not json")
        assert (await conn.recv())["data"]["code"] == 20102
        await conn.send(b"\x00binary")
        assert (await conn.recv())["data"]["code"] == 20102
        await conn.send("[1, 2]")
        assert (await conn.recv())["data"]["code"] == 20102
        await conn.send({"id": "seven", "op": "ping"})
        assert (await conn.recv())["data"]["code"] == 20143
        await conn.send({"id": 5, "op": "ping", "data": [1]})
        assert (await conn.recv()) == {"id": 5, "code": 20143, "msg": "data must be an object"}
        reply = await conn.call("no.such.op", {})
        assert reply["code"] == 20141
        reply = await conn.call("prop.read", {"tid": 42, "path": ""})
        assert reply["code"] == 20143
        assert (await conn.call("ping", {}))["code"] == 0, "still alive"


async def test_oversized_frame_is_21008(world: World) -> None:
    async with app_raw(world) as conn:
        await conn.send(json.dumps({"id": 9, "op": "prop.read", "data": {"tid": "x" * 70_000}}))
        assert await conn.recv() == {"id": 9, "code": 21008, "msg": "frame larger than 65536 bytes"}
        assert (await conn.call("ping", {}))["code"] == 0


@pytest.mark.parametrize(
    ("path", "json_value", "code"),
    [
        ("ProWritable..nightMode", "1", 20101),
        ("ProWritable.nightMode.setVal." + ".".join(["a"] * 10), "1", 20101),
        ("ProWritable.nightMode.setVal", "[" * 5_000 + "]" * 5_000, 20102),
        ("ProWritable.nightMode.setVal", "1" * 20_000, 20143),
        ("ProWritable.nightMode.setVal", "1e999", 20143),
        ("ProWritable.nightMode.setVal", "true", 20143),
        ("ProUser._x.val", "1", 20101),
        ("ProUser._x", "1", 20143),
        ("ProWritable.nightMode.setVal\n", "1", 20101),  # names end where they end
        ("ProUser.note.val", "NaN", 20102),  # not JSON, though Python reads it
        ("ProUser.note.val", '{"a": [1e999]}', 20143),  # infinity, once parsed
        ("ProUser.note.val", '"\\ud800"', 20143),  # a lone surrogate: not Unicode
    ],
)
async def test_bad_writes_store_nothing(
    world: World, path: str, json_value: str, code: int
) -> None:
    before = await asnapshot(world.cloud.db)
    async with app_raw(world) as conn:
        reply = await conn.call(
            "prop.write", {"tid": world.device.tid, "path": path, "json": json_value}
        )
    assert reply["code"] == code, reply
    assert await asnapshot(world.cloud.db) == before


async def test_frames_must_be_standard_json(world: World) -> None:
    async with app_raw(world) as conn:
        await conn.send('{"id": 7, "op": "ping", "data": {"x": NaN}}')
        assert (await conn.recv())["code"] == 20102
        await conn.send('{"id": 8, "op": "ping", "data": {"x": "\\udc00"}}')
        assert await conn.recv() == {
            "id": 8,
            "code": 20143,
            "msg": "frame: strings must be valid Unicode (no lone surrogates)",
        }
        assert (await conn.call("ping", {}))["code"] == 0


async def test_first_frame_must_be_login(world: World) -> None:
    async with raw(world, "/link/app") as conn:
        await conn.send({"id": 1, "op": "prop.read", "data": {"tid": world.device.tid, "path": ""}})
        code, bye = await _closed_with(conn)
    assert code == link.CLOSE_REFUSED and bye["data"]["code"] == 20015


async def test_forged_and_mismatched_app_tokens(world: World) -> None:
    for access_id, token in (
        (world.owner.access_id, world.owner.token[:-2] + "xx"),
        (world.owner.access_id, world.guest.token),
        (world.owner.access_id, world.owner.binding_token),
        (world.owner.access_id, "' OR 1=1 --"),
    ):
        async with raw(world, "/link/app") as conn:
            reply = await conn.call("login", {"access_id": access_id, "access_token": token})
            assert reply["code"] == 20010, token
            code, _ = await _closed_with(conn)
            assert code == link.CLOSE_REFUSED


async def test_device_proofs(world: World) -> None:
    before = await asnapshot(world.cloud.db)
    async with raw(world, "/link/device") as conn:
        reply = await conn.call("login", _device_login(world, conn.nonce, sig="AAAA"))
        assert reply["code"] == 20010
    async with raw(world, "/link/device") as conn:
        stale = _device_login(world, conn.nonce)
        cert = DeviceCertificate.parse(world.device.certificate)
        old = stale["ts"] - 3600
        stale.update(ts=old, sig=link.sign_login(cert.private_key, cert.tid, conn.nonce, old))
        assert (await conn.call("login", stale))["code"] == 20010
    other = DeviceCertificate.parse(world.devices[1].certificate)
    async with raw(world, "/link/device") as conn:
        ts = int(time.time())
        wrong_key = link.sign_login(other.private_key, world.device.tid, conn.nonce, ts)
        assert (await conn.call("login", _device_login(world, conn.nonce, ts=ts, sig=wrong_key)))[
            "code"
        ] == 20010
    async with raw(world, "/link/device") as conn:
        assert (await conn.call("login", _device_login(world, conn.nonce, tid="NOSUCHTID")))[
            "code"
        ] == 8002
    async with raw(world, "/link/device") as conn:
        assert (await conn.call("login", {"tid": world.device.tid}))["code"] == 20143
    assert await asnapshot(world.cloud.db) == before, "refused logins change nothing"


async def test_a_replayed_proof_is_refused(world: World) -> None:
    async with raw(world, "/link/device") as first:
        proof = _device_login(world, first.nonce)
        assert (await first.call("login", proof))["code"] == 0
    async with raw(world, "/link/device") as second:
        assert second.nonce != first.nonce
        assert (await second.call("login", proof))["code"] == 20010


async def test_a_second_login_of_the_device_replaces_the_first(world: World) -> None:
    async with raw(world, "/link/device") as first:
        assert (await first.call("login", _device_login(world, first.nonce)))["code"] == 0
        async with raw(world, "/link/device") as second:
            assert (await second.call("login", _device_login(world, second.nonce)))["code"] == 0
            code, bye = await _closed_with(first)
            assert code == link.CLOSE_REPLACED and bye["data"]["code"] == 20012
            assert (await second.call("ping", {}))["code"] == 0


async def test_silent_sessions_are_closed(tmp_path: Path) -> None:
    cloud = await asyncio.to_thread(start_cloud, tmp_path, env={"IOTVIDEO_LINK_IDLE_TIMEOUT": "1"})
    try:
        world = await asyncio.to_thread(make_world, cloud)
        async with app_raw(world) as conn:
            code, bye = await _closed_with(conn)  # it sends nothing, so the cloud hangs up
        assert code == link.CLOSE_RETRY and bye["data"]["code"] == 20008
    finally:
        await asyncio.to_thread(cloud.stop)
