"""The link WebSockets' own wire (``cloud/link/wire.py``): the handshake, frames a library
would never send, fragments, pings both ways, closing, and the same endpoints under
another ASGI server. A hand-written client sends exactly the bytes each case needs."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from iotvideo.cloud.link.wire import accept_key, client_address
from iotvideo.protocol.errors import ErrorCode
from tests.inproc import Clock, inproc_cloud
from tests.link.world import World, app_sdk, device_client, make_world
from tests.support import Cloud, CloudAddress, start_cloud

TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA


class RawPeer:
    """A WebSocket client written by hand."""

    #: Every peer opened, closed when its test ends (the ``_shut_peers`` fixture).
    opened: ClassVar[list[RawPeer]] = []

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        RawPeer.opened.append(self)

    @classmethod
    async def open(
        cls,
        cloud: CloudAddress,
        path: str = "/link/app",
        *,
        source: str = "127.0.0.1",
        **headers: str,
    ) -> tuple[int, dict[str, str], RawPeer]:
        """Connect from ``source`` (a loopback address) and send the upgrade request; the
        status, headers and the peer."""
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", cloud.port, local_addr=(source, 0)
        )
        fields = {
            "Host": cloud.endpoint,
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
            "Sec-WebSocket-Version": "13",
        } | {name.replace("_", "-"): value for name, value in headers.items()}
        head = "".join(f"{k}: {v}\r\n" for k, v in fields.items() if v)
        writer.write(f"GET {path} HTTP/1.1\r\n{head}\r\n".encode())
        response = (await reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
        status = int(response[0].split()[1])
        answer = dict(line.split(": ", 1) for line in response[1:] if line)
        answer = {k.lower(): v for k, v in answer.items()}
        if status == 101:
            assert (
                answer["sec-websocket-accept"]
                == accept_key(fields["Sec-WebSocket-Key"].encode()).decode()
            )
        return status, answer, cls(reader, writer)

    def send(
        self, opcode: int, payload: bytes, *, fin: bool = True, masked: bool = True, rsv: int = 0
    ) -> None:
        n = len(payload)
        first = (0x80 if fin else 0) | rsv | opcode
        mask_bit = 0x80 if masked else 0
        if n < 126:
            head = struct.pack("!BB", first, mask_bit | n)
        elif n < 1 << 16:
            head = struct.pack("!BBH", first, mask_bit | 126, n)
        else:
            head = struct.pack("!BBQ", first, mask_bit | 127, n)
        if masked:
            key = os.urandom(4)
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            head += key
        self.writer.write(head + payload)

    def send_json(self, body: dict[str, Any]) -> None:
        self.send(TEXT, json.dumps(body).encode())

    async def frame(self) -> tuple[int, bytes] | None:
        """The next frame from the cloud (None at the end of the connection)."""
        try:
            b0, b1 = await self.reader.readexactly(2)
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
            assert not b1 & 0x80, "the cloud's frames are not masked"
            return b0 & 0x0F, await self.reader.readexactly(n)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None

    async def message(self) -> dict[str, Any]:
        """The next JSON frame (answering pings on the way)."""
        while True:
            got = await asyncio.wait_for(self.frame(), 10)
            assert got is not None, "the connection ended"
            opcode, payload = got
            if opcode == TEXT:
                body: dict[str, Any] = json.loads(payload)
                return body
            assert opcode == PING, got
            self.send(PONG, payload)

    async def close_code(self) -> int:
        """Read to the cloud's close frame; its code. The connection then ends."""
        while True:
            got = await asyncio.wait_for(self.frame(), 10)
            assert got is not None, "the connection ended without a close frame"
            if got[0] == CLOSE:
                (code,) = struct.unpack("!H", got[1][:2])
                assert await asyncio.wait_for(self.frame(), 10) is None
                return int(code)

    def shut(self) -> None:
        self.writer.close()


@pytest.fixture(autouse=True)
async def _shut_peers() -> AsyncIterator[None]:
    yield
    while RawPeer.opened:
        peer = RawPeer.opened.pop()
        peer.shut()
        with contextlib.suppress(ConnectionError):
            await peer.writer.wait_closed()


def test_the_accept_key_is_rfc_6455s() -> None:
    # The example of RFC 6455, section 1.3.
    assert accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_the_client_behind_a_trusted_proxy_is_the_forwarded_one() -> None:
    trusted = "127.0.0.1,10.0.0.0/8"
    assert client_address("127.0.0.1", [b"198.51.100.7"], trusted) == "198.51.100.7"
    # The nearest address the proxies did not add themselves: a client cannot forge it.
    chain = [b"203.0.113.9, 198.51.100.7", b"10.1.2.3"]
    assert client_address("127.0.0.1", chain, trusted) == "198.51.100.7"
    # A peer that is not a trusted proxy is the client, whatever it forwards.
    assert client_address("198.51.100.8", [b"203.0.113.9"], trusted) == "198.51.100.8"
    assert client_address("127.0.0.1", [b"198.51.100.7"], None) == "127.0.0.1"
    assert client_address("127.0.0.1", [], trusted) == "127.0.0.1"
    assert client_address("198.51.100.8", [b"203.0.113.9, 10.0.0.1"], "*") == "203.0.113.9"


async def test_the_handshake_is_checked(sqlite_cloud: Cloud) -> None:
    status, _, peer = await RawPeer.open(sqlite_cloud)
    assert status == 101
    assert (await peer.message())["op"] == "hello"
    peer.shut()
    status, headers, peer = await RawPeer.open(sqlite_cloud, Sec_WebSocket_Version="8")
    assert status == 426 and headers["sec-websocket-version"] == "13"
    assert await peer.frame() is None
    status, _, peer = await RawPeer.open(sqlite_cloud, Sec_WebSocket_Key="short")
    assert status == 400 and await peer.frame() is None
    # Any other WebSocket path goes on to the app, which has no such endpoint.
    status, _, peer = await RawPeer.open(sqlite_cloud, "/link/nothing")
    assert status == 403
    peer.shut()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        pytest.param({"opcode": TEXT, "payload": b"{}", "masked": False}, 1002, id="unmasked"),
        pytest.param({"opcode": TEXT, "payload": b"{}", "rsv": 0x40}, 1002, id="extension-bit"),
        pytest.param({"opcode": 0x3, "payload": b""}, 1002, id="unknown-opcode"),
        pytest.param({"opcode": 0x0, "payload": b"x"}, 1002, id="lone-continuation"),
        pytest.param({"opcode": PING, "payload": b"x" * 126}, 1002, id="long-ping"),
        pytest.param({"opcode": PING, "payload": b"", "fin": False}, 1002, id="split-ping"),
        pytest.param({"opcode": TEXT, "payload": b'{"a": "\xff"}'}, 1007, id="not-utf8"),
    ],
)
async def test_a_broken_frame_closes_the_connection_with_its_code(
    sqlite_cloud: Cloud, frame: dict[str, Any], code: int
) -> None:
    _, _, peer = await RawPeer.open(sqlite_cloud)
    await peer.message()  # hello
    peer.send(**frame)
    assert await peer.close_code() == code


async def test_a_message_over_the_size_limit_is_refused_before_it_arrives(
    sqlite_cloud: Cloud,
) -> None:
    _, _, peer = await RawPeer.open(sqlite_cloud)
    await peer.message()
    # Only the header of a 2 MiB frame: the cloud refuses it without reading on.
    peer.writer.write(struct.pack("!BBQ", 0x81, 0x80 | 127, 2 << 20) + os.urandom(4))
    assert await peer.close_code() == 1009
    # The same across fragments: each small, together too large; a ping between two
    # fragments of a message just under the limit does not count toward it.
    world = await asyncio.to_thread(make_world, sqlite_cloud, devices=1)
    peer = await _logged_in(sqlite_cloud, world)
    peer.send(TEXT, b"x" * ((1 << 20) - 10), fin=False)
    peer.send(PING, b"p" * 100)
    assert await peer.frame() == (PONG, b"p" * 100)
    peer.send(0x0, b"x" * 600_000, fin=False)
    assert await peer.close_code() == 1009


async def _logged_in(cloud: CloudAddress, world: World, source: str = "127.0.0.1") -> RawPeer:
    _, _, peer = await RawPeer.open(cloud, source=source)
    assert (await peer.message())["op"] == "hello"
    login = {"access_id": world.owner.access_id, "access_token": world.owner.token}
    peer.send_json({"id": 1, "op": "login", "data": login})
    assert (await peer.message())["code"] == 0
    return peer


def _rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


async def test_before_its_login_a_connection_holds_little(tmp_path: Path) -> None:
    """200 connections that never log in, each sending the header and all but one byte of
    a 1 MiB frame: each is closed with 1009 from its header, and the cloud's memory stays
    bounded (it grew by 1 MiB per connection). One address holding its most connections
    waiting to log in does not lock other addresses out."""
    cloud = start_cloud(tmp_path / "data", env={"IOTVIDEO_MAX_PENDING_PER_ADDRESS": "20"})
    try:
        world = await asyncio.to_thread(make_world, cloud, devices=1)
        before = _rss_mib(cloud.proc.pid)
        for _ in range(10):
            peers = [(await RawPeer.open(cloud))[2] for _ in range(20)]
            for peer in peers:
                assert (await peer.message())["op"] == "hello"
                peer.writer.write(struct.pack("!BBQ", 0x81, 0xFF, 1 << 20) + os.urandom(4))
                peer.writer.write(b"x" * ((1 << 20) - 1))
            codes = await asyncio.gather(*(peer.close_code() for peer in peers))
            assert codes == [1009] * 20
        grown = _rss_mib(cloud.proc.pid) - before
        assert grown < 40, f"the cloud grew by {grown:.1f} MiB"

        # 20 connections from 127.0.0.1 wait, each in the middle of an 8000-byte login.
        holding = [(await RawPeer.open(cloud))[2] for _ in range(20)]
        for peer in holding:
            assert (await peer.message())["op"] == "hello"
            peer.writer.write(struct.pack("!BBH", 0x81, 0xFE, 8000) + os.urandom(4) + b"x" * 7999)
        # The 21st from there is told to retry; another address logs in.
        _, _, extra = await RawPeer.open(cloud)
        bye = await extra.message()
        assert (
            bye["op"] == "bye"
            and bye["data"]["code"] == ErrorCode.IVTermErr_msg_gdm_handle_processing
        )
        closing = await asyncio.wait_for(extra.frame(), 10)
        assert closing is not None and closing[0] == CLOSE
        assert struct.unpack("!H", closing[1][:2]) == (4003,)
        await _logged_in(cloud, world, source="127.0.0.2")
    finally:
        cloud.stop()


async def test_a_message_in_too_many_fragments_is_refused(sqlite_cloud: Cloud) -> None:
    _, _, peer = await RawPeer.open(sqlite_cloud)
    await peer.message()
    peer.send(TEXT, b"{", fin=False)
    for _ in range(1100):  # empty ones too: each would cost the cloud a list entry
        peer.send(0x0, b"", fin=False)
    assert await peer.close_code() == 1009


async def test_a_frame_that_trickles_in_is_read_whole(sqlite_cloud: Cloud) -> None:
    world = await asyncio.to_thread(make_world, sqlite_cloud, devices=1)
    _, _, peer = await RawPeer.open(sqlite_cloud)
    await peer.message()
    peer.send_json(
        {
            "id": 1,
            "op": "login",
            "data": {"access_id": world.owner.access_id, "access_token": world.owner.token},
        }
    )
    assert (await peer.message())["code"] == 0
    # A 60 KB request written a few hundred bytes at a time (the cloud reads it in as
    # many pieces as TCP gives it).
    request = json.dumps({"id": 2, "op": "ping", "data": {"pad": "y" * 60_000}}).encode()
    key = os.urandom(4)
    wire = struct.pack("!BBH", 0x81, 0x80 | 126, len(request)) + key
    wire += bytes(b ^ key[i % 4] for i, b in enumerate(request))
    for at in range(0, len(wire), 300):
        peer.writer.write(wire[at : at + 300])
        await peer.writer.drain()
    answer = await peer.message()
    assert (answer["id"], answer["code"]) == (2, 0)


async def test_fragments_binary_frames_pings_and_closing(sqlite_cloud: Cloud) -> None:
    world = await asyncio.to_thread(make_world, sqlite_cloud, devices=1)
    _, _, peer = await RawPeer.open(sqlite_cloud)
    assert (await peer.message())["op"] == "hello"
    login = json.dumps(
        {
            "id": 1,
            "op": "login",
            "data": {"access_id": world.owner.access_id, "access_token": world.owner.token},
        }
    ).encode()
    # A login in three fragments, with a ping between two of them (RFC 6455 allows it).
    peer.send(TEXT, login[:10], fin=False)
    peer.send(0x0, login[10:20], fin=False)
    peer.send(PING, b"between")
    peer.send(0x0, login[20:])
    assert await peer.frame() == (PONG, b"between")
    assert (await peer.message())["code"] == 0
    # Binary frames are not frames of the link: answered with a code, the link stays up.
    peer.send(BINARY, b"\x00\x01")
    refused = await peer.message()
    assert refused["op"] == "error"
    assert refused["data"]["code"] == ErrorCode.IVTermErr_msg_gdm_handle_parse_json_fail
    # A frame above 64 KiB (a 64-bit length on the wire) reaches the link's own size check.
    pad = "x" * 70_000
    peer.send(TEXT, json.dumps({"id": 2, "op": "ping", "data": {"pad": pad}}).encode())
    too_big = await peer.message()
    assert (too_big["id"], too_big["code"]) == (2, ErrorCode.IVMessageError_ExceedsMaxLength)
    peer.send_json({"id": 3, "op": "ping", "data": {}})
    assert (await peer.message())["id"] == 3
    # The peer closes: the cloud answers with the same code and hangs up.
    peer.send(CLOSE, struct.pack("!H", 1000))
    assert await peer.close_code() == 1000


async def test_a_peer_that_stops_answering_pings_is_dropped(tmp_path: Path) -> None:
    pings = {"ws_ping_interval": 0.3, "ws_ping_timeout": 0.3}
    async with inproc_cloud(tmp_path, Clock(), uvicorn_options=pings, login_timeout=60) as cloud:
        _, _, silent = await RawPeer.open(cloud)
        _, _, alive = await RawPeer.open(cloud)
        assert (await silent.message())["op"] == "hello"
        assert (await alive.message())["op"] == "hello"

        async def answer_pings(peer: RawPeer, count: int) -> None:
            for _ in range(count):
                assert await asyncio.wait_for(peer.frame(), 10) == (PING, b"")
                peer.send(PONG, b"")

        answering = asyncio.create_task(answer_pings(alive, 3))
        # The silent peer is pinged, does not answer, and is dropped (well before its
        # login time runs out).
        frames = []
        while (got := await asyncio.wait_for(silent.frame(), 10)) is not None:
            frames.append(got)
        assert frames and all(opcode == PING for opcode, _ in frames)
        # The other answers each ping and stays.
        await answering
        alive.send(PING, b"still here")
        while (got := await asyncio.wait_for(alive.frame(), 10)) == (PING, b""):
            alive.send(PONG, b"")
        assert got == (PONG, b"still here")
        alive.shut()


async def test_a_stopping_cloud_says_it_restarts(tmp_path: Path) -> None:
    async with inproc_cloud(tmp_path, Clock()) as cloud:
        _, _, peer = await RawPeer.open(cloud)
        await peer.message()
    assert await peer.close_code() == 1012


async def test_the_link_under_another_asgi_server(tmp_path: Path) -> None:
    """uvicorn's own WebSocket protocol, as any ASGI server would serve the app."""
    uvicorns_own = {"ws": "websockets-sansio"}
    async with inproc_cloud(tmp_path, Clock(), uvicorn_options=uvicorns_own) as cloud:
        world: World = await asyncio.to_thread(make_world, cloud, devices=1)
        async with (
            device_client(cloud.url, world.device) as device,
            app_sdk(cloud.url, world.owner) as sdk,
        ):
            await device.report("ProReadonly.temperature", 12.5)
            value = await sdk.message.read_property(world.device.tid, "ProReadonly.temperature")
            assert value["stVal"] == 12.5


async def test_logins_are_limited_per_client_behind_a_trusted_proxy(tmp_path: Path) -> None:
    """A balancer on loopback forwards every client: each client's address is its own."""
    async with inproc_cloud(tmp_path, Clock(), login_rate=0.5) as cloud:  # 5 at once each

        async def login_from(client: str) -> dict[str, Any]:
            _, _, peer = await RawPeer.open(cloud, X_Forwarded_For=client)
            await peer.message()  # hello
            login = {"access_id": "nobody", "access_token": "wrong"}
            peer.send_json({"id": 1, "op": "login", "data": login})
            return await peer.message()

        # Seven clients, one login each: every one is answered (refused for its token).
        for i in range(1, 8):
            answer = await login_from(f"198.51.100.{i}")
            assert answer["id"] == 1, answer
        # Seven logins of one client: past its burst, it is told to come back later.
        answers = [await login_from("198.51.100.99") for _ in range(7)]
        limited = [a for a in answers if a.get("op") == "bye"]
        assert len(limited) >= 2, answers
        assert limited[0]["data"]["code"] == ErrorCode.IVTermErr_msg_gdm_handle_processing
        assert "198.51.100.99" in limited[0]["data"]["msg"]
