"""Nobody binds a camera they do not have: expired, reused and foreign bind tokens, and a
second app trying to take a provisioned camera, are refused and change nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from iotvideo.app import IoTVideo
from iotvideo.device import DeviceClient
from iotvideo.protocol.errors import IVError
from tests.inproc import Clock, inproc_cloud
from tests.link.world import User, World, app_sdk, fast_backoff, make_world
from tests.support import asnapshot


def _observe(sdk: IoTVideo) -> asyncio.Queue[tuple[str | None, int]]:
    results: asyncio.Queue[tuple[str | None, int]] = asyncio.Queue()
    sdk.net_config.observe_net_cfg_result(
        lambda tid, err: results.put_nowait((tid, int(err.code) if err else 0))
    )
    return results


async def _next(results: asyncio.Queue[tuple[str | None, int]]) -> tuple[str | None, int]:
    async with asyncio.timeout(10):
        return await results.get()


async def _present(world: World, index: int, token: str) -> DeviceClient:
    """The device logs in carrying ``token``, as after QR or AP provisioning."""
    device = DeviceClient(
        world.devices[index].certificate, world.cloud.url, bind_token=token, backoff=fast_backoff()
    )
    await device.start()
    return device


async def _refused(world: World, **fields: Any) -> str:
    before = await asnapshot(world.cloud.db)
    with pytest.raises(Exception) as info:  # noqa: PT011 - the official client's exception
        await world.avendor("CreateBinding", **fields)
    assert await asnapshot(world.cloud.db) == before, "a refused binding changes nothing"
    return str(info.value)


async def test_foreign_reused_and_misdirected_tokens(world: World) -> None:
    alice, mallory = world.new_user("alice"), world.new_user("mallory")
    box = world.devices[1].tid
    async with app_sdk(world.cloud.url, alice) as app:
        results = _observe(app)
        token = await app.net_config.get_bind_token()
        device = await _present(world, 1, token)
        try:
            assert await _next(results) == (box, 0)
            # Mallory cannot use Alice's token, nor bind with no token the device presented.
            assert "InvalidParameterValue" in await _refused(
                world, AccessId=mallory.access_id, Tid=box, Role="owner", BindToken=token
            )
            # The token binds only the device that presented it.
            assert "InvalidParameterValue" in await _refused(
                world,
                AccessId=alice.access_id,
                Tid=world.devices[0].tid,
                Role="guest",
                BindToken=token,
            )
            assert "InvalidParameterValue" in await _refused(
                world, AccessId=alice.access_id, Tid=box, Role="owner", BindToken="bt_" + "x" * 43
            )
            await world.avendor(
                "CreateBinding", AccessId=alice.access_id, Tid=box, Role="owner", BindToken=token
            )
            assert "InvalidParameterValue" in await _refused(
                world, AccessId=alice.access_id, Tid=box, Role="guest", BindToken=token
            )
        finally:
            await device.stop()


async def test_another_vendors_camera_cannot_present_a_users_token(world: World) -> None:
    """A camera of another vendor, handed Alice's token (a malicious QR code scanner),
    presents it first: the cloud ignores it, and Alice's own camera still can."""
    other = await asyncio.to_thread(make_world, world.cloud, devices=1)
    alice = world.new_user("alice-two")
    box = world.devices[1].tid
    async with app_sdk(world.cloud.url, alice) as app:
        results = _observe(app)
        token = await app.net_config.get_bind_token()
        foreign = DeviceClient(
            other.devices[0].certificate, world.cloud.url, bind_token=token, backoff=fast_backoff()
        )
        await foreign.start()
        try:
            assert foreign.link.online
            ours = await _present(world, 1, token)
            try:
                assert await _next(results) == (box, 0), "only Alice's camera was reported"
                await world.avendor(
                    "CreateBinding", AccessId=alice.access_id, Tid=box, Role="owner",
                    BindToken=token, ForceBind=True,
                )  # fmt: skip
            finally:
                await ours.stop()
        finally:
            await foreign.stop()


async def test_a_second_app_cannot_take_a_provisioned_camera(world: World) -> None:
    alice, bob = world.new_user("first"), world.new_user("second")
    box = world.devices[1].tid
    async with app_sdk(world.cloud.url, alice) as first, app_sdk(world.cloud.url, bob) as second:
        first_results, second_results = _observe(first), _observe(second)
        token = await first.net_config.get_bind_token()
        device = await _present(world, 1, token)
        await _next(first_results)
        await world.avendor(
            "CreateBinding", AccessId=alice.access_id, Tid=box, Role="owner", BindToken=token
        )
        await device.stop()
        # Bob gets hold of the camera and provisions it again with his own token.
        bobs = await second.net_config.get_bind_token()
        refused = second.net_config.next_net_cfg_result(box)
        elsewhere = second.net_config.next_net_cfg_result(world.devices[0].tid)
        device = await _present(world, 1, bobs)
        try:
            assert await _next(second_results) == (box, 21102), "not bindable: it has an owner"
            with pytest.raises(IVError) as info:
                await refused
            assert info.value.code == 21102
            assert not elsewhere.done(), "a result for another device is not this one's"
            elsewhere.cancel()
            assert device.bindable is False
            assert "ResourceInUse" in await _refused(
                world, AccessId=bob.access_id, Tid=box, Role="owner"
            )
            assert "InvalidParameterValue" in await _refused(
                world, AccessId=bob.access_id, Tid=box, Role="owner", BindToken=bobs, ForceBind=True
            )
        finally:
            await device.stop()


async def test_anonymous_visitors_get_no_bind_token(world: World) -> None:
    made = await world.avendor("CreateAnonymousAccessToken", TtlMinutes=5, Tid=world.device.tid)
    async with app_sdk(world.cloud.url, User(made.AccessId, made.AccessToken)) as sdk:
        with pytest.raises(IVError) as info:
            await sdk.net_config.get_bind_token()
        assert info.value.code == 21100


async def test_expired_bind_tokens(tmp_path: Path) -> None:
    clock = Clock()
    async with inproc_cloud(tmp_path, clock) as cloud:
        world: World = await asyncio.to_thread(make_world, cloud)
        user = await asyncio.to_thread(world.new_user, "late")
        async with app_sdk(cloud.url, user) as app:
            results = _observe(app)
            clock.offset = -601  # the token was made eleven minutes ago; they live ten
            token = await app.net_config.get_bind_token()
            clock.offset = 0
            device = await _present(world, 1, token)
            try:
                assert await _next(results) == (world.devices[1].tid, 21101)
                assert "InvalidParameterValue" in await _refused(
                    world,
                    AccessId=user.access_id,
                    Tid=world.devices[1].tid,
                    Role="owner",
                    BindToken=token,
                )
            finally:
                await device.stop()
